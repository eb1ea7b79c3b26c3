"""Raw-socket fake backends (misbehaviour aiohttp cannot produce) and one router process per module.

:class:`RawBackend` is an asyncio server in its own thread, so it outlives the per-test event loop and
one instance can serve a whole module. The first path segment of a request picks its behaviour
(``/reset/...``, ``/stall/...``), so a graph says which fault it wants through its ``serviceUrl``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
import pytest

from ..conftest import ROOT, RouterProcess, free_port, wait_ready

ENVELOPE = "Failed to process request"
Behaviour = Callable[["Exchange"], Awaitable[bool]]


@dataclass
class Exchange:
    """One request a raw backend received, and the stream to answer it on."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    backend: RawBackend

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def answer(self, status: int, body: bytes, *, extra: str = "") -> bool:
        head = f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\n{extra}\r\n"
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        return True

    async def hold(self, seconds: float, key: str) -> bool:
        """Answer nothing; record ``key`` in ``closed_by_peer`` if the router hangs up first."""
        try:
            async with asyncio.timeout(seconds):
                while await self.reader.read(1024):
                    pass
        except TimeoutError:
            return False
        self.backend.closed_by_peer[key] += 1
        return False


def head(status: int, length: int | None, extra: str = "") -> bytes:
    cl = f"content-length: {length}\r\n" if length is not None else ""
    return f"HTTP/1.1 {status} X\r\n{cl}{extra}\r\n".encode()


@dataclass
class RawBackend:
    """An HTTP/1.1 backend speaking raw bytes; behaviours keyed by the first path segment."""

    behaviours: dict[str, Behaviour]
    port: int = 0
    hits: Counter[str] = field(default_factory=Counter)
    closed_by_peer: Counter[str] = field(default_factory=Counter)
    seen: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, behaviour: str, tail: str = "m") -> str:
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

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = raw.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                key = path.split("/")[1] if path.count("/") >= 1 else ""
                self.hits[key] += 1
                self.seen.append((path, headers, body))
                behaviour = self.behaviours.get(key, ok)
                if not await behaviour(Exchange(method, path, headers, body, reader, writer, self)):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def reset(self) -> None:
        self.hits.clear()
        self.closed_by_peer.clear()
        self.seen.clear()


async def ok(ex: Exchange) -> bool:
    return await ex.answer(200, orjson.dumps({"predictions": [1], "path": ex.path}))


def abort(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0): the router sees ``connection reset by peer``."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    transport = writer.transport
    transport.abort()


# --- the router as a real process, one per module ----------------------------------------------------


def start_router(workdir: Path, graphs: dict[str, str], *args: str,
                 env: dict[str, str | None] | None = None) -> RouterProcess:
    """Write ``graphs`` (name -> YAML) into ``workdir/graphs`` and serve them; waits for /readyz.

    ``env`` is added to this process's environment; a None value removes the variable."""
    gdir = workdir / "graphs"
    gdir.mkdir(parents=True, exist_ok=True)
    for name, text in graphs.items():
        (gdir / f"{name}.yaml").write_text(text)
    port = free_port()
    log_path = workdir / f"router-{port}.log"
    cmd = [sys.executable, "-m", "graph_router", "serve", str(gdir), "--host", "127.0.0.1", "--port", str(port),
           "--drain-seconds", "0", *args]
    full_env = {k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=ROOT,
                                start_new_session=True)
    rp = RouterProcess(proc, port, log_path)
    try:
        wait_ready(rp)
    except BaseException:
        stop_router(rp)
        raise
    return rp


def stop_router(rp: RouterProcess) -> None:
    if rp.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(rp.proc.pid, signal.SIGKILL)
        rp.proc.wait(timeout=10)


def graph(name: str, nodes: str, spec_extra: str = "") -> str:
    """An InferenceGraph resource; ``nodes`` is the YAML under ``spec.nodes`` indented by 6."""
    return (f"apiVersion: serving.kserve.io/v1alpha1\nkind: InferenceGraph\nmetadata: {{name: {name}}}\n"
            f"spec:\n{spec_extra}  nodes:\n{nodes}")


def sequence(url: str, step_extra: str = "") -> str:
    """``nodes`` for a one-step Sequence calling ``url``; ``step_extra``: more step fields (indent 10)."""
    return f"    root:\n      routerType: Sequence\n      steps:\n        - serviceUrl: {url}\n{step_extra}"


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="module")
def raw_factory() -> Iterator[Callable[[dict[str, Behaviour]], RawBackend]]:
    started: list[RawBackend] = []

    def make(behaviours: dict[str, Behaviour]) -> RawBackend:
        b = RawBackend(behaviours).start()
        started.append(b)
        return b

    yield make
    for b in started:
        b.stop()


# --- client helpers --------------------------------------------------------------------------------------


async def call(url: str, body: bytes = b'{"instances": [1]}', *, headers: dict[str, str] | None = None,
               method: str = "POST", within: float = 20) -> tuple[int, dict[str, str], bytes]:
    """One request to the router; redirects are never followed by this client."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=within)) as s, s.request(
        method, url, data=body, headers=headers, allow_redirects=False
    ) as r:
        return r.status, dict(r.headers), await r.read()


def cause_of(body: bytes) -> str:
    """The envelope's cause; fails the test when the body is not exactly the envelope."""
    doc = orjson.loads(body)
    assert isinstance(doc, dict) and set(doc) == {"error", "cause"} and doc["error"] == ENVELOPE, body
    cause = doc["cause"]
    assert isinstance(cause, str)
    return cause


async def wait_until(check: Callable[[], bool], within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.02)
    return check()


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))
