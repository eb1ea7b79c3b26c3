"""Fairness: while one hostile connection keeps the router busy, a normal request on another
connection is still answered promptly (the work for one connection is bounded per event-loop turn:
one read of at most 256 KiB is parsed per turn). The bound is generous; the figures are printed."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from .conftest import NORMAL, Router, assert_serving, chunked_head, connect, read_reply, send_for

SAMPLES = 40
#: Generous (a shared CI machine); the issue's target is 50 ms, printed for the record.
SLACK = 0.5


def p99(port: int) -> float:
    """p99 (here: the worst of SAMPLES) latency of normal requests on one keep-alive connection."""
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


def tiny_chunks(port: int, stop: threading.Event) -> None:
    with connect(port) as sock:
        sock.sendall(chunked_head())
        piece = b"1\r\nx\r\n" * 10000
        deadline = time.monotonic() + 10
        while not stop.is_set() and time.monotonic() < deadline:
            if not send_for(sock, piece, 0.2, 8 << 20):
                break


def endless_trailers(port: int, stop: threading.Event) -> None:
    # Refused at once now: the attacker reconnects and starts again, again and again.
    deadline = time.monotonic() + 10
    while not stop.is_set() and time.monotonic() < deadline:
        with connect(port) as sock, contextlib.suppress(OSError):
            sock.sendall(chunked_head() + b"1\r\nx\r\n0\r\nX: ")
            send_for(sock, b"a" * 65536, 0.5, 1 << 20, until_answer=True)


@contextlib.contextmanager
def hostile(kind: Callable[[int, threading.Event], None], port: int) -> Iterator[None]:
    stop = threading.Event()
    t = threading.Thread(target=kind, args=(port, stop), daemon=True)
    t.start()
    time.sleep(0.3)  # under way
    try:
        yield
    finally:
        stop.set()
        t.join(timeout=15)


@pytest.mark.parametrize("kind", [tiny_chunks, endless_trailers], ids=["1-byte-chunks", "endless-trailer"])
def test_a_normal_request_stays_prompt_beside_a_hostile_connection(router: Router, kind: Callable) -> None:
    p99(router.port)  # warm
    quiet = p99(router.port)
    with hostile(kind, router.port):
        busy = p99(router.port)
    print(f"\n{kind.__name__}: p99 quiet {quiet * 1000:.1f} ms, beside the hostile connection {busy * 1000:.1f} ms")
    assert busy < quiet + SLACK, (quiet, busy)
    assert_serving(router)
