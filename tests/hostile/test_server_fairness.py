"""Fairness: while one hostile connection keeps the router busy, a normal request on another
connection is still answered promptly (at most 16 KiB of one connection's input are parsed per
event-loop turn). The bound here is generous (a shared CI machine); the figures are printed, and
`python benchmarks/hostile.py` measures them properly."""

from __future__ import annotations

import time

import pytest

from ..support.router import RouterProcess
from .conftest import NORMAL, assert_serving, attacker, chunked_head, connect, read_reply

SAMPLES = 50
SLACK = 0.5

#: name: (head, filler unit, repeats per send)
HOSTILE = {
    "1-byte-chunks": (chunked_head(), b"1\r\nx\r\n", 10000),
    "endless-trailer": (chunked_head() + b"1\r\nx\r\n0\r\nX: ", b"a", 65536),
    "endless-chunk-line": (chunked_head() + b"1;e=", b"v", 65536),
}


def p99(port: int) -> float:
    """p99 latency of SAMPLES normal requests on one keep-alive connection."""
    took = []
    with connect(port) as sock:
        for _ in range(SAMPLES):
            t0 = time.perf_counter()
            sock.sendall(NORMAL)
            reply = read_reply(sock, close_wait=0.0001)
            took.append(time.perf_counter() - t0)
            assert reply.status == 200
    took.sort()
    return took[min(len(took) - 1, int(len(took) * 0.99))]


@pytest.mark.serial  # latency beside a hostile client: another test's load would be measured too
@pytest.mark.parametrize("kind", list(HOSTILE))
def test_a_normal_request_stays_prompt_beside_a_hostile_connection(router: RouterProcess, kind: str) -> None:
    p99(router.port)  # warm
    quiet = p99(router.port)
    with attacker(router.port, *HOSTILE[kind]):
        busy = p99(router.port)
    print(f"\n{kind}: p99 quiet {quiet * 1000:.1f} ms, beside the hostile connection {busy * 1000:.1f} ms")
    assert busy < quiet + SLACK, (quiet, busy)
    assert_serving(router)
