"""Hostile-traffic helpers: raw blocking sockets on 127.0.0.1, a real `graph-router serve` subprocess
(RSS and CPU read from /proc), and an echo backend that outlives every test's event loop.

Every loop here is bounded in count and in time; every socket has a timeout.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from ..support.backends import echo_length, raw_backend
from ..support.router import RouterProcess, routers

ENVELOPE_ERROR = "Failed to process request"
#: Two graphs, so a request must name one (``POST /graphs/<name>``): routing is part of what is tested.
GRAPHS = """
apiVersion: serving.kserve.io/v1alpha1
kind: InferenceGraph
metadata: {{name: echo}}
spec:
  nodes:
    root:
      routerType: Sequence
      steps:
        - serviceUrl: {url}/v1/models/echo:predict
---
apiVersion: serving.kserve.io/v1alpha1
kind: InferenceGraph
metadata: {{name: other}}
spec:
  nodes:
    root:
      routerType: Sequence
      steps:
        - serviceUrl: {url}/v1/models/other:predict
"""
NORMAL = b'POST /graphs/echo HTTP/1.1\r\nHost: r\r\nContent-Length: 8\r\n\r\n{"x": 1}'


@pytest.fixture(scope="session")
def echo_url() -> Iterator[str]:
    """A backend answering ``{"received": <body length>}`` (head and body in two writes)."""
    with raw_backend(echo_length) as backend:
        yield backend.base


RouterFactory = Callable[..., RouterProcess]


@pytest.fixture(scope="module")
def start_router(tmp_path_factory: pytest.TempPathFactory, echo_url: str) -> Iterator[RouterFactory]:
    """Start `graph-router serve` over the two echo graphs (extra flags as arguments); stopped at the end."""
    base = tmp_path_factory.mktemp("hostile")
    graphs = base / "graphs.yaml"
    graphs.write_text(GRAPHS.format(url=echo_url))
    with routers(base, str(graphs), "--drain-seconds", "0") as start:
        yield start


@pytest.fixture(scope="module")
def router(start_router: RouterFactory) -> RouterProcess:
    """One router with default settings, shared by a module's tests."""
    return start_router()


# --- raw exchanges -------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    #: The server closed the connection after this answer (EOF or reset within the wait).
    closed: bool

    def json(self) -> dict[str, object]:
        out: dict[str, object] = json.loads(self.body)
        return out


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_reply(sock: socket.socket, *, close_wait: float = 1.0) -> Reply:
    """One response (head, then ``content-length`` bytes of body), then whether the peer closed."""
    buf = b""
    deadline = time.monotonic() + 10.0
    while b"\r\n\r\n" not in buf:
        if time.monotonic() > deadline or len(buf) > 1 << 20:
            raise AssertionError(f"no response head: {buf[:200]!r}")
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a response: {buf[:200]!r}")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        if time.monotonic() > deadline:
            raise AssertionError("response body incomplete")
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("connection closed inside the response body")
        rest += chunk
    return Reply(status, headers, rest[:length], is_closed(sock, close_wait))


def is_closed(sock: socket.socket, wait: float) -> bool:
    """True when the peer closes (EOF or reset) within ``wait`` seconds; unread bytes count as open."""
    sock.settimeout(wait)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    finally:
        sock.settimeout(5.0)


def exchange(port: int, data: bytes | list[bytes], *, timeout: float = 5.0, close_wait: float = 1.0,
             pause: float = 0.0) -> Reply:
    """Send ``data`` (pieces written one by one, ``pause`` seconds apart) on a new connection and read
    one answer. A piece the server refuses to read any more is not an error: the answer is."""
    with connect(port, timeout) as sock:
        for i, piece in enumerate([data] if isinstance(data, bytes) else data):
            if i and pause:
                time.sleep(pause)
            try:
                sock.sendall(piece)
            except OSError:
                break
        return read_reply(sock, close_wait=close_wait)


def closed_cleanly(sock: socket.socket, wait: float = 5.0) -> bool:
    """True when the server ends the connection with a FIN (recv gives EOF), False on a reset: a reset
    can destroy the answer still in flight, which is what a lingering close prevents."""
    sock.settimeout(wait)
    try:
        for _ in range(1000):
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return False
    return False


def read_all(sock: socket.socket, limit: int = 1 << 20) -> bytes:
    """Everything until the server closes (bounded in bytes and by the socket's timeout)."""
    out = b""
    while len(out) < limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        out += chunk
    return out


def assert_refused(reply: Reply, status: int, cause: str | None = None) -> None:
    """A refusal: ``status``, KServe's envelope (with ``cause`` if given), connection closed."""
    assert reply.status == status, reply
    body = reply.json()
    assert body["error"] == ENVELOPE_ERROR, body
    if cause is not None:
        assert body["cause"] == cause, body
    assert reply.closed, "the connection should be closed after a refusal"


def assert_serving(router: RouterProcess) -> None:
    """A normal request on a new connection is served right after (and the process is alive)."""
    assert router.proc.poll() is None, router.log()
    reply = exchange(router.port, NORMAL, close_wait=0.1)
    assert (reply.status, reply.json()) == (200, {"received": 8}), reply
    assert not reply.closed


def chunked_head(path: str = "/graphs/echo") -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: r\r\nTransfer-Encoding: chunked\r\n\r\n".encode()


def send_for(sock: socket.socket, piece: bytes, seconds: float, max_bytes: int, *, until_answer: bool = False) -> int:
    """Send ``piece`` again and again for at most ``seconds`` and ``max_bytes``; stop at the first error
    (the server closed) or, with ``until_answer``, once an answer is there to read. Returns the bytes sent."""
    sent = 0
    deadline = time.monotonic() + seconds
    sock.settimeout(1.0)
    try:
        while sent < max_bytes and time.monotonic() < deadline:
            if until_answer and select.select([sock], [], [], 0)[0]:
                break
            sock.sendall(piece)
            sent += len(piece)
    except (OSError, TimeoutError):
        pass
    finally:
        sock.settimeout(5.0)
    return sent


#: A hostile client in its own process (it must not compete with the measuring test for the GIL):
#: sends its head, then its filler until the deadline; reconnects whenever refused.
_ATTACKER = """
import socket, sys, time
port, head, unit, times, seconds = sys.argv[1:]
head, filler = bytes.fromhex(head), bytes.fromhex(unit) * int(times)
deadline = time.monotonic() + float(seconds)
while time.monotonic() < deadline:
    try:
        with socket.create_connection(("127.0.0.1", int(port)), timeout=2) as s:
            s.sendall(head)
            while time.monotonic() < deadline:
                s.sendall(filler)
    except OSError:
        time.sleep(0.01)
"""


@contextlib.contextmanager
def attacker(port: int, head: bytes, unit: bytes, times: int, seconds: float = 20.0) -> Iterator[None]:
    """One hostile client process running (at most ``seconds``) while the block runs."""
    argv = [sys.executable, "-c", _ATTACKER, str(port), head.hex(), unit.hex(), str(times), str(seconds)]
    proc = subprocess.Popen(argv)
    time.sleep(0.3)  # under way
    try:
        yield
    finally:
        proc.kill()
        proc.wait(timeout=10)
