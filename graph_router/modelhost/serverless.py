"""Knative's serverless lifecycle on a laptop: models that scale to zero and cold-start.

After ``idle`` seconds without a request a model is "at zero". The next request of any kind
(readiness included) starts it, and every request that arrives meanwhile is held, never refused,
for ``cold_start`` seconds, as Knative's activator holds requests until a pod is ready. Models
start at zero, as a revision nobody has called for a while.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from aiohttp import web

log = logging.getLogger("graph_router.modelhost.serverless")

State = Literal["zero", "starting", "ready"]
#: The model a request is for: ``/v1/models/<m>...`` or ``/v2/models/<m>...``.
_MODEL_PATH = re.compile(r"^/v[12]/models/([^/:]+)")
HELD_HEADER = "X-Cold-Start-Held"


class Lifecycle:
    """One model's emulated Knative revision: at zero, starting, or ready."""

    def __init__(self, name: str, *, idle: float, cold_start: float) -> None:
        self.name = name
        self.idle = idle
        self.cold_start = cold_start
        self.state: State = "zero"
        #: cold starts so far (a request that found the model at zero started one)
        self.cold_starts = 0
        self._active = 0
        self._ready: asyncio.Event | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._started = 0.0

    async def enter(self) -> float:
        """A request arrived: start the model if at zero; wait while it starts. Returns seconds held."""
        self._active += 1
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self.state == "ready":
            return 0.0
        if self.state == "zero":
            self._start()
        assert self._ready is not None
        t0 = time.monotonic()
        try:
            await self._ready.wait()
        except BaseException:
            self.leave()
            raise
        return time.monotonic() - t0

    def leave(self) -> None:
        """A request finished: once none is in flight, the idle clock runs."""
        self._active -= 1
        if self._active == 0 and self.state == "ready":
            self._arm()

    def _start(self) -> None:
        self.state = "starting"
        self.cold_starts += 1
        self._started = time.monotonic()
        self._ready = asyncio.Event()
        log.info("model %s: at zero -> starting (cold start %.3gs; requests are held)", self.name, self.cold_start)
        asyncio.get_running_loop().call_later(self.cold_start, self._up)

    def _up(self) -> None:
        self.state = "ready"
        log.info("model %s: starting -> ready after %.3fs", self.name, time.monotonic() - self._started)
        assert self._ready is not None
        self._ready.set()
        if self._active == 0:
            self._arm()

    def _arm(self) -> None:
        self._idle_timer = asyncio.get_running_loop().call_later(self.idle, self._to_zero)

    def _to_zero(self) -> None:
        self._idle_timer = None
        if self._active == 0 and self.state == "ready":
            self.state = "zero"
            log.info("model %s: ready -> at zero after %.3gs without requests", self.name, self.idle)

    def describe(self) -> dict[str, Any]:
        return {"state": self.state, "coldStarts": self.cold_starts, "scaleToZeroSeconds": self.idle,
                "coldStartSeconds": self.cold_start}

    def close(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def lifecycle_middleware(lifecycles: dict[str, Lifecycle]) -> Any:
    """Holds each model's requests while it cold-starts; adds ``X-Cold-Start-Held: <seconds>``."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        m = _MODEL_PATH.match(request.path)
        lc = lifecycles.get(m.group(1)) if m is not None else None
        if lc is None:
            return await handler(request)
        held = await lc.enter()
        try:
            resp = await handler(request)
        finally:
            lc.leave()
        resp.headers[HELD_HEADER] = f"{held:.3f}"
        return resp

    return middleware
