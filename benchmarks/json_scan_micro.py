#!/usr/bin/env python3
"""What deciding "is this body JSON?" costs per size: the parse the router used before, and the scan.

    python benchmarks/json_scan_micro.py [--sizes 1KB 100KB 1MB 8MB] [--repeat 5]

The bodies are run.py's payload answers (``{"predictions":[0.123456,...]}`` of the exact size).
Every column is timed in the same process, best of ``--repeat``: ``parse_json`` (orjson, after a
scan for 19+ digit runs that sends those to the stdlib), its two halves, and ``is_json`` (msgspec's
validating scan when the fast extra is installed, which builds no Python objects).
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.benchkit import payload
from graph_router.conditions import document


def best_us(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e6


def _long_run_check(body: bytes) -> bool:
    return document._LONG_RUN in body.translate(document._DIGITS_AS_ZERO)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", choices=list(payload.SIZES), default=list(payload.SIZES))
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args(argv)
    scan = "msgspec scan" if document._scan is not None else "no scanner (msgspec missing): the parse"
    print(f"| size | parse_json | orjson.loads | 19-digit check | is_json ({scan}) | ns/byte parse / scan |")
    print("|---|---|---|---|---|---|")
    for key in args.sizes:
        body = payload.response_body(payload.SIZES[key])
        assert document.is_json(body) and document.parse_json(body) is not document.INVALID
        fns: list[Callable[[bytes], object]] = [document.parse_json, orjson.loads, _long_run_check, document.is_json]
        cells = [best_us(functools.partial(f, body), args.repeat) for f in fns]
        per_byte = f"{cells[0] * 1000 / len(body):.2f} / {cells[3] * 1000 / len(body):.2f}"
        print(f"| {key} | " + " | ".join(f"{c:,.0f} us" for c in cells) + f" | {per_byte} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
