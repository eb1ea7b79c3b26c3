"""Shared fixtures: scriptable backends on 127.0.0.1 and a real `graph-router serve` process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from multidict import CIMultiDict

ROOT = Path(__file__).resolve().parent.parent
Behaviour = Callable[[web.Request, bytes], Awaitable[web.StreamResponse]]


#: A graph of one step calling service ``a`` (name ``g``), for tests about the process rather than graphs.
ONE_STEP_GRAPH = """
apiVersion: serving.kserve.io/v1alpha1
kind: InferenceGraph
metadata: {name: g}
spec:
  nodes:
    root:
      routerType: Sequence
      steps:
        - serviceName: a
"""

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
    async def behave(_req: web.Request, _body: bytes) -> web.StreamResponse:
        if delay:
            await asyncio.sleep(delay)
        if raw is not None:
            return web.Response(status=status, body=raw)
        return web.json_response(body if body is not None else {"ok": True}, status=status)

    return behave


@pytest.fixture
async def backend_factory(aiohttp_server: Any) -> AsyncIterator[Callable[[], Awaitable[Backend]]]:
    async def make() -> Backend:
        b = Backend()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", b.handle)
        server = await aiohttp_server(app, host="127.0.0.1")
        b.url = f"http://127.0.0.1:{server.port}"
        return b

    yield make


StartApp = Callable[..., Awaitable[str]]


@pytest.fixture
async def app_server() -> AsyncIterator[StartApp]:
    """Serve a GraphRouter through the real RouterApp and HTTP server on 127.0.0.1; returns the base URL.

    ``await start(router, telemetry=..., limits=..., auth_token=...)``; everything is closed at teardown.
    """
    from graph_router.app import RouterApp, error_response
    from graph_router.http.messages import ServerLimits
    from graph_router.http.server import start_server

    started: list[Any] = []

    async def start(router: Any, *, telemetry: Any = None, limits: ServerLimits | None = None,
                    auth_token: str | None = None) -> str:
        app = RouterApp(router, telemetry=telemetry, auth_token=auth_token)
        server = await start_server(app.handle, host="127.0.0.1", port=0, limits=limits or ServerLimits(),
                                    on_error=error_response)
        app.health.ready = True
        started.append((server, router))
        return f"http://127.0.0.1:{server.port}"

    yield start
    for server, router in started:
        await server.close()
        await router.aclose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RouterProcess:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30) -> int:
        return self.proc.wait(timeout=timeout)


@pytest.fixture
def router_process(tmp_path: Path) -> Iterator[Callable[..., RouterProcess]]:
    """Start `python -m graph_router serve ARGS --port P`; waits for /readyz; always stops it."""
    started: list[RouterProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, ready: bool = True) -> RouterProcess:
        port = free_port()
        log_path = tmp_path / f"router-{port}.log"
        full_env = {**os.environ, **(env or {})}
        cmd = [sys.executable, "-m", "graph_router", "serve", *args, "--host", "127.0.0.1", "--port", str(port)]
        with log_path.open("wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=ROOT,
                                    start_new_session=True)
        rp = RouterProcess(proc, port, log_path)
        started.append(rp)
        if ready:
            wait_ready(rp)
        return rp

    yield start
    for rp in started:
        if rp.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(rp.proc.pid, signal.SIGKILL)
            rp.proc.wait(timeout=10)


def wait_ready(rp: RouterProcess, timeout: float = 20) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if rp.proc.poll() is not None:
            raise AssertionError(f"router exited with {rp.proc.returncode}:\n{rp.log()}")
        try:
            with urllib.request.urlopen(f"{rp.url}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"router not ready after {timeout}s:\n{rp.log()}")


@pytest.fixture(scope="session")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(certificate, key) files: self-signed for 127.0.0.1, made with the openssl CLI (skipped without it)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available")
    d = tmp_path_factory.mktemp("tls")
    key, crt = str(d / "key.pem"), str(d / "cert.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", key, "-out", crt, "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )
    return crt, key
