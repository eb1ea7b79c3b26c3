"""Hostile backends for the client side of the hostile-traffic suite: raw sockets on 127.0.0.1.

:class:`HostileBackend` runs an asyncio server in its own thread, so it outlives a test's event loop
and serves a ``graph-router serve`` subprocess as well as an in-process client. Each accepted
connection is handed to the test's script, a coroutine given a :class:`Conn` to read requests and
write raw bytes. Everything is bounded: each read waits at most a few seconds and every stream
stops when the peer hangs up, at a byte cap, or at a time cap.

The router-process helpers (:func:`serve_graph`, :func:`post`, :func:`cpu_seconds`, :func:`rss_kib`)
measure what a hostile answer costs the real process.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from ..conftest import ROOT, RouterProcess, free_port, wait_ready

Script = Callable[["Conn"], Awaitable[None]]
ENVELOPE = "Failed to process request"


@dataclass
class Request:
    """One request a hostile backend read: which connection (0-based, in accept order) carried it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    conn: int


class Conn:
    """One accepted connection, as the script sees it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int,
                 backend: HostileBackend) -> None:
        self.reader = reader
        self.writer = writer
        self.index = index
        self.backend = backend

    async def request(self, within: float = 5.0) -> Request | None:
        """The next request (recorded on the backend), or None when the peer closed or went quiet."""
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
        req = Request(method, path, headers, body, self.index)
        self.backend.requests.append(req)
        return req

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    async def answer(self, status: int, body: bytes, extra: str = "") -> None:
        """A keep-alive answer with a Content-Length."""
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


@dataclass
class HostileBackend:
    """An HTTP/1.1 backend that does what ``script`` says on every connection."""

    script: Script
    port: int = 0
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    #: Bytes written by :meth:`Conn.stream` (all connections).
    streamed: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None

    def url(self, path: str = "/v1/models/m:predict") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> HostileBackend:
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

        self._thread = threading.Thread(target=run, name="hostile-backend", daemon=True)
        self._thread.start()
        assert ready.wait(5)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = self.connections
        self.connections += 1
        try:
            await self.script(Conn(reader, writer, index, self))
        except (ConnectionError, asyncio.CancelledError):  # the router hung up, or the backend stopped
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()


@contextlib.contextmanager
def hostile(script: Script) -> Iterator[HostileBackend]:
    backend = HostileBackend(script).start()
    try:
        yield backend
    finally:
        backend.stop()


async def answer_each(conn: Conn, reply: bytes = b'{"predictions": [1]}') -> None:
    """A well-behaved keep-alive backend (the control)."""
    while await conn.request() is not None:
        await conn.answer(200, reply, "content-type: application/json\r\n")


# --- the router as a real process --------------------------------------------------------------


def one_step_graph(url: str, spec_extra: str = "", step_extra: str = "") -> str:
    return ("apiVersion: serving.kserve.io/v1alpha1\nkind: InferenceGraph\nmetadata: {name: g}\n"
            f"spec:\n{spec_extra}  nodes:\n    root:\n      routerType: Sequence\n      steps:\n"
            f"        - serviceUrl: {url}\n{step_extra}")


@contextlib.contextmanager
def serve_graph(workdir: Path, graph_yaml: str, *args: str,
                env: dict[str, str] | None = None) -> Iterator[RouterProcess]:
    """``graph-router serve`` on ``graph_yaml`` (127.0.0.1, a free port; ``env`` added); killed on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "graph.yaml"
    path.write_text(graph_yaml)
    port = free_port()
    log_path = workdir / f"router-{port}.log"
    cmd = [sys.executable, "-m", "graph_router", "serve", str(path), "--host", "127.0.0.1", "--port", str(port),
           "--drain-seconds", "0", "--no-access-log", *args]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
                                env={**os.environ, **(env or {})})
    rp = RouterProcess(proc, port, log_path)
    try:
        wait_ready(rp)
        yield rp
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    @property
    def cause(self) -> str:
        doc = orjson.loads(self.body)
        assert doc["error"] == ENVELOPE, doc
        return str(doc["cause"])


def post(rp: RouterProcess, body: bytes = b'{"instances": [1]}', *, within: float = 30.0,
         headers: dict[str, str] | None = None) -> Answer:
    """One POST to the router; raises if no answer comes within ``within`` seconds."""
    conn = http.client.HTTPConnection("127.0.0.1", rp.port, timeout=within)
    start = time.monotonic()
    try:
        conn.request("POST", "/", body=body, headers={"content-type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        data = resp.read()
        return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data, time.monotonic() - start)
    finally:
        conn.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int, key: str = "VmRSS") -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak since start or the last :func:`reset_peak`) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {key} for pid {pid}")


def reset_peak(pid: int) -> bool:
    """Reset the peak RSS (``VmHWM``) to the current RSS; False where the kernel does not allow it."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True
