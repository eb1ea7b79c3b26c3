"""CPU per request of a 1-hop graph mirrored to a shadow (100% of requests) beside the same graph without.

In-process by default, as ``telemetry_overhead.py``: GraphRouter + RouterApp called through
``app.handle`` with the real HTTP transport and metrics on. ``--http``: the whole router (our HTTP
server too) in a child process, driven over keep-alive connections; only its CPU is counted. The
real model and the shadow are fixed-response HTTP servers in two more child processes (their CPU is
not counted). A run's CPU includes its shadow calls:
the clock stops once every mirrored copy has finished. Variants are interleaved round by round and
the median is reported; ``copies/req`` counts what the shadow answered, ``dropped`` what its queue
refused (raise ``--queue-size`` / ``--max-concurrency`` if it is not 0).

    .venv/bin/python benchmarks/mirror_overhead.py [--http] [--requests 20000] [--concurrency 16] [--rounds 3]
                                                   [--max-seconds 5] [--no-uvloop]
                                                   [--variants off mirror mirror+compare alongside]

Bounded: each measured phase stops after --max-seconds whatever its request count.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import yaml

from benchmarks.benchkit.router import BODY as router_body
from benchmarks.benchkit.router import PATTERNS
from benchmarks.micro_http import bounded, drive, fixed_backend_main
from graph_router import GraphRouter
from graph_router.app import RouterApp, error_response
from graph_router.http.client import HttpClient, Url
from graph_router.http.messages import HttpRequest, HttpResponse, ServerLimits
from graph_router.http.server import start_server
from graph_router.loader import load_graph_text
from graph_router.mirror import Shadows
from graph_router.telemetry import Telemetry

BODY = router_body.encode()
ANSWER = b'{"predictions":[1,2,3]}'
#: name -> the step's ``mirror`` (None: no mirror)
VARIANTS: dict[str, dict[str, Any] | None] = {
    "off": None,
    "mirror": {"serviceName": "shadow", "percent": 100},
    "mirror+compare": {"serviceName": "shadow", "percent": 100, "compare": "predictions.0"},
    "alongside": {"serviceName": "shadow", "percent": 100, "mode": "alongside"},
}


def graph_text(mirror: dict[str, Any] | None, max_concurrency: int, queue_size: int) -> str:
    """run.py's 1-hop graph, its step mirrored to ``shadow`` when ``mirror`` is given."""
    doc = yaml.safe_load(PATTERNS["1hop"].graph.read_text())
    if mirror is not None:
        doc["spec"]["nodes"]["root"]["steps"][0]["mirror"] = {
            **mirror, "maxConcurrency": max_concurrency, "queueSize": queue_size}
    return yaml.safe_dump(doc)


def build(variant: str, real: str, shadow: str, args: argparse.Namespace) -> tuple[RouterApp, Telemetry, Shadows]:
    tel = Telemetry()
    assert tel.metrics is not None
    shadows = Shadows(tel.metrics)
    router = GraphRouter(load_graph_text(graph_text(VARIANTS[variant], args.max_concurrency, args.queue_size)),
                         services={"model-a": real, "shadow": shadow}, hooks=tel.hooks, shadows=shadows)
    return RouterApp(router, telemetry=tel), tel, shadows


async def measure(variant: str, real: str, shadow: str, args: argparse.Namespace) -> dict[str, Any]:
    app, tel, shadows = build(variant, real, shadow, args)
    router = app.router
    headers = [("content-type", "application/json")]

    async def call() -> int:
        return (await app.handle(HttpRequest("POST", "/", headers, BODY, "1.1", "127.0.0.1"))).status

    for _ in range(300):  # warm-up: pooled connections (the shadow's too), label series, caches
        assert await call() == 200
    async with asyncio.timeout(30):
        await shadows.idle()
    counts0 = _mirror_counts(tel)
    cpu0 = time.process_time()
    done, wall = await bounded(call, total=args.requests, concurrency=args.concurrency,
                               max_seconds=args.max_seconds)
    async with asyncio.timeout(30):
        await shadows.idle()  # the shadow calls of these requests belong to the run
    cpu = time.process_time() - cpu0
    sent, dropped = (a - b for a, b in zip(_mirror_counts(tel), counts0, strict=True))
    await router.aclose()
    await tel.aclose()
    return {"requests": done, "cpu_us": cpu / done * 1e6, "rps": done / wall, "copies": sent / done,
            "dropped": dropped}


def _mirror_counts(tel: Telemetry) -> tuple[float, float]:
    """Copies sent and dropped so far, from the metrics (the same numbers /metrics shows)."""
    text = tel.metrics_body()[0].decode()
    sent = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("graph_router_mirror_requests_total{"))
    dropped = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                  if line.startswith("graph_router_mirror_dropped_total{"))
    return sent, dropped


def _router_main(variant: str, real: str, shadow: str, args: argparse.Namespace, port_q: Any,
                 uvloop_on: bool) -> None:
    """The router for ``--http``: our server in front; ``GET /__cpu`` waits for the shadow calls to
    finish, then reports this process's CPU and the copies sent and dropped."""
    async def run() -> None:
        app, tel, shadows = build(variant, real, shadow, args)
        app.health.ready = True

        async def handler(req: HttpRequest) -> HttpResponse:
            if req.target == "/__cpu":
                async with asyncio.timeout(30):
                    await shadows.idle()
                sent, dropped = _mirror_counts(tel)
                return HttpResponse(200, [], b"%.6f %d %d" % (time.process_time(), sent, dropped))
            return await app.handle(req)

        srv = await start_server(handler, host="127.0.0.1", port=0, limits=ServerLimits(), on_error=error_response)
        port_q.put(srv.port)
        await asyncio.Event().wait()

    _loop(run, uvloop_on)


async def measure_http(port: int, args: argparse.Namespace) -> dict[str, Any]:
    client = HttpClient()
    url, cpu_url = Url.parse(f"http://127.0.0.1:{port}/"), Url.parse(f"http://127.0.0.1:{port}/__cpu")
    hdrs = [("content-type", "application/json")]

    async def probe() -> list[float]:
        return [float(x) for x in (await client.request("GET", cpu_url, [], b"", timeout=40)).body.split()]

    for _ in range(300):
        assert (await client.request("POST", url, hdrs, BODY, timeout=10)).status == 200
    cpu0, sent0, dropped0 = await probe()
    done, wall = await drive(client, url, hdrs, BODY, total=args.requests, concurrency=args.concurrency,
                             max_seconds=args.max_seconds)
    cpu1, sent1, dropped1 = await probe()
    await client.aclose()
    return {"requests": done, "cpu_us": (cpu1 - cpu0) / done * 1e6, "rps": done / wall,
            "copies": (sent1 - sent0) / done, "dropped": dropped1 - dropped0}


def _loop(fn: Callable[[], Coroutine[Any, Any, Any]], uvloop_on: bool) -> Any:
    if uvloop_on:
        import uvloop

        return uvloop.run(fn())
    return asyncio.run(fn())


def _run(variant: str, real: str, shadow: str, args: argparse.Namespace, uvloop_on: bool) -> dict[str, Any]:
    if not args.http:
        return dict(_loop(lambda: measure(variant, real, shadow, args), uvloop_on))
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    router = ctx.Process(target=_router_main, args=(variant, real, shadow, args, q, uvloop_on), daemon=True)
    router.start()
    try:
        port = q.get(timeout=20)
        return dict(_loop(lambda: measure_http(port, args), uvloop_on))
    finally:
        router.terminate()
        router.join(5)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3, help="variants are interleaved; the median is reported")
    ap.add_argument("--max-concurrency", type=int, default=64, help="the mirror's maxConcurrency")
    ap.add_argument("--queue-size", type=int, default=10000, help="the mirror's queueSize")
    ap.add_argument("--no-uvloop", action="store_true")
    ap.add_argument("--http", action="store_true", help="the router in its own process, driven over HTTP")
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS), metavar="V",
                    help=f"variants to run, ratios against the first (default: all: {', '.join(VARIANTS)})")
    args = ap.parse_args(argv)
    uvloop_on = not args.no_uvloop
    ctx = mp.get_context("spawn")
    backends, urls = [], []
    try:
        for _ in range(2):  # the real model, then the shadow
            q = ctx.Queue()
            p = ctx.Process(target=fixed_backend_main, args=(q, uvloop_on, ANSWER), daemon=True)
            p.start()
            backends.append(p)
            urls.append(f"http://127.0.0.1:{q.get(timeout=20)}/v1/models/model:predict")
        results: dict[str, list[dict[str, Any]]] = {v: [] for v in args.variants}
        for _ in range(args.rounds):
            for v in args.variants:
                results[v].append(_run(v, urls[0], urls[1], args, uvloop_on))
    finally:
        for p in backends:
            p.terminate()
            p.join(5)
    report(results, args, uvloop_on)
    return 0


def report(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace, uvloop_on: bool) -> None:
    mode = ("router process over HTTP with metrics (CPU: server, engine, transport, mirror)" if args.http
            else "in-process app.handle with metrics (CPU: engine, transport, mirror; no HTTP server)")
    print(f"1 hop, mirrored to a shadow on 100% of requests; {mode}, c{args.concurrency}, "
          f"{'uvloop' if uvloop_on else 'asyncio'}, median of {args.rounds} rounds")
    first = next(iter(results))
    base = statistics.median(r["cpu_us"] for r in results[first])
    print(f"  {'variant':<15} {'requests':>8} {'req/s':>8} {'CPU us/req':>11} {'vs ' + first:>7} "
          f"{'copies/req':>10} {'dropped':>8}")
    for v, rs in results.items():
        cpu = statistics.median(r["cpu_us"] for r in rs)
        rps = statistics.median(r["rps"] for r in rs)
        n = sum(r["requests"] for r in rs)
        copies = statistics.median(r["copies"] for r in rs)
        dropped = sum(r["dropped"] for r in rs)
        print(f"  {v:<15} {n // len(rs):>8} {rps:>8.0f} {cpu:>11.1f} {cpu / base:>6.2f}x {copies:>10.2f} "
              f"{dropped:>8.0f}")


if __name__ == "__main__":
    raise SystemExit(main())
