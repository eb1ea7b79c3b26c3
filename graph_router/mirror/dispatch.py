"""Sending mirrored copies to a shadow: sampling, a bounded lane per mirror, the call, the comparison.

A request never waits for a shadow: the engine hands over the step's input and, later, the real
answer (:meth:`Shot.done`, a plain call); the copy runs as its own task, bounded in number
(``maxConcurrency`` calls in flight, ``queueSize`` copies waiting, the rest dropped and counted) and
in time (``timeout``). A shadow's failure is counted, never raised.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from typing import Any, Final, Protocol

import orjson

from ..backend import SAFE_RETRY, Backend, BackendRequest, BackendResponse, call_with_retries, redact_url
from ..errors import BackendError, StepTimeout
from ..spec import MirrorMode, MirrorSpec
from .compare import DISAGREE, Comparison, Verdict, compile_comparison

log = logging.getLogger("graph_router.mirror")

#: graph, node, step, shadow (the shadow's serviceName or redacted URL): the metric labels of a mirror.
MirrorKey = tuple[str, str, str, str]
#: Comparison result when the real step failed or answered >= 300: nothing to compare with.
SKIPPED: Final = "skipped"
#: Longest rendering of a value in a disagreement log line.
LOG_VALUE_CHARS = 200


class MirrorObserver(Protocol):
    """Where mirror events are counted (:class:`graph_router.telemetry.Metrics` is one)."""

    def mirror_sent(self, key: MirrorKey) -> None: ...

    def mirror_dropped(self, key: MirrorKey) -> None: ...

    def mirror_finished(self, key: MirrorKey, duration: float, error: str | None) -> None: ...

    def mirror_compared(self, key: MirrorKey, result: str, difference: float | None) -> None: ...


class _Pending:
    __slots__ = ()


_PENDING: Final = _Pending()
_FAILED: Final = _Pending()
Answer = BackendResponse | _Pending


class Lane:
    """The bound of one mirror: at most ``max_concurrency`` calls running, ``queue_size`` copies waiting."""

    __slots__ = ("active", "max_concurrency", "peak", "queue_size", "waiting")

    def __init__(self, max_concurrency: int, queue_size: int) -> None:
        self.max_concurrency = max_concurrency
        self.queue_size = queue_size
        self.active = 0
        #: The most calls ever in flight at once (the bound holds when peak <= max_concurrency).
        self.peak = 0
        self.waiting: deque[Shot] = deque()


class Shadows:
    """Every mirror of one router: lanes (kept across reloads), running copies, sampling, observer.

    ``rng`` decides which requests are mirrored (seed it for reproducible tests). ``log_interval``:
    at most one disagreement line per mirror per that many seconds.
    """

    def __init__(self, observer: MirrorObserver | None = None, *, rng: random.Random | None = None,
                 log_interval: float = 10.0) -> None:
        self.observer = observer
        self.rng = rng or random.Random()
        self.log_interval = log_interval
        self.lanes: dict[tuple[MirrorKey, int, int], Lane] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def mirror(self, key: MirrorKey, spec: MirrorSpec, backend: Backend) -> Mirror:
        lane_key = (key, spec.max_concurrency, spec.queue_size)
        lane = self.lanes.get(lane_key)
        if lane is None:
            lane = self.lanes[lane_key] = Lane(spec.max_concurrency, spec.queue_size)
        return Mirror(self, key, spec, backend, lane, compile_comparison(spec.compare, spec.tolerance))

    def lane(self, graph: str, node: str, step: str) -> Lane | None:
        """The lane of a step's mirror (for tests and debugging)."""
        return next((lane for (k, _, _), lane in self.lanes.items() if k[:3] == (graph, node, step)), None)

    async def idle(self) -> None:
        """Wait until no copy is running or waiting (for tests; bound it with ``asyncio.timeout``)."""
        while self.tasks:
            await asyncio.wait(set(self.tasks))

    async def aclose(self) -> None:
        """Drop waiting copies (counted as dropped) and cancel running ones."""
        for lane in self.lanes.values():
            while lane.waiting:
                shot = lane.waiting.popleft()
                shot.mirror.count_dropped()
        tasks = list(self.tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks)


class Mirror:
    """One step's compiled ``mirror``: the engine calls :meth:`begin` for every request of the step."""

    __slots__ = ("_last_log", "_suppressed", "alongside", "backend", "comparison", "key", "lane", "percent",
                 "shadows", "timeout")

    def __init__(self, shadows: Shadows, key: MirrorKey, spec: MirrorSpec, backend: Backend, lane: Lane,
                 comparison: Comparison) -> None:
        self.shadows = shadows
        self.key = key
        self.backend = backend
        self.lane = lane
        self.comparison = comparison
        self.percent = spec.percent
        self.timeout = spec.timeout
        self.alongside = spec.mode == MirrorMode.ALONGSIDE
        self._last_log = float("-inf")
        self._suppressed = 0

    def begin(self, body: bytes, headers: list[tuple[str, str]],
              incoming: list[tuple[str, str]]) -> Shot | None:
        """This request's copy, or None when it is not sampled. ``alongside``: the copy is sent now."""
        if self.percent < 100.0 and self.shadows.rng.random() * 100.0 >= self.percent:
            return None
        shot = Shot(self, body, list(headers), trace_id(headers, incoming))
        if self.alongside:
            self.submit(shot)
        return shot

    # --- the lane ----------------------------------------------------------------------------------

    def submit(self, shot: Shot) -> None:
        lane = self.lane
        if lane.active < lane.max_concurrency:
            self._start(shot)
        elif len(lane.waiting) < lane.queue_size:
            lane.waiting.append(shot)
        else:
            self.count_dropped()

    def count_dropped(self) -> None:
        if self.shadows.observer is not None:
            self.shadows.observer.mirror_dropped(self.key)

    def _start(self, shot: Shot) -> None:
        lane = self.lane
        lane.active += 1
        lane.peak = max(lane.peak, lane.active)
        if self.shadows.observer is not None:
            self.shadows.observer.mirror_sent(self.key)
        task = asyncio.get_running_loop().create_task(self._run(shot))
        self.shadows.tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.shadows.tasks.discard(task)
        lane = self.lane
        lane.active -= 1
        while lane.waiting and lane.active < lane.max_concurrency:
            shot = lane.waiting.popleft()
            shot.mirror._start(shot)

    # --- one copy ----------------------------------------------------------------------------------

    async def _run(self, shot: Shot) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        resp: BackendResponse | None = None
        error: str | None = None
        req = BackendRequest(shot.body, shot.headers, self.timeout)
        try:
            # no retries but the default one (a refused connection: a shadow scaled to zero), bounded
            async with asyncio.timeout(self.timeout):
                resp, _ = await call_with_retries(self.backend, req, SAFE_RETRY, deadline=start + self.timeout)
        except TimeoutError:
            error = "timeout"
        except (BackendError, StepTimeout) as err:
            error = err.code
        except Exception:  # a bug of ours, or a misbehaving in-process shadow: never past this task
            log.exception("shadow call to %s failed", self.key[3])
            error = "internal"
        if resp is not None and not 200 <= resp.status <= 299:
            error = f"http_{resp.status}"
        observer = self.shadows.observer
        if observer is not None:
            observer.mirror_finished(self.key, loop.time() - start, error)
        shot.shadow = resp if error is None and resp is not None else _FAILED
        if shot.real is not _PENDING:
            self.compare(shot)

    def compare(self, shot: Shot) -> None:
        real, shadow = shot.real, shot.shadow
        if not isinstance(shadow, BackendResponse):
            return  # counted as failed
        observer = self.shadows.observer
        if not isinstance(real, BackendResponse) or not 200 <= real.status <= 299:
            if observer is not None:
                observer.mirror_compared(self.key, SKIPPED, None)
            return
        verdict = self.comparison.judge(real.body, shadow.body)
        if observer is not None:
            observer.mirror_compared(self.key, verdict.result, verdict.difference)
        if verdict.result == DISAGREE:
            self._log_disagreement(verdict, shot.trace)

    def _log_disagreement(self, verdict: Verdict, trace: str) -> None:
        now = time.monotonic()
        if now - self._last_log < self.shadows.log_interval:
            self._suppressed += 1
            return
        graph, node, step, shadow = self.key
        log.warning("shadow disagrees: graph=%s node=%s step=%s shadow=%s compare=%s real=%s shadow_value=%s "
                    "trace_id=%s (%d more disagreements not logged since the last line)", graph, node, step,
                    shadow, self.comparison.source or "<body>", _render(verdict.real), _render(verdict.shadow),
                    trace or "-", self._suppressed)
        self._last_log, self._suppressed = now, 0


class Shot:
    """One mirrored copy: the input, and the two answers as they arrive (in either order)."""

    __slots__ = ("body", "headers", "mirror", "real", "shadow", "trace")

    def __init__(self, mirror: Mirror, body: bytes, headers: list[tuple[str, str]], trace: str) -> None:
        self.mirror = mirror
        self.body = body
        self.headers = headers
        self.trace = trace
        self.real: Answer = _PENDING
        self.shadow: Answer = _PENDING

    def done(self, real: BackendResponse | None) -> None:
        """The real call finished (None: it failed). ``after``: the copy is sent now."""
        self.real = real if real is not None else _FAILED
        if not self.mirror.alongside:
            self.mirror.submit(self)
        elif self.shadow is not _PENDING:  # compared later: parsing both answers must not delay this one
            asyncio.get_running_loop().call_soon(self.mirror.compare, self)


def trace_id(headers: list[tuple[str, str]], incoming: list[tuple[str, str]]) -> str:
    """The trace id of a W3C ``traceparent`` sent to the step (else the caller's), or ''."""
    for hdrs in (headers, incoming):
        for k, v in hdrs:
            if k.lower() == "traceparent" and len(v) >= 35 and v[2] == "-":
                return v[3:35]
    return ""


def shadow_label(spec: MirrorSpec) -> str:
    """The ``shadow`` metric label: the serviceName, or the URL without a password."""
    return spec.service_name or redact_url(spec.service_url or "")


def _render(value: Any) -> str:
    if isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
    else:
        try:
            text = orjson.dumps(value).decode()
        except TypeError:
            text = repr(value)
    return text if len(text) <= LOG_VALUE_CHARS else text[:LOG_VALUE_CHARS] + "..."

