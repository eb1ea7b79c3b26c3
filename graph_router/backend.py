"""The seam between the engine and whatever answers a step: HTTP, or a Python callable.

The engine only ever calls :meth:`Backend.call`. HTTP backends live in ``transport``;
in-process backends (for unit tests and embedding) live here.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import orjson

from .conditions import INVALID, JsonDoc
from .errors import BackendConnectError, BackendError, BackendTimeout, StepTimeout

Headers = list[tuple[str, str]]
log = logging.getLogger("graph_router.retry")


@dataclass(slots=True)
class BackendRequest:
    """One call to a backend. ``headers`` are already filtered (propagation rules applied)."""

    body: bytes
    headers: Headers
    #: The client timeout (``routerTimeouts.serviceClient``), seconds; None = no limit. A step's own
    #: ``timeout`` and the graph deadline are enforced by the engine around the call.
    timeout: float | None = None


@dataclass(slots=True)
class BackendResponse:
    status: int
    body: bytes
    headers: Headers = field(default_factory=list)


@runtime_checkable
class Backend(Protocol):
    """Anything that answers a step. ``target`` names it in errors, logs and traces."""

    @property
    def target(self) -> str: ...

    async def call(self, request: BackendRequest) -> BackendResponse: ...

    async def aclose(self) -> None: ...


USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/@]*)@")


def redact_url(url: str) -> str:
    """Go's ``URL.Redacted``: a password in a URL becomes ``xxxxx`` (for causes, logs and listings)."""
    m = USERINFO.match(url)
    if m is None or ":" not in m.group(2):
        return url
    user = m.group(2).split(":", 1)[0]
    return f"{m.group(1)}{user}:xxxxx@{url[m.end():]}"


# --- in-process backends ---------------------------------------------------------------------

#: What an in-process handler may return: a JSON-able value (status 200), raw bytes,
#: a ``(status, value)`` pair, or a full :class:`BackendResponse`.
HandlerResult = Any
Handler = Callable[[Any, Mapping[str, str]], HandlerResult | Awaitable[HandlerResult]]


class InProcessBackend:
    """Calls a Python function (sync or async) with the step's JSON body and headers.

    The body is decoded from JSON when it is valid JSON, else passed as ``bytes``.
    ``raw=True`` passes the bytes untouched.
    """

    __slots__ = ("_fn", "_is_async", "_raw", "calls", "target")

    def __init__(self, fn: Handler, *, name: str | None = None, raw: bool = False) -> None:
        self._fn = fn
        self._is_async = inspect.iscoroutinefunction(fn)
        self._raw = raw
        self.target: str = name or str(getattr(fn, "__name__", "in-process"))
        #: Every request this backend received, in order (tests assert on it).
        self.calls: list[BackendRequest] = []

    async def call(self, request: BackendRequest) -> BackendResponse:
        self.calls.append(request)
        arg: Any = request.body
        if not self._raw:
            value = JsonDoc(request.body).value
            arg = request.body if value is INVALID else value
        hdrs = {k.lower(): v for k, v in request.headers}
        if self._is_async:
            result = await self._fn(arg, hdrs)
        else:
            result = self._fn(arg, hdrs)
            if inspect.isawaitable(result):
                result = await result
        return to_response(result)

    async def aclose(self) -> None:
        return None


TEXT_CT = ("content-type", "text/plain; charset=utf-8")


def to_response(result: HandlerResult) -> BackendResponse:
    """Normalise what an in-process handler returned."""
    if isinstance(result, BackendResponse):
        return result
    status = 200
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], int):
        status, result = result
    if isinstance(result, bytes | bytearray | memoryview):
        return BackendResponse(status=status, body=bytes(result))  # bytes say nothing of their type
    if isinstance(result, str):
        return BackendResponse(status=status, body=result.encode(), headers=[TEXT_CT])
    return BackendResponse(status=status, body=orjson.dumps(result), headers=[("content-type", "application/json")])


# --- retries ---------------------------------------------------------------------------------



@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry shape of KServe PR #5386: exponential backoff with full jitter.

    ``on`` lists failure kinds: ``connect-failure`` (refused/unreachable), ``reset`` (connection broke),
    ``timeout`` (client timeout), and HTTP statuses ``"502"``, ``"503"``, ``"504"``.
    4xx answers are never retried.
    """

    max_retries: int = 3
    initial_delay_ms: int = 100
    max_delay_ms: int = 5000
    on: frozenset[str] = frozenset({"connect-failure", "502", "503", "504"})
    #: True for the built-in default: only failures the backend cannot have processed.
    safe_only: bool = False
    #: Give up retrying once this many seconds have passed since the first attempt (None: no limit
    #: beyond ``max_retries`` and the request deadline).
    max_elapsed: float | None = None

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Full-jitter backoff for retry number ``attempt`` (1-based), in seconds."""
        cap = min(self.max_delay_ms, self.initial_delay_ms * (2 ** (attempt - 1)))
        return (rng or random).uniform(0, cap) / 1000.0

    def should_retry_error(self, err: BackendError) -> bool:
        if self.safe_only:
            # refused (nothing was sent); not DNS failures or connect timeouts (a wrong name is
            # not a cold start), never a request the backend may have read
            return err.nothing_processed and (not isinstance(err, BackendConnectError) or err.refused)
        if isinstance(err, BackendConnectError):
            return "connect-failure" in self.on
        if isinstance(err, BackendTimeout):
            return "timeout" in self.on
        # a connection that broke before any byte of the answer is a connection failure too
        return "reset" in self.on or ("connect-failure" in self.on and err.nothing_processed)

    def should_retry_status(self, status: int) -> bool:
        return not self.safe_only and str(status) in self.on


#: Seconds the default retry keeps retrying a refused connection (``--default-retry-window``):
#: long enough for an endpoint that is coming up, short enough that the client hears the refusal.
DEFAULT_RETRY_WINDOW = 5.0


def safe_retry(window: float = DEFAULT_RETRY_WINDOW) -> RetryPolicy:
    """The default without any config: retry only what the backend cannot have processed (a refused
    connection of a backend scaled to zero) for ``window`` seconds or until the request must be
    answered, whichever comes first; backoff capped at 1 s."""
    if window < 0:
        raise ValueError(f"the default retry window must be >= 0 seconds, got {window:g}")
    return RetryPolicy(max_retries=1000, initial_delay_ms=50, max_delay_ms=1000, safe_only=True, max_elapsed=window)


SAFE_RETRY = safe_retry()
NO_RETRY = RetryPolicy(max_retries=0)

#: Told of each attempt that will be retried: (attempt number, outcome: status or error code, delay).
RetryObserver = Callable[[int, str, float], None]


async def call_with_retries(
    backend: Backend,
    request: BackendRequest,
    policy: RetryPolicy,
    *,
    deadline: float | None,
    attempt_timeout: float | None = None,
    on_retry: RetryObserver | None = None,
) -> tuple[BackendResponse, int]:
    """Call ``backend`` under ``policy``; never sleeps past ``deadline`` (loop time).

    ``attempt_timeout`` (a step's ``timeout``) bounds each attempt: exceeding it raises
    :class:`StepTimeout` (504), retried only when the policy lists ``timeout``.
    Returns the response and the number of retries made. Raises the last error.
    """
    attempt = 0
    # The retry budget counts from here. time.monotonic() is a vDSO read; the loop's clock is looked
    # up only when a retry is weighed (on Python 3.11 get_running_loop() makes a getpid() system call).
    started = time.monotonic()
    while True:
        attempt += 1
        try:
            if attempt_timeout is None:
                resp = await backend.call(request)
            else:
                try:
                    async with asyncio.timeout(attempt_timeout) as scope:
                        resp = await backend.call(request)
                except TimeoutError:
                    if not scope.expired():
                        raise
                    raise StepTimeout(
                        f"step timeout of {attempt_timeout:g}s exceeded calling {backend.target}") from None
        except (BackendError, StepTimeout) as err:
            outcome = err.code
            retry = attempt <= policy.max_retries and (
                policy.should_retry_error(err) if isinstance(err, BackendError) else "timeout" in policy.on
            )
            delay = _next_delay(policy, attempt, deadline, started) if retry else None
            if delay is None:
                raise
        else:
            retry = attempt <= policy.max_retries and policy.should_retry_status(resp.status)
            delay = _next_delay(policy, attempt, deadline, started) if retry else None
            if delay is None:
                return resp, attempt - 1
            outcome = str(resp.status)
        if on_retry:
            on_retry(attempt, outcome, delay)
        log.info("retrying %s: attempt %d got %s; next attempt in %.3fs", backend.target, attempt, outcome, delay,
                 extra={"retry_target": backend.target, "retry_outcome": outcome})
        await asyncio.sleep(delay)


def _next_delay(policy: RetryPolicy, attempt: int, deadline: float | None, started: float) -> float | None:
    """The pause before the next attempt, or None when it would end past the deadline or the budget."""
    delay = policy.delay(attempt)
    now = asyncio.get_running_loop().time()
    if policy.max_elapsed is not None:
        give_up = now - (time.monotonic() - started) + policy.max_elapsed  # on the loop's clock
        deadline = give_up if deadline is None else min(deadline, give_up)
    if deadline is not None and now + delay >= deadline:
        return None
    return delay
