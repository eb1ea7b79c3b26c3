"""CPU of the telemetry hooks alone for one 1-hop request: no network, no event loop, no engine.

Calls what the server and engine call for one request of a one-step graph (``Telemetry.start``, the
node and step hooks, their ends, ``Telemetry.finish``), in a loop, with the OTLP tracer queueing to a
list that is cleared at each batch (no export). Rows: metrics only, tracing on with no request sampled
(ids and ``traceparent`` only), every request traced. Best of 5 runs of N requests.

    .venv/bin/python benchmarks/tracing_micro.py [--requests 200000]

Under load the same code costs about twice as much per request (docs/benchmark-results.md): the rest of
the request keeps the caches cold. Use this to compare two versions of the hooks, not as a CPU figure.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks.benchkit.router import PATTERNS  # the 1-hop graph run.py and telemetry_overhead.py measure
from graph_router import GraphRouter
from graph_router.engine import Context
from graph_router.http.messages import HttpRequest
from graph_router.loader import load_graphs
from graph_router.telemetry import OtlpTracer, Sampler, Telemetry


class ListExporter:
    """Spans go to a list, emptied whenever a batch would be sent."""

    def __init__(self) -> None:
        self.queue: list[bytes] = []
        self.poke_at = 512

    def poke(self) -> None:
        self.queue.clear()

    async def flush(self) -> None:
        self.queue.clear()

    async def aclose(self) -> None:
        self.queue.clear()


def one_run(tel: Telemetry, router: GraphRouter, n: int) -> float:
    """Seconds per request over ``n`` requests."""
    (g,) = router.graphs.values()
    node, step = g.root, g.root.steps[0]
    hooks = tel.hooks
    req = HttpRequest("POST", "/", [("content-type", "application/json"), ("host", "router")], b"{}", "1.1",
                      "127.0.0.1")
    t0 = time.perf_counter()
    for _ in range(n):
        span = tel.start(g.name, req)
        ctx = Context(g, [("Content-Type", "application/json")], req.headers, None, hooks)
        ctx.span = span
        assert hooks is not None
        nrec = hooks.node(ctx, node)
        srec = hooks.step(ctx, node, step)
        srec.end(200, None)
        if nrec is not None:
            nrec.end(None)
        tel.finish(span, g.name, 200, 0.001)
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=200_000)
    args = ap.parse_args()
    router = GraphRouter(load_graphs([PATTERNS["1hop"].graph]), services={"model-a": "http://127.0.0.1:9/"})
    rows = {
        "metrics only": Telemetry(metrics=True),
        "metrics + tracing, none sampled": Telemetry(OtlpTracer(ListExporter(), Sampler("always_off"))),
        "metrics + every request traced": Telemetry(OtlpTracer(ListExporter(), Sampler("always_on"))),
    }
    base = None
    print(f"telemetry hooks of one 1-hop request, best of 5 x {args.requests}")
    for name, tel in rows.items():
        best = min(one_run(tel, router, args.requests) for _ in range(5)) * 1e6
        base = best if base is None else base
        print(f"  {name:34s} {best:5.2f} us  (+{best - base:.2f})")


if __name__ == "__main__":
    main()
