"""Microseconds per request spent recording metrics: what the router calls on :class:`Metrics` per request.

A 1-hop request is ``request_started`` + one ``step_finished`` + ``request_finished``; a Sequence of 3
is the same with three steps. Single-process mode (no ``PROMETHEUS_MULTIPROC_DIR``), best of
``--rounds`` timeit repeats.

    .venv/bin/python benchmarks/metrics_micro.py [--number 200000] [--rounds 5] [--module PATH]

``--module``: time another implementation of ``graph_router/telemetry/metrics.py`` (a file with the
same ``Metrics`` class), e.g. the one on prometheus_client children (2.4 us / 3.8 us per request here,
against 0.42 us / 0.70 us now)::

    git show 7ff7fa4:graph_router/telemetry/metrics.py > /tmp/old_metrics.py
    .venv/bin/python benchmarks/metrics_micro.py --module /tmp/old_metrics.py
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import timeit
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

KEYS = [("g", "root", f"s{i}", f"model-{i}") for i in range(3)]


def load_metrics_class(path: str | None) -> Any:
    if path is None:
        from graph_router.telemetry.metrics import Metrics

        return Metrics
    spec = importlib.util.spec_from_file_location("metrics_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Metrics


def per_request_us(metrics: Any, steps: int, number: int, rounds: int) -> float:
    """Best-of-``rounds`` microseconds for one request with ``steps`` steps (durations vary over buckets)."""
    start, step, finish = metrics.request_started, metrics.step_finished, metrics.request_finished
    keys = KEYS[:steps]

    def one_request() -> None:
        start("g")
        for key in keys:
            step(key, 0.0031, None)
        finish("g", 200, 0.0042)

    one_request()  # series created outside the timing
    best = min(timeit.repeat(one_request, number=number, repeat=rounds))
    return best / number * 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--number", type=int, default=200_000, help="requests per timing round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--module", help="path of another metrics.py to time instead of this tree's")
    args = p.parse_args(argv)
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    cls = load_metrics_class(args.module)
    print(f"metrics: {args.module or 'graph_router.telemetry.metrics'}")
    for name, steps in (("1-hop (start + 1 step + finish)", 1), ("Sequence of 3 (start + 3 steps + finish)", 3)):
        us = per_request_us(cls(multiprocess=False), steps, args.number, args.rounds)
        print(f"{name}: {us:.3f} us/request")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
