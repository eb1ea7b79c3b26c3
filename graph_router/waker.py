"""Graph-aware prewarming, the run-time half: at request start, wake the backends that have been idle.

Each graph carries the backends its requests wake (:func:`graph_router.prewarm.wake_steps`). For
each one whose last answer is older than its idle threshold and that has no warm-up in flight, one
light GET goes out, fire-and-forget: bounded by a timeout, never retried, never awaited by the
request, and its failure changes nothing. A warm backend costs one dict lookup and one comparison.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol
from urllib.parse import urlsplit

from .backend import redact_url
from .compiler import CompiledGraph
from .prewarm import PrewarmSettings, WakeTarget, WarmState

log = logging.getLogger("graph_router.prewarm")

#: Sends ``GET url`` within ``timeout`` seconds; returns the status (raises on any failure).
Send = Callable[[str, float], Awaitable[int]]


class PrewarmObserver(Protocol):
    """Where warm-ups are reported (``graph_router.telemetry`` implements it)."""

    def prewarm_sent(self, span: Any, targets: list[str]) -> None:
        """Warm-ups for ``targets`` went out at the start of the request whose span is ``span``."""

    def prewarm_done(self, target: str, outcome: str, duration: float) -> None:
        """A warm-up finished: ``ok``, ``http_<status>``, ``timeout`` or ``error``."""


class Prewarmer:
    """One per process (worker): the warmth of every backend the graphs wake, and the warm-ups in flight."""

    def __init__(self, settings: PrewarmSettings, send: Send, *, observer: PrewarmObserver | None = None) -> None:
        self.settings = settings
        self._send = send
        self.observer = observer
        self.states: dict[str, WarmState] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def bind(self, graphs: Iterable[CompiledGraph]) -> None:
        """Track the backends the graphs wake; their steps stamp the last answer (kept across reloads)."""
        graphs = list(graphs)
        for g in graphs:
            for t in g.wake:
                if t.key not in self.states:
                    idle = self.settings.idle_for(t.service, urlsplit(t.key).hostname or "")
                    self.states[t.key] = WarmState(t.key, t.warmup_url, t.service, idle)
                else:
                    self.states[t.key].url = t.warmup_url
        for g in graphs:
            for node in g.nodes.values():
                for step in node.steps:
                    if step.backend is not None:
                        step.warm = self.states.get(step.backend.target)

    def fire(self, wake: tuple[WakeTarget, ...], span: Any = None) -> None:
        """Wake the idle ones among ``wake``; returns at once."""
        now = time.monotonic()
        states = self.states
        sent: list[str] | None = None
        for t in wake:
            st = states[t.key]
            if now - st.last < st.threshold or st.busy:
                continue
            st.busy = True
            task = asyncio.get_running_loop().create_task(self._warm(st))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            if sent is None:
                sent = []
            sent.append(redact_url(t.key))
        if sent is not None:
            log.info("prewarm: waking %d idle backend(s): %s", len(sent), ", ".join(sent))
            if self.observer is not None:
                self.observer.prewarm_sent(span, sent)

    async def _warm(self, st: WarmState) -> None:
        start = time.monotonic()
        target = redact_url(st.url)
        try:
            async with asyncio.timeout(self.settings.timeout):
                status = await self._send(st.url, self.settings.timeout)
        except TimeoutError:
            outcome = "timeout"
        except Exception as exc:  # a failed warm-up only means the request wakes the backend itself
            outcome = "error"
            log.info("prewarm: GET %s failed: %s", target, exc or type(exc).__name__)
        else:
            st.last = time.monotonic()
            outcome = "ok" if 200 <= status <= 299 else f"http_{status}"
        finally:
            st.busy = False
        duration = time.monotonic() - start
        log.info("prewarm: GET %s: %s after %.3fs", target, outcome, duration)
        if self.observer is not None:
            self.observer.prewarm_done(redact_url(st.key), outcome, duration)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def aclose(self) -> None:
        """Cancel the warm-ups still in flight (shutdown)."""
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
