"""Memory: a body costs about its size whatever its chunking, and the process's byte budget refuses
new work with 503 and Retry-After instead of growing (measured on a real `graph-router serve`)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from ..support.router import RouterProcess
from .conftest import (
    NORMAL,
    RouterFactory,
    assert_refused,
    assert_serving,
    chunked_head,
    connect,
    exchange,
    read_reply,
)

MB = 1_000_000
MiB = 1 << 20


@contextlib.contextmanager
def peak_rss(router: RouterProcess) -> Iterator[list[int]]:
    """Sample the router's RSS every 5 ms while the block runs; yields [peak] (filled in at exit)."""
    out = [router.rss()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.005):
            with contextlib.suppress(OSError, AssertionError):
                out[0] = max(out[0], router.rss())

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        yield out
    finally:
        stop.set()
        t.join(timeout=5)


def settle(router: RouterProcess, target: int, seconds: float = 5.0) -> int:
    """Poll RSS until it is at most ``target`` or ``seconds`` pass; the last value."""
    deadline = time.monotonic() + seconds
    rss = router.rss()
    while rss > target and time.monotonic() < deadline:
        time.sleep(0.1)
        rss = router.rss()
    return rss


def test_a_10mb_body_in_1_byte_chunks_costs_about_its_size(router: RouterProcess) -> None:
    body = 10 * MB
    assert_serving(router)
    exchange(router.port, NORMAL)  # warm: first-request allocations are not the body's
    idle = router.rss()
    cpu0 = router.cpu()
    with peak_rss(router) as peak, connect(router.port, timeout=30) as sock:
        sock.sendall(chunked_head())
        sock.sendall(b"1\r\nx\r\n" * body)
        sock.sendall(b"0\r\n\r\n")
        sock.settimeout(30)
        reply = read_reply(sock, close_wait=0.1)
    assert (reply.status, reply.json()) == (200, {"received": body}), reply
    grew = peak[0] - idle
    after = settle(router, idle + body // 2)
    print(f"\n10 MB in 1-byte chunks: idle {idle / MiB:.1f} MiB, peak +{grew / MiB:.1f} MiB, "
          f"after +{(after - idle) / MiB:.1f} MiB, router CPU {router.cpu() - cpu0:.2f} s")
    assert grew < 3 * body, f"peak RSS {grew / MiB:.1f} MiB above idle for a {body / MB:.0f} MB body"
    assert after - idle < body // 2, f"RSS stayed {(after - idle) / MiB:.1f} MiB above idle"
    assert_serving(router)


@pytest.fixture(scope="module")
def budgeted(start_router: RouterFactory) -> RouterProcess:
    return start_router("--max-inflight-bytes", str(4 * MiB))


def attack(port: int, size: int) -> socket.socket:
    """A client that sends one chunk of ``size`` bytes of a chunked body, then holds on."""
    sock = connect(port)
    sock.sendall(chunked_head() + b"%x\r\n" % size + b"x" * size)
    return sock


def test_a_spent_budget_refuses_new_bodies_with_503_and_retry_after(budgeted: RouterProcess) -> None:
    assert_serving(budgeted)
    idle = budgeted.rss()
    attackers: list[socket.socket] = []
    try:
        with peak_rss(budgeted) as peak:
            # 8 concurrent attackers: the first four spend the 4 MiB budget, the next four are refused
            for i in range(8):
                attackers.append(attack(budgeted.port, MiB))
                time.sleep(0.5 if i == 3 else 0.05)
            time.sleep(0.3)
            reply = exchange(budgeted.port, NORMAL)
            probe = exchange(budgeted.port, b"GET /readyz HTTP/1.1\r\nHost: r\r\n\r\n", close_wait=0.1)
        assert_refused(reply, 503, "server overloaded: memory for request bodies is spent, retry later")
        assert reply.headers["retry-after"] == "1"
        assert probe.status == 200, "requests without a body (probes) are not refused"
        refused = 0
        for sock in attackers[4:]:  # the later attackers were refused too
            sock.settimeout(5)
            with contextlib.suppress(OSError):
                refused += read_reply(sock).status == 503
        assert refused == 4
        grew = peak[0] - idle
        print(f"\nbudget 4 MiB, 8 attackers: peak RSS +{grew / MiB:.1f} MiB")
        assert grew < 3 * 4 * MiB + 8 * MiB, f"peak RSS +{grew / MiB:.1f} MiB"
    finally:
        for sock in attackers:
            sock.close()
    # The attackers' bytes are given back once their connections close.
    deadline = time.monotonic() + 5
    while exchange(budgeted.port, NORMAL).status != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert_serving(budgeted)
    after = settle(budgeted, idle + 2 * MiB)
    assert after - idle < 2 * MiB, f"RSS stayed {(after - idle) / MiB:.1f} MiB above idle after the attackers left"
    metrics = exchange(budgeted.port, b"GET /metrics HTTP/1.1\r\nHost: r\r\n\r\n", close_wait=0.1).body.decode()
    assert 'graph_router_requests_refused_total{reason="overloaded",status="503"} 5.0' in metrics
