"""A lean HTTP/1.1 server on asyncio protocols and httptools (llhttp).

The handler gets a whole request (body read, limits enforced) and returns a whole response.
Timeouts follow Go's ``net/http`` server, which KServe's router configures with ``routerTimeouts``:
``read_timeout`` bounds reading one request (slowloris), ``write_timeout`` bounds the time from
the request being read to the response being flushed (on expiry the connection is dropped and the
handler cancelled), ``idle_timeout`` bounds a keep-alive connection waiting for its next request.
"""

from __future__ import annotations

import asyncio
import math
import socket

from .budget import ByteBudget
from .messages import HttpRequest, HttpResponse, Response, ServerLimits
from .server_guard import LINGER_SECONDS
from .server_protocol import ServerConnection
from .server_state import ErrorResponder, Handler, RefusalHook, ServerState

__all__ = [
    "ByteBudget", "ErrorResponder", "Handler", "HttpRequest", "HttpResponse", "HttpServer", "RefusalHook", "Response",
    "ServerLimits", "start_server",
]


class HttpServer:
    """A running server: listener(s), connections and drain controls."""

    def __init__(self, server: asyncio.Server, state: ServerState, sweep_interval: float) -> None:
        self._server = server
        self._state = state
        self._listening = True
        self._sweep_interval = sweep_interval
        self._sweeper: asyncio.TimerHandle | None = None
        if sweep_interval < math.inf:
            self._sweeper = state.loop.call_later(sweep_interval, self._sweep)

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(self._server.sockets)

    @property
    def port(self) -> int:
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def budget(self) -> ByteBudget | None:
        """The byte budget request bodies are charged to (the one passed to ``start_server``)."""
        return self._state.budget

    @property
    def inflight(self) -> int:
        """Requests whose handler is running."""
        return self._state.inflight

    @property
    def connections(self) -> int:
        return len(self._state.conns)

    def _sweep(self) -> None:
        # One coarse timer for all connections instead of a timer per request: deadlines are
        # plain floats on each connection, checked here.
        now = self._state.loop.time()
        for conn in [c for c in self._state.conns if c.deadline <= now]:
            conn.deadline_passed()
        self._sweeper = self._state.loop.call_later(self._sweep_interval, self._sweep)

    async def close_listener(self) -> None:
        """Stop accepting; idle connections close now, busy ones after their current response."""
        if not self._listening:
            return
        self._listening = False
        self._state.accepting = False
        self._server.close()
        for conn in list(self._state.conns):
            conn.shutdown()

    async def wait_idle(self, timeout: float | None) -> bool:  # noqa: ASYNC109 - drain API takes a budget
        """Wait until no handler is running; False if ``timeout`` passed first."""
        if not self._state.inflight:
            return True
        fut = self._state.idle_future()
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(fut)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Close everything: listener, connections; running handlers are cancelled."""
        await self.close_listener()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        tasks = [t for c in list(self._state.conns) if (t := c.abort()) is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()


async def start_server(
    handler: Handler,
    *,
    host: str | None,
    port: int | None,
    limits: ServerLimits,
    on_error: ErrorResponder,
    sock: socket.socket | None = None,
    reuse_port: bool = False,
    backlog: int = 1024,
    budget: ByteBudget | None = None,
    on_refused: RefusalHook | None = None,
) -> HttpServer:
    """Listen on ``host:port`` (or an already bound ``sock``) and serve ``handler``.

    ``budget``: charged with the bytes of request bodies held (503 when spent); ``on_refused``: told
    about every request the server answers itself with an error.
    """
    state = ServerState(handler, limits, on_error, budget=budget, on_refused=on_refused)
    loop = state.loop
    if sock is not None:
        server = await loop.create_server(lambda: ServerConnection(state), sock=sock, backlog=backlog)
    else:
        if port is None:
            raise ValueError("start_server needs a port (0 for an ephemeral one) or a sock")
        server = await loop.create_server(
            lambda: ServerConnection(state), host, port, reuse_port=reuse_port or None, backlog=backlog
        )
    timeouts = [t for t in (limits.read_timeout, limits.write_timeout, limits.idle_timeout) if t]
    # Without timeouts the sweeper still ends lingering closes (after a refusal).
    interval = min(1.0, max(0.02, min(timeouts) / 4)) if timeouts else LINGER_SECONDS
    return HttpServer(server, state, interval)
