"""Fixtures for the HTTP data plane: our server on port 0, raw sockets, scripted raw backends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from graph_router.errors import envelope
from graph_router.http.server import Handler, HttpResponse, HttpServer, ServerLimits, start_server

from ..support.backends import RawBackend, Script, reset

JSON = [("content-type", "application/json")]


def kserve_error(status: int, cause: str) -> HttpResponse:
    """What the router's on_error does: KServe's envelope."""
    return HttpResponse(status, list(JSON), envelope(cause))


ServeFn = Callable[..., Awaitable[HttpServer]]


@pytest.fixture
async def serve() -> AsyncIterator[ServeFn]:
    """``await serve(handler, **limits)`` starts a server on 127.0.0.1:0; closed at teardown."""
    servers: list[HttpServer] = []

    async def start(handler: Handler, **limits: float | int | None) -> HttpServer:
        srv = await start_server(
            handler, host="127.0.0.1", port=0, limits=ServerLimits(**limits), on_error=kserve_error  # type: ignore[arg-type]
        )
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        await srv.close()


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)


class Raw:
    """A raw client socket: write exact bytes, read responses one by one."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def response(self, within: float = 5.0) -> RawResponse:
        async with asyncio.timeout(within):
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ")[1])
            headers = [(k.lower(), v.strip()) for k, v in (ln.split(":", 1) for ln in lines[1:] if ln)]
            length = next((int(v) for k, v in headers if k == "content-length"), 0)
            body = await self.reader.readexactly(length) if length else b""
            return RawResponse(status, headers, body)

    async def closed(self, within: float = 5.0) -> bool:
        """True when the server closed the connection (EOF or reset) within ``within`` seconds."""
        try:
            async with asyncio.timeout(within):
                rest = await self.reader.read()
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
        return rest == b""

    def close(self) -> None:
        self.writer.close()

    def reset(self) -> None:
        """Close with a TCP reset (a FIN alone may be a half-close that still wants its answer)."""
        reset(self.writer)


@pytest.fixture
async def raw() -> AsyncIterator[Callable[[int], Awaitable[Raw]]]:
    opened: list[Raw] = []

    async def open_(port: int) -> Raw:
        conn = await Raw.open(port)
        opened.append(conn)
        return conn

    yield open_
    for conn in opened:
        conn.close()


# --- scripted raw backends for the client ----------------------------------------------------------


@pytest.fixture
async def raw_backend_here() -> AsyncIterator[Callable[[Script], Awaitable[RawBackend]]]:
    """``await raw_backend_here(script)``: a :class:`RawBackend` on the test's own event loop (so on
    uvloop too), whose ``script(conn)`` runs per connection; closed at teardown."""
    started: list[RawBackend] = []

    async def start(script: Script) -> RawBackend:
        backend = await RawBackend(script).start_here()
        started.append(backend)
        return backend

    yield start
    for backend in started:
        await backend.aclose()


LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, LoopFactory]:
    """Every async test here runs on both loops: uvloop is what production uses."""
    import uvloop

    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
