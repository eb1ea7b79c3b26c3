"""Every buffer that grows with a request's bytes has a limit with its own status, reached fast and
cheaply; a refused client still reads its answer (lingering close); a half-closed client gets its answer."""

from __future__ import annotations

import socket
import time

import pytest

from ..support.router import RouterProcess
from .conftest import (
    NORMAL,
    RouterFactory,
    assert_refused,
    assert_serving,
    chunked_head,
    closed_cleanly,
    connect,
    exchange,
    read_all,
    read_reply,
    send_for,
)

TRAILERS_431 = "request trailer fields too large"
HEAD_431 = "request header fields too large"
CHUNK_400 = "chunked encoding contains too much non-data (chunk extensions over 16384 bytes)"
#: Generous bounds for what one hostile connection may cost the router (the point is exhaustion:
#: before the limits, a never-ending trailer cost 21 s of CPU and 200 MB).
CPU_BOUND = 2.0
RSS_BOUND = 40 * 1024 * 1024


def endless(router: RouterProcess, head: bytes, filler: bytes, *, seconds: float = 5.0,
            max_bytes: int = 64 << 20) -> tuple:
    """Send ``head``, then ``filler`` until the router answers (or the bounds end); the reply and the
    router's CPU seconds and RSS growth meanwhile."""
    cpu0, rss0 = router.cpu(), router.rss()
    with connect(router.port) as sock:
        sock.sendall(head)
        sent = send_for(sock, filler, seconds, max_bytes, until_answer=True)
        reply = read_reply(sock)
    return reply, sent, router.cpu() - cpu0, router.rss() - rss0


def test_too_many_trailers_is_431(router: RouterProcess) -> None:
    trailers = b"".join(b"T%d: v\r\n" % i for i in range(65))
    reply = exchange(router.port, chunked_head() + b"1\r\nx\r\n0\r\n" + trailers + b"\r\n")
    assert_refused(reply, 431, TRAILERS_431)
    assert_serving(router)


def test_trailer_bytes_over_the_limit_is_431(router: RouterProcess) -> None:
    reply = exchange(router.port, chunked_head() + b"1\r\nx\r\n0\r\nT: " + b"v" * 17000 + b"\r\n\r\n")
    assert_refused(reply, 431, TRAILERS_431)
    assert_serving(router)


def test_trailers_within_the_limits_are_accepted(router: RouterProcess) -> None:
    trailers = b"".join(b"T%d: v\r\n" % i for i in range(64))
    reply = exchange(router.port, chunked_head() + b"8\r\n{\"x\": 1}\r\n0\r\n" + trailers + b"\r\n")
    assert (reply.status, reply.json(), reply.closed) == (200, {"received": 8}, False)


def test_a_trailer_that_never_ends_is_431_fast_and_cheap(router: RouterProcess) -> None:
    reply, sent, cpu, rss = endless(router, chunked_head() + b"1\r\nx\r\n0\r\nX-Endless: ", b"a" * 65536)
    assert_refused(reply, 431, TRAILERS_431)
    assert sent < 32 << 20, f"{sent} bytes were sent before the refusal arrived"
    assert cpu < CPU_BOUND and rss < RSS_BOUND, (cpu, rss)
    assert_serving(router)


def test_a_header_that_never_ends_is_431_fast_and_cheap(router: RouterProcess) -> None:
    reply, sent, cpu, rss = endless(router, b"POST /graphs/echo HTTP/1.1\r\nHost: r\r\nX-Endless: ", b"a" * 65536)
    assert_refused(reply, 431, HEAD_431)
    assert sent < 32 << 20
    assert cpu < CPU_BOUND and rss < RSS_BOUND, (cpu, rss)
    assert_serving(router)


def test_a_long_chunk_extension_is_400(router: RouterProcess) -> None:
    # Checked at each read of the body: here the extension arrives in reads of its own.
    pieces = [chunked_head(), b"1;e=" + b"v" * 20000, b"\r\nx\r\n0\r\n\r\n"]
    reply = exchange(router.port, pieces, pause=0.1)
    assert_refused(reply, 400, CHUNK_400)
    assert_serving(router)


def test_many_chunks_with_long_extensions_are_400(router: RouterProcess) -> None:
    # Each chunk's line stays short, but together they pass Go's allowance of 16 bytes a chunk.
    chunks = b"1;e=" + b"v" * 100 + b"\r\nx\r\n"
    reply = exchange(router.port, [chunked_head(), chunks * 500, b"0\r\n\r\n"], pause=0.1)
    assert_refused(reply, 400, CHUNK_400)
    assert_serving(router)


def test_a_chunk_line_that_never_ends_is_400_fast_and_cheap(router: RouterProcess) -> None:
    reply, sent, cpu, rss = endless(router, chunked_head() + b"1;e=", b"v" * 65536)
    assert_refused(reply, 400, CHUNK_400)
    assert sent < 32 << 20
    assert cpu < CPU_BOUND and rss < RSS_BOUND, (cpu, rss)
    assert_serving(router)


def test_small_extensions_on_tiny_chunks_are_accepted(router: RouterProcess) -> None:
    # Go's allowance: 16 bytes of overhead per chunk are free, so `1;a=b` chunks are fine.
    body = b"".join(b"1;a=b\r\n%c\r\n" % c for c in b'{"x": 1}' * 500)
    reply = exchange(router.port, chunked_head() + body + b"0\r\n\r\n")
    assert (reply.status, reply.json()) == (200, {"received": 4000})


def test_body_over_the_limit_is_413_before_it_is_read(router: RouterProcess) -> None:
    head = b"POST /graphs/echo HTTP/1.1\r\nHost: r\r\nContent-Length: 10485761\r\n\r\n"
    reply = exchange(router.port, head)
    assert_refused(reply, 413, "request body larger than 10485760 bytes")
    assert_serving(router)


def test_a_client_still_sending_after_413_reads_the_whole_answer(router: RouterProcess) -> None:
    # Without a lingering close the kernel answers the unread body with a reset, which destroys the
    # 413 in the client's receive buffer.
    for _ in range(3):
        with connect(router.port) as sock:
            sock.sendall(b"POST /graphs/echo HTTP/1.1\r\nHost: r\r\nContent-Length: 50000000\r\n\r\n")
            time.sleep(0.05)  # the answer and the close are under way while we keep sending
            send_for(sock, b"x" * 65536, 2.0, 4 << 20)
            reply = read_reply(sock, close_wait=0.0001)
            clean = closed_cleanly(sock)
        assert_refused(reply, 413, "request body larger than 10485760 bytes")
        assert clean, "the connection was reset: an answer still in flight would have been lost"
    assert_serving(router)


def test_a_client_still_sending_after_431_reads_the_whole_answer(router: RouterProcess) -> None:
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(5000))
    for _ in range(3):
        with connect(router.port) as sock:
            sock.sendall(b"POST /graphs/echo HTTP/1.1\r\nHost: r\r\n")
            send_for(sock, headers, 2.0, 4 << 20)
            reply = read_reply(sock, close_wait=0.0001)
            clean = closed_cleanly(sock)
        assert reply.status == 431 and reply.json()["cause"] == HEAD_431, reply
        assert clean, "the connection was reset: an answer still in flight would have been lost"
    assert_serving(router)


def test_a_half_closed_client_gets_its_answer(router: RouterProcess) -> None:
    with connect(router.port) as sock:
        sock.sendall(NORMAL)
        sock.shutdown(socket.SHUT_WR)
        reply = read_reply(sock)
    assert (reply.status, reply.json(), reply.closed) == (200, {"received": 8}, True)
    assert_serving(router)


def test_a_half_closed_client_gets_every_pipelined_answer(router: RouterProcess) -> None:
    with connect(router.port) as sock:
        sock.sendall(NORMAL * 3)
        sock.shutdown(socket.SHUT_WR)
        stream = read_all(sock)
    assert stream.count(b"HTTP/1.1 200 OK\r\n") == 3, stream
    assert stream.count(b'{"received": 8}') == 3, stream


def test_half_a_request_then_eof_is_closed_without_an_answer(router: RouterProcess) -> None:
    with connect(router.port) as sock:
        sock.sendall(b"POST /graphs/echo HTTP/1.1\r\nHost: r\r\nContent-Length: 8\r\n\r\n{\"x")
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(5.0)
        assert sock.recv(100) == b""
    assert_serving(router)


@pytest.fixture(scope="module")
def tight(start_router: RouterFactory) -> RouterProcess:
    return start_router("--max-header-bytes", "2048", "--max-headers", "10", "--max-trailer-bytes", "100",
                        "--max-trailers", "2", "--max-chunk-ext-bytes", "256", "--max-body-bytes", "1000")


def test_every_limit_follows_its_flag(tight: RouterProcess) -> None:
    head = b"POST /graphs/echo HTTP/1.1\r\nHost: r\r\n"
    cases = [
        (head + b"".join(b"X-%d: v\r\n" % i for i in range(10)) + b"\r\n", 431, HEAD_431),
        (head + b"X: " + b"v" * 2100 + b"\r\n\r\n", 431, HEAD_431),
        (chunked_head() + b"1\r\nx\r\n0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 431, TRAILERS_431),
        (chunked_head() + b"1\r\nx\r\n0\r\nA: " + b"v" * 100 + b"\r\n\r\n", 431, TRAILERS_431),
        (head + b"Content-Length: 1001\r\n\r\n", 413, "request body larger than 1000 bytes"),
    ]
    for data, status, cause in cases:
        assert_refused(exchange(tight.port, data), status, cause)
    ext = [chunked_head(), b"1;e=" + b"v" * 300, b"\r\nx\r\n0\r\n\r\n"]
    assert_refused(exchange(tight.port, ext, pause=0.1), 400,
                   "chunked encoding contains too much non-data (chunk extensions over 256 bytes)")
    within = head + b"".join(b"X-%d: v\r\n" % i for i in range(8)) + b"Content-Length: 8\r\n\r\n{\"x\": 1}"
    assert exchange(tight.port, within, close_wait=0.1).status == 200
    assert_serving(tight)
