#!/usr/bin/env python3
"""CPU per request of the engine alone: GraphRouter.run over in-process backends that answer at once.

    python benchmarks/engine_micro.py [--requests 20000] [--repeat 5] [--patterns 1hop seq3 ens3]

No sockets and no HTTP: what the app, header policy, engine, retries and instrumentation seam cost
per request, on uvloop when installed (as ``serve``). The backends return fixed bytes without
parsing what they get, so a body is parsed only where the router itself parses it. Best of
``--repeat`` runs of ``--requests`` requests each (process CPU time).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from graph_router import GraphRouter
from graph_router.backend import BackendRequest, BackendResponse

ANSWER = b'{"predictions":[1,2,3]}'
BODY = b'{"instances":[{"modelId":"2","data":[1.0,2.0,3.0,4.0]}]}'
PATTERNS = {"1hop": ("Sequence", 1, "1 hop"), "seq3": ("Sequence", 3, "Sequence of 3"),
            "ens3": ("Ensemble", 3, "Ensemble of 3")}


class Fixed:
    """A backend answering fixed bytes at once."""

    target = "in-process"

    async def call(self, request: BackendRequest) -> BackendResponse:
        return BackendResponse(200, ANSWER, [])

    async def aclose(self) -> None:
        return None


def spec(kind: str, n: int) -> dict[str, Any]:
    steps = [{"serviceName": f"m{i}", "name": f"s{i}", **({"data": "$response"} if kind == "Sequence" and i else {})}
             for i in range(n)]
    return {"nodes": {"root": {"routerType": kind, "steps": steps}}}


async def measure(key: str, requests: int, repeat: int) -> float:
    kind, n, _ = PATTERNS[key]
    async with GraphRouter.from_spec(spec(kind, n), services={f"m{i}": Fixed() for i in range(n)}) as r:
        g = r.graphs[next(iter(r.graphs))]
        best = float("inf")
        for _ in range(repeat):
            t0 = time.process_time()
            for _ in range(requests):
                await r.run(g, BODY, [("content-type", "application/json")])
            best = min(best, (time.process_time() - t0) / requests * 1e6)
        return best


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--patterns", nargs="+", choices=list(PATTERNS), default=list(PATTERNS))
    args = p.parse_args(argv)
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        loop_name = "uvloop"
    except ImportError:
        loop_name = "asyncio"
    print(f"engine alone, {loop_name}, best of {args.repeat} x {args.requests:,} requests (CPU per request):")
    for key in args.patterns:
        print(f"  {PATTERNS[key][2]:<16} {asyncio.run(measure(key, args.requests, args.repeat)):6.2f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
