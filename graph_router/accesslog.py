"""One structured JSON line per request, formatted and written off the hot path."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TextIO

import orjson

Entry = tuple[float, str, str, str, int, float, str, str | None, str | None]


class AccessLog:
    """Buffers entries; a timer formats and writes them in batches (never per request)."""

    def __init__(self, stream: TextIO | None = None, *, interval: float = 0.25, max_buffer: int = 512) -> None:
        self._stream = stream or sys.stdout
        self._buf: list[Entry] = []
        self._interval = interval
        self._max = max_buffer
        self._timer: asyncio.TimerHandle | None = None

    def record(self, graph: str, method: str, path: str, status: int, duration: float, route: str,
               trace_id: str | None, reason: str | None = None) -> None:
        """One request; ``reason`` names why it was refused (only refusals have one)."""
        self._buf.append((time.time(), graph, method, path, status, duration, route, trace_id, reason))
        if len(self._buf) >= self._max:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._interval, self.flush)

    def flush(self) -> None:
        self._timer = None
        buf, self._buf = self._buf, []
        if not buf:
            return
        lines = [
            orjson.dumps({
                "ts": round(ts, 6), "kind": "access", "graph": g, "method": m, "path": p, "status": st,
                "duration_ms": round(d * 1000, 3), "route": r, "trace_id": t,
            } if why is None else {
                "ts": round(ts, 6), "kind": "access", "graph": g, "method": m, "path": p, "status": st,
                "duration_ms": round(d * 1000, 3), "route": r, "trace_id": t, "reason": why,
            }).decode()
            for ts, g, m, p, st, d, r, t, why in buf
        ]
        try:
            self._stream.write("\n".join(lines) + "\n")
            self._stream.flush()
        except (OSError, ValueError):
            pass  # a closed stdout must never fail a request

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.flush()
