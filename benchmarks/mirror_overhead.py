"""CPU per request of a 1-hop graph mirrored to a shadow (100% of requests) beside the same graph without.

In-process, as ``telemetry_overhead.py``: GraphRouter + RouterApp called through ``app.handle`` with
the real HTTP transport and metrics on; the real model and the shadow are fixed-response HTTP
servers in two child processes (their CPU is not counted). A run's CPU includes its shadow calls:
the clock stops once every mirrored copy has finished. Variants are interleaved round by round and
the median is reported; ``copies/req`` counts what the shadow answered, ``dropped`` what its queue
refused (raise ``--queue-size`` / ``--max-concurrency`` if it is not 0).

    .venv/bin/python benchmarks/mirror_overhead.py [--requests 20000] [--concurrency 16] [--rounds 3]
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
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import yaml

from benchmarks.benchkit.router import BODY as router_body
from benchmarks.benchkit.router import PATTERNS
from benchmarks.micro_http import bounded, fixed_backend_main
from graph_router import GraphRouter
from graph_router.http.messages import HttpRequest
from graph_router.loader import load_graph_text
from graph_router.mirror import Shadows
from graph_router.server import RouterApp
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


async def measure(variant: str, real: str, shadow: str, args: argparse.Namespace) -> dict[str, Any]:
    tel = Telemetry()
    assert tel.metrics is not None
    shadows = Shadows(tel.metrics)
    router = GraphRouter(load_graph_text(graph_text(VARIANTS[variant], args.max_concurrency, args.queue_size)),
                         services={"model-a": real, "shadow": shadow}, hooks=tel.hooks, shadows=shadows)
    app = RouterApp(router, telemetry=tel)
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


def _run(variant: str, real: str, shadow: str, args: argparse.Namespace, uvloop_on: bool) -> dict[str, Any]:
    if uvloop_on:
        import uvloop

        return dict(uvloop.run(measure(variant, real, shadow, args)))
    return dict(asyncio.run(measure(variant, real, shadow, args)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3, help="variants are interleaved; the median is reported")
    ap.add_argument("--max-concurrency", type=int, default=64, help="the mirror's maxConcurrency")
    ap.add_argument("--queue-size", type=int, default=10000, help="the mirror's queueSize")
    ap.add_argument("--no-uvloop", action="store_true")
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
    print(f"1 hop, mirrored to a shadow on 100% of requests; in-process app.handle with metrics (CPU: engine, "
          f"transport, mirror; no HTTP server), c{args.concurrency}, {'uvloop' if uvloop_on else 'asyncio'}, "
          f"median of {args.rounds} rounds")
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
