"""What every connection of one server shares at run time: handler, limits, counters, the Date cache."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from .budget import ByteBudget
from .messages import HttpRequest, HttpResponse, Response, ServerLimits
from .wire import DateCache

log = logging.getLogger("graph_router.http")

Handler = Callable[[HttpRequest], Awaitable[Response]]
#: Builds the answer to a failure the server detects itself: (status, cause) -> response.
ErrorResponder = Callable[[int, str], HttpResponse]
#: Told about every request the server refuses itself: (status, reason, method, target, client).
RefusalHook = Callable[[int, str, str, str, str], None]


class Connection(Protocol):
    """What the server does to its connections (``server_protocol.ServerConnection``)."""

    #: When the connection's current phase times out (loop time; inf: never).
    deadline: float

    def deadline_passed(self) -> None: ...

    def shutdown(self) -> None: ...

    def abort(self) -> asyncio.Future[Any] | None: ...


class ServerState:
    """What every connection of one server shares."""

    __slots__ = (
        "_idle_waiters",
        "accepting",
        "budget",
        "conns",
        "date",
        "handler",
        "idle_timeout",
        "inflight",
        "limits",
        "loop",
        "on_error",
        "on_refused",
        "read_timeout",
        "write_timeout",
    )

    def __init__(self, handler: Handler, limits: ServerLimits, on_error: ErrorResponder, *,
                 budget: ByteBudget | None = None, on_refused: RefusalHook | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.handler = handler
        self.limits = limits
        self.on_error = on_error
        #: Bytes of request bodies held, shared with the backend client (None: not counted).
        self.budget = budget
        self.on_refused = on_refused
        self.date = DateCache()
        self.conns: set[Connection] = set()
        self.inflight = 0
        self.accepting = True
        self._idle_waiters: list[asyncio.Future[None]] = []
        # math.inf keeps the hot path free of None checks.
        self.read_timeout = _or_inf(limits.read_timeout)
        self.write_timeout = _or_inf(limits.write_timeout)
        self.idle_timeout = _or_inf(limits.idle_timeout)

    def request_done(self) -> None:
        self.inflight -= 1
        if not self.inflight and self._idle_waiters:
            for fut in self._idle_waiters:
                if not fut.done():
                    fut.set_result(None)
            self._idle_waiters.clear()

    def idle_future(self) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = self.loop.create_future()
        self._idle_waiters.append(fut)
        return fut

    def error_response(self, status: int, cause: str) -> HttpResponse:
        """``on_error`` guarded: a failing responder still yields an answer."""
        try:
            return self.on_error(status, cause)
        except Exception:
            log.exception("on_error(%d) failed", status)
            return HttpResponse(status, [("content-type", "text/plain")], cause.encode("utf-8", "replace"))

    def refused(self, status: int, reason: str, method: str, target: str, client: str) -> None:
        """Report a refusal to the hook, guarded: logging must never break the answer."""
        if self.on_refused is not None:
            try:
                self.on_refused(status, reason, method, target, client)
            except Exception:
                log.exception("on_refused(%d) failed", status)


def _or_inf(value: float | None) -> float:
    return math.inf if value is None else value
