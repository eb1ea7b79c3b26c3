"""The server's request/response types, limits, and the state its connections share."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .wire import DateCache

if TYPE_CHECKING:
    from .budget import ByteBudget
    from .server_protocol import ServerConnection

log = logging.getLogger("graph_router.http")


@dataclass(slots=True)
class HttpRequest:
    """One request: names lower-case, order and repeats kept, body fully read."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    http_version: str
    client: str

    def header(self, name: str) -> str | None:
        """First value of header ``name`` (lower-case), or None."""
        for k, v in self.headers:
            if k == name:
                return v
        return None


@dataclass(slots=True)
class HttpResponse:
    """A whole response. The server sets ``content-length``, ``connection`` and ``date`` itself."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]
#: Builds the answer to a failure the server detects itself: (status, cause) -> response.
ErrorResponder = Callable[[int, str], HttpResponse]
#: Told about every request the server refuses itself: (status, reason, method, target, client).
RefusalHook = Callable[[int, str, str, str, str], None]


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Per-request limits and Go-style timeouts (seconds; None = no limit)."""

    max_body_bytes: int = 10 * 1024 * 1024
    max_header_bytes: int = 64 * 1024
    max_headers: int = 200
    #: Trailer fields of a chunked body (431 above either).
    max_trailer_bytes: int = 16 * 1024
    max_trailers: int = 64
    #: Non-data bytes of a chunked body beyond Go's free allowance, and the longest chunk line (400).
    max_chunk_ext_bytes: int = 16 * 1024
    read_timeout: float | None = 60.0
    write_timeout: float | None = 60.0
    idle_timeout: float | None = 180.0


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
        self.conns: set[ServerConnection] = set()
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
