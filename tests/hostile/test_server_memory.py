"""Memory: a body costs about its size whatever its chunking, and the process's byte budget refuses
new work with 503 and Retry-After instead of growing (measured on a real `graph-router serve`)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from graph_router.heap import TRIM_CHECK_SECONDS

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


def minor_faults(pid: int) -> int:
    """The process's minor page faults so far (``/proc/<pid>/stat``, field 10)."""
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])


def megabyte_request() -> list[bytes]:
    """A request with a 1 MB body, in 64 KiB pieces."""
    body = b"x" * MB
    head = b"POST /graphs/echo HTTP/1.1\r\nHost: r\r\nContent-Length: %d\r\n\r\n" % MB
    return [head] + [body[i:i + 64 * 1024] for i in range(0, MB, 64 * 1024)]


def faults_per_megabyte_request(router: RouterProcess, count: int = 20) -> float:
    """Minor page faults of the router per 1 MB request body, after a warm-up."""
    pieces = megabyte_request()
    for _ in range(3):
        assert exchange(router.port, pieces, timeout=30, close_wait=0.01).status == 200
    before = minor_faults(router.proc.pid)
    for _ in range(count):
        assert exchange(router.port, pieces, timeout=30, close_wait=0.01).status == 200
    return (minor_faults(router.proc.pid) - before) / count


def test_large_bodies_reuse_the_heap_while_busy_and_give_it_back_when_idle(start_router: RouterFactory) -> None:
    # glibc's defaults give a body of this size fresh pages every time (its own mmap, or a trimmed heap
    # top): a 1 MB body is 256 pages, and each costs a page fault when first touched
    defaults = start_router(env={"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"})
    tuned = start_router()
    exchange(tuned.port, NORMAL)
    idle = tuned.rss()
    untuned_faults, tuned_faults = faults_per_megabyte_request(defaults), faults_per_megabyte_request(tuned)
    pieces = megabyte_request()
    for _ in range(3):  # 12 bodies at once: the heap grows by about their size, kept while busy
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda _: exchange(tuned.port, pieces, timeout=30, close_wait=0.01), range(12)))
        assert [a.status for a in answers] == [200] * 12
    busy = tuned.rss()
    # a whole check interval without a body: the kept heap goes back (within two intervals; polled)
    after = settle(tuned, idle + 2 * MiB, seconds=6 * TRIM_CHECK_SECONDS)
    print(f"\nminor page faults per 1 MB request: glibc defaults {untuned_faults:.0f}, serve {tuned_faults:.0f}; "
          f"RSS above idle: {(busy - idle) / MiB:.1f} MiB busy, {(after - idle) / MiB:.1f} MiB idle again")
    assert untuned_faults > 200  # the operator's own MALLOC_* settings are left alone
    assert tuned_faults < 64
    assert busy - idle > 8 * MiB and after - idle < 2 * MiB
