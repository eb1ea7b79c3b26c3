"""Fixtures shared by the whole suite; the code they wrap lives in :mod:`tests.support`.

The names below the imports are re-exported so that ``from .conftest import Backend`` keeps working.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .support.backends import Backend, reply, serve_handler
from .support.graphs import ONE_STEP_GRAPH
from .support.ports import free_port
from .support.router import ROOT, RouterProcess, routers, wait_ready
from .support.serial import alone_when_serial, run_locks

__all__ = ["ONE_STEP_GRAPH", "ROOT", "Backend", "RouterProcess", "StartApp", "alone_when_serial", "free_port", "reply",
           "run_locks", "wait_ready"]


@pytest.fixture
async def backend_factory(aiohttp_server: Any) -> AsyncIterator[Callable[[], Awaitable[Backend]]]:
    """``await make()`` starts a :class:`Backend` on 127.0.0.1; stopped at teardown."""

    async def make() -> Backend:
        b = Backend()
        b.url = await serve_handler(aiohttp_server, b.handle)
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


@pytest.fixture
def router_process(tmp_path: Path) -> Iterator[Callable[..., RouterProcess]]:
    """``start(*args, env=..., ready=True)``: ``graph-router serve ARGS`` on a free port (waits for /readyz
    unless ``ready`` is false); every router started is stopped at teardown."""
    with routers(tmp_path) as start:
        yield start


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
