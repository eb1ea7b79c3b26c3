"""CPU per proxied request of graph-router's HTTP data plane (server + client pool), one hop.

Three processes on 127.0.0.1: a fixed-response backend, the proxy under test (our server whose
handler forwards the body with our client), and this load generator (our client). The proxy reports
its own CPU time, so the figure excludes the backend and the load generator.

    .venv/bin/python benchmarks/micro_http.py [--requests 20000] [--concurrency 64] [--no-uvloop]

Bounded: each phase stops after --max-seconds (default 10) whatever its request count.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from graph_router.http.client import HttpClient, Url
from graph_router.http.server import HttpRequest, HttpResponse, ServerLimits, start_server

BODY = b'{"predictions": [[0.1, 0.2, 0.7]]}'
JSON = [("content-type", "application/json")]


def _err(status: int, cause: str) -> HttpResponse:
    return HttpResponse(status, JSON, b'{"error":"' + cause.encode() + b'"}')


def _use_loop(uvloop_on: bool) -> None:
    if uvloop_on:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def bounded(call: Callable[[], Awaitable[int]], *, total: int, concurrency: int,
                  max_seconds: float) -> tuple[int, float]:
    """Await ``call`` (one request; returns its status) ``total`` times over ``concurrency`` loops,
    stopping after ``max_seconds``. Returns (requests answered 200, wall seconds).

    Shared with ``telemetry_overhead.py`` (over HTTP, and in-process through ``RouterApp.handle``).
    """
    done = 0
    stop_at = time.monotonic() + max_seconds

    async def worker(n: int) -> None:
        nonlocal done
        for _ in range(n):
            if time.monotonic() > stop_at:
                return
            status = await call()
            assert status == 200, status
            done += 1

    t0 = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for _ in range(concurrency):
            tg.create_task(worker(total // concurrency))
    return done, time.perf_counter() - t0


async def drive(client: HttpClient, url: Url, headers: list[tuple[str, str]], body: bytes, *, total: int,
                concurrency: int, max_seconds: float) -> tuple[int, float]:
    """POST ``body`` to ``url`` over keep-alive connections: :func:`bounded` over ``client``."""
    async def post() -> int:
        return (await client.request("POST", url, headers, body, timeout=10)).status

    return await bounded(post, total=total, concurrency=concurrency, max_seconds=max_seconds)


def fixed_backend_main(port_q: Any, uvloop_on: bool, body: bytes = BODY) -> None:
    """A raw protocol answering every request with a fixed response (as cheap as we can make it).

    Runs in its own process; puts its port on ``port_q``. Shared with ``telemetry_overhead.py``.
    """
    import httptools

    reply = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )

    class Fixed(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.t: Any = transport
            self.p = httptools.HttpRequestParser(self)

        def data_received(self, data: bytes) -> None:
            self.p.feed_data(data)

        def on_message_complete(self) -> None:
            self.t.write(reply)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(Fixed, "127.0.0.1", 0)
        port_q.put(srv.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    _use_loop(uvloop_on)
    asyncio.run(run())


def _proxy_main(backend_port: int, port_q: Any, uvloop_on: bool) -> None:
    async def run() -> None:
        client = HttpClient()
        url = Url.parse(f"http://127.0.0.1:{backend_port}/v1/models/m:predict")
        fwd = [("content-type", "application/json")]

        async def handler(req: HttpRequest) -> HttpResponse:
            if req.target == "/__cpu":
                return HttpResponse(200, [], b"%.6f" % time.process_time())
            resp = await client.request("POST", url, fwd, req.body, timeout=10.0)
            return HttpResponse(resp.status, JSON, resp.body)

        srv = await start_server(handler, host="127.0.0.1", port=0, limits=ServerLimits(), on_error=_err)
        port_q.put(srv.port)
        await asyncio.Event().wait()

    _use_loop(uvloop_on)
    asyncio.run(run())


async def _drive(port: int, total: int, concurrency: int, max_seconds: float) -> tuple[float, int, float]:
    client = HttpClient()
    url = Url.parse(f"http://127.0.0.1:{port}/infer")
    cpu_url = Url.parse(f"http://127.0.0.1:{port}/__cpu")
    hdrs = [("content-type", "application/json")]
    for _ in range(200):  # warm-up: connections, caches
        await client.request("POST", url, hdrs, BODY, timeout=10)
    cpu0 = float((await client.request("GET", cpu_url, [], b"", timeout=10)).body)
    done, wall = await drive(client, url, hdrs, BODY, total=total, concurrency=concurrency,
                             max_seconds=max_seconds)
    cpu1 = float((await client.request("GET", cpu_url, [], b"", timeout=10)).body)
    await client.aclose()
    return cpu1 - cpu0, done, wall


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--max-seconds", type=float, default=10.0)
    ap.add_argument("--no-uvloop", action="store_true")
    args = ap.parse_args(argv)
    uvloop_on = not args.no_uvloop
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    backend = ctx.Process(target=fixed_backend_main, args=(q, uvloop_on), daemon=True)
    backend.start()
    backend_port = q.get(timeout=20)
    proxy = ctx.Process(target=_proxy_main, args=(backend_port, q, uvloop_on), daemon=True)
    proxy.start()
    proxy_port = q.get(timeout=20)
    try:
        _use_loop(uvloop_on)
        print(f"loop: {'uvloop' if uvloop_on else 'asyncio'}; proxy CPU per request (1 hop)")
        for conc in (1, args.concurrency):
            n = args.requests // 4 if conc == 1 else args.requests
            cpu, done, wall = asyncio.run(_drive(proxy_port, n, conc, args.max_seconds))
            print(
                f"  c{conc:<3} {done:>6} requests  {wall:6.2f} s  {done / wall:8.0f} req/s  "
                f"proxy CPU {cpu / done * 1e6:6.1f} us/request"
            )
    finally:
        proxy.terminate()
        backend.terminate()
        proxy.join(5)
        backend.join(5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
