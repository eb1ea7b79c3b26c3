"""CPU of the HTTP client's per-response work alone: one ordinary answer parsed by ``ClientConnection``.

No sockets: the connection writes into a sink and is fed a typical 1-hop answer (four headers, a
35-byte JSON body), so the figure is the protocol's own cost per exchange (the limits' checks, the
body buffer, the parser callbacks). ``--checkout DIR`` also times another source tree (e.g. the
previous commit) in a separate process, side by side, alternating rounds.

    .venv/bin/python benchmarks/client_parse_micro.py [--exchanges 50000] [--rounds 5] [--checkout DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ANSWER = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ndate: Fri, 04 Dec 2026 09:00:00 GMT\r\n"
          b"content-length: 35\r\n\r\n" + b'{"predictions": [[0.1, 0.2, 0.7]]}\n')


class _Sink(asyncio.Transport):
    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def abort(self) -> None:
        pass

    close = abort

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 1)


async def _time(exchanges: int) -> float:
    """Microseconds per exchange, one round."""
    import inspect

    from graph_router.http import client_protocol
    from graph_router.http.client import ClientLimits

    cls = client_protocol.ClientConnection
    # older trees took the body limit alone
    takes_limits = "limits" in inspect.signature(cls.__init__).parameters
    limits: object = ClientLimits() if takes_limits else 64 << 20
    conn = cls(asyncio.get_running_loop(), limits)  # type: ignore[arg-type]
    conn.connection_made(_Sink())
    start = time.process_time()
    for _ in range(exchanges):
        fut = conn.exchange(b"x", b"")
        conn.data_received(ANSWER)
        fut.result()
    return (time.process_time() - start) / exchanges * 1e6


def _round_in(tree: Path, exchanges: int) -> float:
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--one-round", str(exchanges)],
                         cwd=tree, capture_output=True, text=True, timeout=120, check=True)
    return float(out.stdout.strip())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--exchanges", type=int, default=50000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--checkout", help="another source tree to time side by side (e.g. the previous commit's)")
    p.add_argument("--one-round", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one_round:
        sys.path.insert(0, str(Path.cwd()))
        print(f"{asyncio.run(_time(args.one_round)):.3f}")
        return 0
    trees = {"this tree": ROOT, **({"checkout": Path(args.checkout).resolve()} if args.checkout else {})}
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            us = _round_in(tree, args.exchanges)
            best[name] = min(best.get(name, us), us)
    print(f"client parse path, {args.exchanges} exchanges x {args.rounds} rounds (best round, CPU):")
    for name, tree in trees.items():
        print(f"  {name:<10} {best[name]:6.2f} us/exchange  {tree}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
