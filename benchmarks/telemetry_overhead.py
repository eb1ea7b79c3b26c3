"""CPU per request of a graph (1 hop by default) with telemetry off vs metrics and/or tracing on.

Default (in-process): GraphRouter + RouterApp called through ``app.handle`` with its real HTTP
transport, in this process. ``--http``: the whole router (our HTTP server too) in a child process,
driven over keep-alive connections from this one; only the router process's CPU is counted. The
backend is a fixed-response HTTP server in another child process either way.

Tracing "otlp" is what ``serve --tracing otlp`` runs: the SDK-free tracer, exporting real OTLP/HTTP
requests (to the fixed-response server, standing in for a collector; its CPU is not counted).
Tracing "sdk" is the same tracer handing its spans to an OpenTelemetry SDK BatchSpanProcessor (what a
library user with their own TracerProvider gets) and an exporter that drops them (the SDK's work is
measured, not a collector's); its worker thread's CPU is counted.

    .venv/bin/python benchmarks/telemetry_overhead.py [--http] [--requests 20000] [--concurrency 16]
                                                      [--max-seconds 5] [--rounds 3] [--no-uvloop]
                                                      [--variants off "metrics+otlp 100%" ...]
                                                      [--graph 1hop|seq3|ens3|switch|splitter] [--gc-threshold 700]

Bounded: each measured phase stops after --max-seconds whatever its request count.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing as mp
import os
import statistics
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from benchmarks.benchkit.router import BODY as router_body
from benchmarks.benchkit.router import PATTERNS, SERVICES
from benchmarks.micro_http import bounded, drive, fixed_backend_main
from graph_router import GraphRouter
from graph_router.app import RouterApp, error_response
from graph_router.http.client import HttpClient, Url
from graph_router.http.messages import HttpRequest, HttpResponse, ServerLimits
from graph_router.http.server import start_server
from graph_router.loader import load_graphs
from graph_router.telemetry import BatchExporter, ExportConfig, OtlpTracer, Sampler, Telemetry, otlp, sdk_tracer
from graph_router.telemetry.export import HttpSink

BODY = router_body.encode()  # run.py's request body (the Switch graph's condition reads it)
ANSWER = b'{"predictions":[1,2,3]}'
#: name -> (metrics on, tracer, fraction of requests traced). "otlp" is graph-router's own tracer
#: exporting over HTTP; "otlp-unsent" records the same spans and drops each batch instead of sending
#: it; "sdk" hands the spans to an OpenTelemetry SDK processor. Read in order, the otlp rows take the
#: cost apart: metrics, trace context only (0%: ids and traceparent, what a sampled-out request pays), recording the
#: spans (unsent), and exporting them.
VARIANTS: dict[str, tuple[bool, str | None, float]] = {
    "off": (False, None, 0.0),
    "metrics": (True, None, 0.0),
    "metrics+otlp 0%": (True, "otlp", 0.0),
    "metrics+otlp 10%": (True, "otlp", 0.1),
    "metrics+otlp unsent": (True, "otlp-unsent", 1.0),
    "metrics+otlp 100%": (True, "otlp", 1.0),
    "otlp 100%": (False, "otlp", 1.0),
    "metrics+sdk 100%": (True, "sdk", 1.0),
}


class DropExporter(SpanExporter):
    """Counts spans and drops them."""

    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS


class CountingSink(HttpSink):
    """The real OTLP/HTTP sink, counting the spans it sends (``send=False``: counting and dropping them)."""

    count = 0
    send = True

    async def __call__(self, spans: list[bytes]) -> None:
        self.count += len(spans)
        if self.send:
            await super().__call__(spans)


Built = tuple[RouterApp, GraphRouter, Telemetry | None, DropExporter | CountingSink | None]


def build(variant: str, url: str, graph: str = "1hop") -> Built:
    """The router for one variant on ``graph`` (a pattern of ``run.py``), every model answered at ``url``."""
    metrics, tracer, ratio = VARIANTS[variant]
    tel: Telemetry | None = None
    exporter: DropExporter | CountingSink | None = None
    if tracer in ("otlp", "otlp-unsent"):
        collector = url.split("/v1/", 1)[0]
        cfg = ExportConfig.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": collector})
        exporter = CountingSink(cfg, otlp.resource({"service.name": "bench"}), otlp.scope("graph_router", "0"))
        exporter.send = tracer == "otlp"
        batch = BatchExporter(exporter, max_batch=cfg.max_batch, max_queue=cfg.max_queue,
                              schedule_delay=cfg.schedule_delay)
        sampler = Sampler("parentbased_traceidratio", ratio)
        tel = Telemetry(OtlpTracer(batch, sampler), metrics=metrics)
    elif metrics or tracer is not None:
        tracing = None
        if tracer is not None:
            exporter = DropExporter()
            tracing = sdk_tracer(BatchSpanProcessor(exporter), sampler=Sampler("parentbased_traceidratio", ratio),
                                 owned=True)
        tel = Telemetry(tracing, metrics=metrics)
    router = GraphRouter(load_graphs([PATTERNS[graph].graph]), services=dict.fromkeys(SERVICES, url),
                         hooks=tel.hooks if tel is not None else None)
    return RouterApp(router, telemetry=tel), router, tel, exporter


async def flush(tel: Telemetry) -> None:
    await tel.flush()


async def measure(variant: str, url: str, total: int, concurrency: int, max_seconds: float,
                  graph: str) -> dict[str, Any]:
    app, router, tel, exporter = build(variant, url, graph)
    headers = [("content-type", "application/json")]  # no caller trace: the sampler decides per request

    async def call() -> int:
        return (await app.handle(HttpRequest("POST", "/", headers, BODY, "1.1", "127.0.0.1"))).status

    for _ in range(300):  # warm-up: pooled connections, label children, caches
        assert await call() == 200
    if exporter is not None and tel is not None:
        await flush(tel)
        exporter.count = 0  # spans of the measured requests only
    cpu0 = time.process_time()
    done, wall = await bounded(call, total=total, concurrency=concurrency, max_seconds=max_seconds)
    if tel is not None:
        await flush(tel)  # the export work belongs to the run
    cpu = time.process_time() - cpu0
    spans = exporter.count if exporter is not None else 0
    await router.aclose()
    if tel is not None:
        await tel.aclose()
    return {"variant": variant, "requests": done, "cpu_us": cpu / done * 1e6, "rps": done / wall,
            "spans": spans}


def _tune_gc(threshold: int) -> None:
    """Freeze start-up objects (as ``serve`` does once loaded), then set the young-generation threshold."""
    gc.freeze()
    gc.set_threshold(threshold, *gc.get_threshold()[1:])


def _router_main(variant: str, url: str, port_q: Any, uvloop_on: bool, graph: str, gc_threshold: int) -> None:
    """The router for ``--http``: our server in front; ``GET /__cpu`` reports this process's CPU."""
    async def run() -> None:
        app, _router, tel, exporter = build(variant, url, graph)
        _tune_gc(gc_threshold)
        app.health.ready = True

        async def handler(req: HttpRequest) -> HttpResponse:
            if req.target == "/__cpu":
                if tel is not None:
                    await flush(tel)
                spans = exporter.count if exporter is not None else 0
                return HttpResponse(200, [], b"%.6f %d" % (time.process_time(), spans))
            return await app.handle(req)

        srv = await start_server(handler, host="127.0.0.1", port=0, limits=ServerLimits(), on_error=error_response)
        port_q.put(srv.port)
        await asyncio.Event().wait()

    _run(run, uvloop_on)


async def measure_http(port: int, total: int, concurrency: int, max_seconds: float) -> dict[str, Any]:
    client = HttpClient()
    url, cpu_url = Url.parse(f"http://127.0.0.1:{port}/"), Url.parse(f"http://127.0.0.1:{port}/__cpu")
    hdrs = [("content-type", "application/json")]

    async def probe() -> tuple[float, int]:
        cpu, spans = (await client.request("GET", cpu_url, [], b"", timeout=10)).body.split()
        return float(cpu), int(spans)

    for _ in range(300):
        assert (await client.request("POST", url, hdrs, BODY, timeout=10)).status == 200
    await asyncio.sleep(0.2)  # let the span exporter thread drain the warm-up
    cpu0, spans0 = await probe()
    done, wall = await drive(client, url, hdrs, BODY, total=total, concurrency=concurrency, max_seconds=max_seconds)
    await asyncio.sleep(0.2)  # the exporter thread's last batch belongs to the run
    cpu1, spans1 = await probe()
    await client.aclose()
    return {"requests": done, "cpu_us": (cpu1 - cpu0) / done * 1e6, "rps": done / wall, "spans": spans1 - spans0}


def _run(fn: Callable[[], Coroutine[Any, Any, Any]], uvloop_on: bool) -> Any:
    if uvloop_on:
        import uvloop

        return uvloop.run(fn())
    return asyncio.run(fn())


def _one(variant: str, url: str, args: argparse.Namespace, uvloop_on: bool) -> dict[str, Any]:
    if not args.http:
        return dict(_run(lambda: measure(variant, url, args.requests, args.concurrency, args.max_seconds,
                                         args.graph), uvloop_on))
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    router = ctx.Process(target=_router_main, args=(variant, url, q, uvloop_on, args.graph, args.gc_threshold),
                         daemon=True)
    router.start()
    try:
        port = q.get(timeout=20)
        return dict(_run(lambda: measure_http(port, args.requests, args.concurrency, args.max_seconds),
                         uvloop_on))
    finally:
        router.terminate()
        router.join(5)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3, help="variants are interleaved; the median is reported")
    ap.add_argument("--no-uvloop", action="store_true")
    ap.add_argument("--http", action="store_true", help="the router in its own process, driven over HTTP")
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS), metavar="V",
                    help="variants to run, ratios against the first (default: all: "
                         + ", ".join(VARIANTS).replace("%", "%%") + ")")
    ap.add_argument("--graph", choices=list(PATTERNS), default="1hop",
                    help="one of run.py's patterns (benchmarks/graphs/; default 1hop)")
    ap.add_argument("--gc-threshold", type=int, default=gc.get_threshold()[0], metavar="N",
                    help="young-generation GC threshold in the router (default: CPython's, as serve keeps it)")
    args = ap.parse_args(argv)
    uvloop_on = not args.no_uvloop
    if not args.http:
        _tune_gc(args.gc_threshold)  # the router runs in this process
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    backend = ctx.Process(target=fixed_backend_main, args=(q, uvloop_on, ANSWER), daemon=True)
    backend.start()
    url = f"http://127.0.0.1:{q.get(timeout=20)}/v1/models/model:predict"
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in args.variants}
    try:
        for _ in range(args.rounds):
            for v in args.variants:
                results[v].append(_one(v, url, args, uvloop_on))
    finally:
        backend.terminate()
        backend.join(5)
    report(results, args, uvloop_on)
    return 0


def report(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace, uvloop_on: bool) -> None:
    mode = ("router process over HTTP (CPU: server, engine, transport, telemetry)" if args.http
            else "in-process app.handle (CPU: engine, transport, telemetry; no HTTP server)")
    what = PATTERNS[args.graph].title
    print(f"{what}, {mode}, c{args.concurrency}, {'uvloop' if uvloop_on else 'asyncio'}, "
          f"gc threshold {args.gc_threshold}, median of {args.rounds} rounds")
    first = next(iter(results))
    base = statistics.median(r["cpu_us"] for r in results[first])
    print(f"  {'variant':<21} {'requests':>8} {'req/s':>8} {'CPU us/req':>11} {'vs ' + first:>7} {'spans/req':>9}")
    for v, rs in results.items():
        cpu = statistics.median(r["cpu_us"] for r in rs)
        rps = statistics.median(r["rps"] for r in rs)
        n = sum(r["requests"] for r in rs)
        spans = sum(r["spans"] for r in rs) / n if n else 0.0
        print(f"  {v:<21} {n // len(rs):>8} {rps:>8.0f} {cpu:>11.1f} {cpu / base:>6.2f}x {spans:>9.2f}")


if __name__ == "__main__":
    raise SystemExit(main())
