"""Raw-socket fake backends (misbehaviour aiohttp cannot produce) and one router process per module.

A backend here is a :class:`~tests.support.backends.RawBackend` running a :func:`~tests.support.backends.routed`
script: the first path segment of a request picks its behaviour (``/reset/...``, ``/stall/...``), so a graph
says which fault it wants through its ``serviceUrl``. The backend outlives the per-test event loop, so one
instance can serve a whole module.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from ..support.backends import RawBackend, RawBehaviour, routed
from ..support.router import RouterProcess, launch_router, write_graphs

ENVELOPE = "Failed to process request"


def head(status: int, length: int | None, extra: str = "") -> bytes:
    cl = f"content-length: {length}\r\n" if length is not None else ""
    return f"HTTP/1.1 {status} X\r\n{cl}{extra}\r\n".encode()


# --- the router as a real process, one per module ----------------------------------------------------


def start_router(workdir: Path, graphs: dict[str, str], *args: str,
                 env: dict[str, str | None] | None = None) -> RouterProcess:
    """Write ``graphs`` (name -> YAML) into ``workdir/graphs`` and serve them; waits for /readyz.

    ``env`` is added to this process's environment; a None value removes the variable."""
    gdir = write_graphs(workdir / "graphs", graphs)
    return launch_router(str(gdir), "--drain-seconds", "0", *args, workdir=workdir, env=env)


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="module")
def raw_factory() -> Iterator[Callable[[dict[str, RawBehaviour]], RawBackend]]:
    """``make(behaviours)``: a started backend answering each request by its path's behaviour."""
    started: list[RawBackend] = []

    def make(behaviours: dict[str, RawBehaviour]) -> RawBackend:
        b = RawBackend(routed, behaviours=behaviours).start()
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
