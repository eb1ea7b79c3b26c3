"""Fake backends on 127.0.0.1 whose answers a test scripts, each recording what it received.

- :class:`Backend`: an aiohttp application (started by the ``backend_factory`` fixture) for well-formed
  HTTP; each request takes the next behaviour from ``script``, then ``default``.
- :class:`RawBackend`: an asyncio server speaking raw bytes, for misbehaviour aiohttp cannot produce.
  :meth:`RawBackend.start` runs it in its own thread, so it outlives a test's event loop and can serve a
  ``graph-router serve`` process or a whole module; :meth:`RawBackend.start_here` runs it on the test's
  own event loop, for scripts that share the test's asyncio objects or should run on the loop under test.
  Every accepted connection is handed to the test's script as a :class:`Conn`; :func:`routed` is a script
  that picks one of the backend's ``behaviours`` by the first path segment of each request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDict

# --- well-formed HTTP: an aiohttp backend ---------------------------------------------------------

Behaviour = Callable[[web.Request, bytes], Awaitable[web.StreamResponse]]


Handle = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def serve_handler(aiohttp_server: Any, handle: Handle, **app_args: Any) -> str:
    """Start an aiohttp server on 127.0.0.1 (the ``aiohttp_server`` fixture: stopped at teardown) that sends
    every method and path to ``handle``; its base URL. ``app_args`` go to ``web.Application``."""
    app = web.Application(**app_args)
    app.router.add_route("*", "/{tail:.*}", handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    return f"http://127.0.0.1:{server.port}"


@dataclass
class Seen:
    path: str
    headers: CIMultiDict[str]
    body: bytes


@dataclass
class Backend:
    """A real HTTP backend whose answers a test scripts; records every request."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    script: list[Behaviour] = field(default_factory=list)
    default: Behaviour | None = None

    def predict_url(self, model: str = "m") -> str:
        return f"{self.url}/v1/models/{model}:predict"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(Seen(request.path_qs, CIMultiDict(request.headers), body))
        behaviour = self.script.pop(0) if self.script else self.default
        if behaviour is None:
            return web.json_response({"predictions": [1], "echo": body.decode(errors="replace")})
        return await behaviour(request, body)


def reply(status: int = 200, body: Any = None, *, raw: bytes | None = None, delay: float = 0.0) -> Behaviour:
    """A behaviour: answer ``status`` with ``body`` as JSON (or ``raw`` bytes), after ``delay`` seconds."""

    async def behave(_req: web.Request, _body: bytes) -> web.StreamResponse:
        if delay:
            await asyncio.sleep(delay)
        if raw is not None:
            return web.Response(status=status, body=raw)
        return web.json_response(body if body is not None else {"ok": True}, status=status)

    return behave


# --- raw bytes: a threaded asyncio server ------------------------------------------------------------

Script = Callable[["Conn"], Awaitable[None]]


@dataclass
class Request:
    """One request a raw backend read: which connection (0-based, in accept order) carried it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    conn: int
    #: The request line and header lines as received, ending with the blank line.
    head: str = ""

    @property
    def request_line(self) -> str:
        return self.head.split("\r\n", 1)[0]

    def header(self, name: str) -> str | None:
        """The first header line called ``name`` (any case), as received; ``headers`` keeps the last."""
        for line in self.head.split("\r\n")[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == name.lower():
                return v.strip()
        return None


class Conn:
    """One accepted connection, as the script sees it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int,
                 backend: RawBackend) -> None:
        self.reader = reader
        self.writer = writer
        self.index = index
        self.backend = backend

    async def request(self, within: float | None = 5.0) -> Request | None:
        """The next request (recorded on the backend), or None when the peer closed or went quiet
        (``within`` seconds; None waits as long as the connection stays open)."""
        try:
            async with asyncio.timeout(within):
                raw = await self.reader.readuntil(b"\r\n\r\n")
                lines = raw.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip()
                           for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return None
        req = Request(method, path, headers, body, self.index, raw.decode("latin-1"))
        self.backend.requests.append(req)
        return req

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    @staticmethod
    def ok(body: bytes = b'{"ok":true}', extra: str = "") -> bytes:
        """A 200 JSON response with a Content-Length, as bytes (``extra``: more header lines,
        CRLF-terminated)."""
        head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        return f"{head}{extra}\r\n".encode() + body

    async def answer(self, status: int, body: bytes, extra: str = "") -> None:
        """A keep-alive answer with a Content-Length (``extra``: more header lines, CRLF-terminated)."""
        self.writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\n{extra}\r\n".encode() + body)
        await self.writer.drain()

    async def stream(self, piece: bytes, *, max_bytes: int, within: float = 20.0) -> int:
        """Write ``piece`` again and again until the peer hangs up, ``max_bytes`` or ``within`` seconds."""
        sent = 0
        deadline = time.monotonic() + within
        try:
            while sent < max_bytes and time.monotonic() < deadline:
                self.writer.write(piece)
                sent += len(piece)
                await self.writer.drain()
                if self.writer.is_closing():
                    break
        except ConnectionError:
            pass
        self.backend.streamed += sent
        return sent

    async def closed_by_peer(self, within: float = 5.0) -> bool:
        """True once the other side closed the connection (reads and drops what it sends)."""
        try:
            async with asyncio.timeout(within):
                while await self.reader.read(65536):
                    pass
        except TimeoutError:
            return False
        except ConnectionError:
            pass
        return True

    def abort(self) -> None:
        """Close with RST (SO_LINGER 0): the router sees ``connection reset by peer``."""
        reset(self.writer)


def reset(writer: asyncio.StreamWriter) -> None:
    """Close a connection with a TCP reset (SO_LINGER 0), not a FIN (which may be a half-close that
    still wants its answer)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@dataclass
class RawBackend:
    """An HTTP/1.1 backend that does what ``script`` says on every connection."""

    script: Script
    port: int = 0
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    #: Bytes written by :meth:`Conn.stream` (all connections).
    streamed: int = 0
    #: For the :func:`routed` script: behaviour by first path segment, requests per behaviour, and
    #: connections the router closed while one was held.
    behaviours: dict[str, RawBehaviour] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)
    closed_by_peer: Counter[str] = field(default_factory=Counter)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    #: Set by :meth:`start_here`: the server, and the scripts running on the test's loop.
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "/v1/models/m:predict") -> str:
        return f"{self.base}{path}"

    def route(self, behaviour: str, tail: str = "m") -> str:
        """The URL that a :func:`routed` script answers with ``behaviour``."""
        return f"{self.base}/{behaviour}/{tail}"

    def start(self) -> RawBackend:
        ready = threading.Event()

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            server = loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            server.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

        self._thread = threading.Thread(target=run, name="raw-backend", daemon=True)
        self._thread.start()
        assert ready.wait(5)
        return self

    async def start_here(self) -> RawBackend:
        """Serve on the running event loop (the test's own) until :meth:`aclose`."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def aclose(self) -> None:
        """Stop a backend started with :meth:`start_here`: no new connections, scripts cancelled."""
        if self._server is None:
            return
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    def reset(self) -> None:
        """Forget what was received (a module-wide backend between tests)."""
        self.requests.clear()
        self.hits.clear()
        self.closed_by_peer.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = self.connections
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self.script(Conn(reader, writer, index, self))
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the router hung up, or the backend stopped
        finally:
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()


@contextlib.contextmanager
def raw_backend(script: Script) -> Iterator[RawBackend]:
    """A started :class:`RawBackend` for the length of a ``with`` block."""
    backend = RawBackend(script).start()
    try:
        yield backend
    finally:
        backend.stop()


async def answer_each(conn: Conn, reply: bytes = b'{"predictions": [1]}') -> None:
    """A script: a well-behaved keep-alive backend (the control)."""
    while await conn.request() is not None:
        await conn.answer(200, reply, "content-type: application/json\r\n")


async def echo_length(conn: Conn) -> None:
    """A script: answer every request with ``{"received": <body length>}`` (``json.dumps`` spacing),
    head and body in two writes."""
    while (req := await conn.request(within=None)) is not None:
        out = json.dumps({"received": len(req.body)}).encode()
        conn.write(f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(out)}\r\n\r\n"
                   .encode())
        await conn.writer.drain()
        conn.write(out)
        await conn.writer.drain()


# --- behaviours chosen by path ---------------------------------------------------------------------


@dataclass
class Exchange:
    """One request of a :func:`routed` script, and the connection to answer it on."""

    request: Request
    conn: Conn

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def path(self) -> str:
        return self.request.path

    @property
    def body(self) -> bytes:
        return self.request.body

    @property
    def writer(self) -> asyncio.StreamWriter:
        return self.conn.writer

    @property
    def backend(self) -> RawBackend:
        return self.conn.backend

    def send(self, data: bytes) -> None:
        self.conn.write(data)

    async def answer(self, status: int, body: bytes, *, extra: str = "") -> bool:
        await self.conn.answer(status, body, extra)
        return True

    async def hold(self, seconds: float, key: str) -> bool:
        """Answer nothing; count ``key`` in the backend's ``closed_by_peer`` if the router hangs up first."""
        if await self.conn.closed_by_peer(seconds):
            self.backend.closed_by_peer[key] += 1
        return False


#: A behaviour answers one exchange; True keeps the connection for the next request.
RawBehaviour = Callable[[Exchange], Awaitable[bool]]


async def ok(ex: Exchange) -> bool:
    return await ex.answer(200, orjson.dumps({"predictions": [1], "path": ex.path}))


async def routed(conn: Conn) -> None:
    """A script: each request is answered by the backend's behaviour named by its first path segment
    (``/stall/m`` -> ``behaviours["stall"]``; :func:`ok` for any other), and counted in its ``hits``."""
    while (req := await conn.request(within=None)) is not None:
        key = req.path.split("/")[1] if req.path.count("/") >= 1 else ""
        conn.backend.hits[key] += 1
        if not await conn.backend.behaviours.get(key, ok)(Exchange(req, conn)):
            return
