"""Request smuggling and framing (RFC 9112 sections 2.2, 3, 6 and 7; cases from Go's net/http and h11
tests): every ambiguous or malformed message is refused with the envelope and the connection closed,
and the router keeps serving. Plus Go's strictness on Host and the protocol version, and absolute-form
targets routed by their path."""

from __future__ import annotations

import pytest

from ..support.router import RouterProcess
from .conftest import NORMAL, assert_refused, assert_serving, exchange

H = b"POST /graphs/echo HTTP/1.1\r\nHost: r\r\n"
MALFORMED = "malformed HTTP request: "

#: (request bytes, status, the cause in the envelope)
REFUSED = {
    "content-length and transfer-encoding": (
        H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
        MALFORMED + "Transfer-Encoding can't be present with Content-Length"),
    "two different content-lengths": (
        H + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400, MALFORMED + "Duplicate Content-Length"),
    "two equal content-lengths": (
        H + b"Content-Length: 1\r\nContent-Length: 1\r\n\r\na", 400, MALFORMED + "Duplicate Content-Length"),
    "content-length list": (
        H + b"Content-Length: 1, 1\r\n\r\na", 400, MALFORMED + "Invalid character in Content-Length"),
    "content-length with a sign": (
        H + b"Content-Length: +1\r\n\r\na", 400, MALFORMED + "Invalid character in Content-Length"),
    "negative content-length": (
        H + b"Content-Length: -1\r\n\r\na", 400, MALFORMED + "Invalid character in Content-Length"),
    "chunked not last": (
        H + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400,
        MALFORMED + "Invalid `Transfer-Encoding` header value"),
    "transfer-encoding twice": (
        H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
        MALFORMED + "Invalid `Transfer-Encoding` header value"),
    "unsupported coding": (
        H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501,
        'unsupported transfer encoding: "gzip, chunked"'),
    "space before the colon": (
        H + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400, MALFORMED + "Invalid header field char"),
    "chunk size not hex": (
        H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400, MALFORMED + "Invalid character in chunk size"),
    "negative chunk size": (
        H + b"Transfer-Encoding: chunked\r\n\r\n-1\r\n", 400, MALFORMED + "Invalid character in chunk size"),
    "chunk size overflow": (
        H + b"Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\n", 400, MALFORMED + "Chunk size overflow"),
    "chunk data longer than its size": (
        H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n", 400,
        MALFORMED + "Expected LF after chunk data"),
    "obs-fold": (H + b"X: a\r\n b\r\nContent-Length: 0\r\n\r\n", 400,
                 MALFORMED + "Unexpected whitespace after header value"),
    "bare LF line ends": (b"POST /graphs/echo HTTP/1.1\nHost: r\nContent-Length: 0\n\n", 400,
                          MALFORMED + "Expected CRLF after version"),
    "bare CR in a value": (H + b"X: a\rb\r\nContent-Length: 0\r\n\r\n", 400,
                           MALFORMED + "Missing expected LF after header value"),
    "space in a name": (H + b"Bad Header: x\r\nContent-Length: 0\r\n\r\n", 400, MALFORMED + "Invalid header token"),
    "NUL in a value": (H + b"X: a\x00b\r\nContent-Length: 0\r\n\r\n", 400, MALFORMED + "Invalid header value char"),
    "bad method": (b"G@T /graphs/echo HTTP/1.1\r\nHost: r\r\n\r\n", 400, MALFORMED + "Invalid method encountered"),
    "space in the target": (b"POST /graphs/echo x HTTP/1.1\r\nHost: r\r\n\r\n", 400, None),
    "upgrade with a body": (H + b"Connection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 1\r\n\r\nx", 400,
                            "upgrade requests with a body are not supported"),
    "unknown expectation": (H + b"Expect: magic\r\nContent-Length: 1\r\n\r\nx", 417,
                            "unsupported Expect header: magic"),
    "HTTP/2 preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, None),
    # Go's net/http (new in this router: these were served before)
    "HTTP/1.1 without Host": (b"POST /graphs/echo HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 400,
                              "missing required Host header"),
    "two Host headers": (H + b"Host: s\r\nContent-Length: 0\r\n\r\n", 400, "too many Host headers"),
    "HTTP/2.0 request line": (b"POST /graphs/echo HTTP/2.0\r\nHost: r\r\nContent-Length: 8\r\n\r\n{\"x\": 1}",
                              505, "unsupported protocol version"),
    "HTTP/0.9 request line": (b"POST /graphs/echo HTTP/0.9\r\nHost: r\r\nContent-Length: 8\r\n\r\n{\"x\": 1}",
                              505, "unsupported protocol version"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_closed_and_still_serving(router: RouterProcess, case: str) -> None:
    data, status, cause = REFUSED[case]
    reply = exchange(router.port, data)
    assert_refused(reply, status)
    if cause is not None:
        assert reply.json()["cause"] == cause
    assert_serving(router)


def test_smuggled_request_after_a_refusal_is_never_run(router: RouterProcess) -> None:
    # The bytes after an ambiguous message are not a second request: no second answer arrives.
    smuggle = H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + NORMAL
    reply = exchange(router.port, smuggle)
    assert_refused(reply, 400)
    assert_serving(router)


@pytest.mark.parametrize("target", [b"http://r/graphs/echo", b"http://r:80/graphs/echo?a=1",
                                    b"HTTPS://elsewhere/graphs/echo"])
def test_absolute_form_target_is_routed_by_its_path(router: RouterProcess, target: bytes) -> None:
    reply = exchange(router.port, b"POST " + target + b" HTTP/1.1\r\nHost: r\r\nContent-Length: 8\r\n\r\n{\"x\": 1}")
    assert (reply.status, reply.json(), reply.closed) == (200, {"received": 8}, False)


def test_http10_without_host_is_served_and_closed(router: RouterProcess) -> None:
    reply = exchange(router.port, b"POST /graphs/echo HTTP/1.0\r\nContent-Length: 8\r\n\r\n{\"x\": 1}")
    assert (reply.status, reply.json(), reply.closed) == (200, {"received": 8}, True)
    assert_serving(router)
