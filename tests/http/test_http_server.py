"""The HTTP/1.1 server over real sockets: keep-alive, framing, limits, smuggling, timeouts, drain."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graph_router.engine import Result
from graph_router.http.server import HttpRequest, HttpResponse

JSON = [("content-type", "application/json")]

pytestmark = pytest.mark.timeout(20)


async def until(cond: Callable[[], bool], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not cond():  # noqa: ASYNC110 - polling server state from a test
            await asyncio.sleep(0.01)


def envelope_of(body: bytes) -> dict[str, str]:
    doc: dict[str, str] = orjson.loads(body)
    assert doc["error"] == "Failed to process request"
    return doc


class Echo:
    """Answers with what it received; records every request."""

    def __init__(self, delay: float = 0.0) -> None:
        self.requests: list[HttpRequest] = []
        self.delay = delay

    async def __call__(self, req: HttpRequest) -> HttpResponse:
        self.requests.append(req)
        if self.delay:
            await asyncio.sleep(self.delay)
        body = orjson.dumps({"method": req.method, "target": req.target, "body": req.body.decode()})
        return HttpResponse(200, list(JSON), body)


async def test_keep_alive_serves_many_requests_on_one_connection(serve, raw) -> None:
    echo = Echo()
    srv = await serve(echo)
    conn = await raw(srv.port)
    for i in range(3):
        target = f"/v1/models/m:predict?x={i}"
        conn.send(f"POST {target} HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{i}!".encode())
        resp = await conn.response()
        assert resp.status == 200
        assert orjson.loads(resp.body) == {"method": "POST", "target": target, "body": f"{i}!"}
        assert resp.header("connection") is None
        assert resp.header("content-length") == str(len(resp.body))
        assert resp.header("date") is not None
    assert srv.connections == 1
    assert len({r.client for r in echo.requests}) == 1
    assert echo.requests[0].client.startswith("127.0.0.1:")
    assert echo.requests[0].headers == [("host", "a"), ("content-length", "2")]
    assert echo.requests[0].http_version == "1.1"


async def test_any_object_with_status_headers_and_body_is_served_as_is(serve, raw) -> None:
    """A handler may answer a graph's Result (no copy into an HttpResponse): its three attributes are written."""
    result = Result(201, b'{"ok":true}', [("Content-Type", "application/json"), ("X-Graph-Route", "root>0:m")],
                    route="root>0:m")

    async def handler(req: HttpRequest) -> Result:
        return result

    srv = await serve(handler)
    conn = await raw(srv.port)
    conn.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
    resp = await conn.response()
    assert (resp.status, resp.body) == (201, b'{"ok":true}')
    assert resp.header("content-type") == "application/json"
    assert resp.header("x-graph-route") == "root>0:m"
    assert resp.header("content-length") == "11"


async def test_headers_keep_order_and_repeats_names_lower_cased(serve, raw) -> None:
    echo = Echo()
    srv = await serve(echo)
    conn = await raw(srv.port)
    conn.send(b"GET / HTTP/1.1\r\nHost: t\r\nX-B: 1\r\nX-A: 2\r\nx-b: 3\r\n\r\n")
    assert (await conn.response()).status == 200
    req = echo.requests[0]
    assert req.headers == [("host", "t"), ("x-b", "1"), ("x-a", "2"), ("x-b", "3")]
    assert req.header("x-b") == "1"
    assert req.header("missing") is None


async def test_connection_close_is_honoured(serve, raw) -> None:
    srv = await serve(Echo())
    conn = await raw(srv.port)
    conn.send(b"POST / HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx")
    resp = await conn.response()
    assert resp.status == 200
    assert resp.header("connection") == "close"
    assert await conn.closed()


async def test_http10_closes_unless_keep_alive_is_asked(serve, raw) -> None:
    echo = Echo()
    srv = await serve(echo)
    conn = await raw(srv.port)
    conn.send(b"POST / HTTP/1.0\r\nContent-Length: 1\r\n\r\na")
    resp = await conn.response()
    assert (resp.status, resp.header("connection")) == (200, "close")
    assert await conn.closed()

    conn = await raw(srv.port)
    conn.send(b"POST / HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nb")
    resp = await conn.response()
    assert (resp.status, resp.header("connection")) == (200, "keep-alive")
    conn.send(b"GET /again HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert orjson.loads((await conn.response()).body)["target"] == "/again"
    assert [r.http_version for r in echo.requests] == ["1.0", "1.0", "1.0"]


async def test_chunked_request_body_is_joined_and_trailers_dropped(serve, raw) -> None:
    echo = Echo()
    srv = await serve(echo)
    conn = await raw(srv.port)
    conn.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
    await asyncio.sleep(0.05)
    conn.send(b"2;ext=1\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n")
    resp = await conn.response()
    assert orjson.loads(resp.body)["body"] == "abcde"
    assert echo.requests[0].headers == [("host", "t"), ("transfer-encoding", "chunked")]


async def test_expect_100_continue_is_answered_before_the_body(serve, raw) -> None:
    echo = Echo()
    srv = await serve(echo)
    conn = await raw(srv.port)
    conn.send(b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
    async with asyncio.timeout(5):
        interim = await conn.reader.readuntil(b"\r\n\r\n")
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    conn.send(b"data")
    resp = await conn.response()
    assert orjson.loads(resp.body)["body"] == "data"


async def test_expect_100_continue_over_the_body_limit_gets_413_not_100(serve, raw) -> None:
    srv = await serve(Echo(), max_body_bytes=10)
    conn = await raw(srv.port)
    conn.send(b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n")
    resp = await conn.response()
    assert resp.status == 413
    assert envelope_of(resp.body)["cause"] == "request body larger than 10 bytes"
    assert await conn.closed()


async def test_unknown_expectation_gets_417(serve, raw) -> None:
    srv = await serve(Echo())
    conn = await raw(srv.port)
    conn.send(b"POST / HTTP/1.1\r\nHost: t\r\nExpect: magic\r\nContent-Length: 1\r\n\r\nx")
    resp = await conn.response()
    assert resp.status == 417


async def test_pipelined_requests_are_answered_in_order(serve, raw) -> None:
    order: list[str] = []

    async def handler(req: HttpRequest) -> HttpResponse:
        # The first request is the slowest: answers must still come back in request order.
        await asyncio.sleep({"/1": 0.2, "/2": 0.05, "/3": 0.0}[req.target])
        order.append(req.target)
        return HttpResponse(200, [], req.target.encode() + req.body)

    srv = await serve(handler)
    conn = await raw(srv.port)
    conn.send(
        b"POST /1 HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\na"
        b"GET /2 HTTP/1.1\r\nHost: t\r\n\r\n"
        b"POST /3 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nc\r\n0\r\n\r\n"
    )
    bodies = [(await conn.response()).body for _ in range(3)]
    assert bodies == [b"/1a", b"/2", b"/3c"]
    assert order == ["/1", "/2", "/3"]  # one at a time, never concurrently


async def test_body_over_limit_gets_413_with_the_envelope(serve, raw) -> None:
    echo = Echo()
    srv = await serve(echo, max_body_bytes=100)
    conn = await raw(srv.port)
    conn.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 101\r\n\r\n" + b"x" * 101)
    resp = await conn.response()
    assert resp.status == 413
    assert resp.header("content-type") == "application/json"
    assert resp.header("connection") == "close"
    assert envelope_of(resp.body) == {
        "error": "Failed to process request",
        "cause": "request body larger than 100 bytes",
    }
    assert await conn.closed()
    assert echo.requests == []


async def test_chunked_body_over_limit_gets_413(serve, raw) -> None:
    echo = Echo()
    srv = await serve(echo, max_body_bytes=100)
    conn = await raw(srv.port)
    chunk = b"40\r\n" + b"y" * 64 + b"\r\n"
    conn.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk + chunk)
    resp = await conn.response()
    assert resp.status == 413
    assert echo.requests == []


async def test_too_many_headers_gets_431(serve, raw) -> None:
    srv = await serve(Echo(), max_headers=5)
    conn = await raw(srv.port)
    conn.send(b"GET / HTTP/1.1\r\nHost: t\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(6)) + b"\r\n")
    resp = await conn.response()
    assert resp.status == 431
    assert envelope_of(resp.body)["cause"] == "request header fields too large"
    assert await conn.closed()


async def test_headers_over_byte_limit_get_431(serve, raw) -> None:
    srv = await serve(Echo(), max_header_bytes=1024)
    conn = await raw(srv.port)
    conn.send(b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"v" * 1100 + b"\r\n\r\n")
    assert (await conn.response()).status == 431


async def test_a_header_that_never_ends_is_cut_off_at_the_limit(serve, raw) -> None:
    srv = await serve(Echo(), max_header_bytes=4096)
    conn = await raw(srv.port)
    conn.send(b"GET / HTTP/1.1\r\nHost: t\r\nX-Endless: ")
    for _ in range(5):  # 5 KiB of one header value, never terminated
        await asyncio.sleep(0.02)
        conn.send(b"v" * 1024)
    resp = await conn.response()
    assert resp.status == 431


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na",
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1, 1\r\n\r\na",
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ],
    ids=["cl-then-te", "te-then-cl", "conflicting-cl", "duplicate-cl", "cl-list", "duplicate-te"],
)
async def test_request_smuggling_is_rejected_with_400_and_close(serve, raw, request_bytes: bytes) -> None:
    echo = Echo()
    srv = await serve(echo)
    conn = await raw(srv.port)
    conn.send(request_bytes + b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n")
    resp = await conn.response()
    assert resp.status == 400
    assert envelope_of(resp.body)["cause"].startswith("malformed HTTP request")
    assert await conn.closed()
    assert echo.requests == []


async def test_unsupported_transfer_encoding_gets_501(serve, raw) -> None:
    srv = await serve(Echo())
    conn = await raw(srv.port)
    conn.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n")
    resp = await conn.response()
    assert resp.status == 501
    assert envelope_of(resp.body)["cause"] == 'unsupported transfer encoding: "gzip, chunked"'


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n",
    ],
    ids=["garbage", "bad-chunk-size", "space-in-name", "obs-fold"],
)
async def test_malformed_requests_get_400(serve, raw, request_bytes: bytes) -> None:
    srv = await serve(Echo())
    conn = await raw(srv.port)
    conn.send(request_bytes)
    resp = await conn.response()
    assert resp.status == 400
    assert await conn.closed()


async def test_error_after_pipelined_request_comes_after_its_answer(serve, raw) -> None:
    srv = await serve(Echo(delay=0.1))
    conn = await raw(srv.port)
    conn.send(b"GET /ok HTTP/1.1\r\nHost: t\r\n\r\nGARBAGE\r\n\r\n")
    first = await conn.response()
    second = await conn.response()
    assert (first.status, second.status) == (200, 400)


async def test_handler_exception_gets_500_without_traceback(
    serve, raw, caplog: pytest.LogCaptureFixture
) -> None:
    async def boom(req: HttpRequest) -> HttpResponse:
        raise RuntimeError("secret internal detail")

    srv = await serve(boom)
    conn = await raw(srv.port)
    with caplog.at_level(logging.ERROR, logger="graph_router.http"):
        conn.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        resp = await conn.response()
    assert resp.status == 500
    assert envelope_of(resp.body) == {"error": "Failed to process request", "cause": "internal server error"}
    assert b"secret" not in resp.body and b"Traceback" not in resp.body
    assert any(r.exc_info and "secret internal detail" in str(r.exc_info[1]) for r in caplog.records)
    conn.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")  # the connection is still usable
    assert (await conn.response()).status == 500


async def test_response_headers_reserved_ones_dropped_injection_refused(serve, raw) -> None:
    async def handler(req: HttpRequest) -> HttpResponse:
        if req.target == "/inject":
            return HttpResponse(200, [("x-a", "1\r\nx-evil: 1")], b"no")
        return HttpResponse(200, [("Content-Length", "999"), ("x-a", "1"), ("Connection", "close")], b"ok")

    srv = await serve(handler)
    conn = await raw(srv.port)
    conn.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    resp = await conn.response()
    assert resp.body == b"ok"
    assert [(k, v) for k, v in resp.headers if k != "date"] == [("content-length", "2"), ("x-a", "1")]
    conn.send(b"GET /inject HTTP/1.1\r\nHost: t\r\n\r\n")
    resp = await conn.response()
    assert resp.status == 500
    assert resp.header("x-evil") is None


async def test_204_has_no_body_and_no_length(serve, raw) -> None:
    async def handler(req: HttpRequest) -> HttpResponse:
        return HttpResponse(204, [], b"ignored")

    srv = await serve(handler)
    conn = await raw(srv.port)
    conn.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n")
    for _ in range(2):
        resp = await conn.response()
        assert (resp.status, resp.body, resp.header("content-length")) == (204, b"", None)


async def test_client_disconnect_cancels_the_handler(serve, raw) -> None:
    started = asyncio.Event()
    outcome: list[str] = []

    async def slow(req: HttpRequest) -> HttpResponse:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise
        outcome.append("finished")
        return HttpResponse(200, [], b"late")

    srv = await serve(slow)
    conn = await raw(srv.port)
    conn.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx")
    async with asyncio.timeout(5):
        await started.wait()
    assert srv.inflight == 1
    conn.reset()
    await until(lambda: bool(outcome))
    assert outcome == ["cancelled"]
    assert srv.inflight == 0


async def test_read_timeout_drops_a_slowloris_connection(serve, raw) -> None:
    echo = Echo()
    srv = await serve(echo, read_timeout=0.3)
    conn = await raw(srv.port)
    conn.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n")
    for _ in range(3):  # trickling bytes does not extend the whole-request deadline
        await asyncio.sleep(0.1)
        conn.send(b"x")
    assert await conn.closed(within=3)
    assert echo.requests == []


async def test_idle_timeout_closes_a_quiet_keep_alive_connection(serve, raw) -> None:
    srv = await serve(Echo(), idle_timeout=0.3, read_timeout=10)
    conn = await raw(srv.port)
    conn.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert (await conn.response()).status == 200
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert await conn.closed(within=3)
    assert 0.2 < loop.time() - t0 < 2.5
    assert srv.connections == 0


async def test_write_timeout_drops_the_connection_and_cancels_the_handler(serve, raw) -> None:
    outcome: list[str] = []

    async def slow(req: HttpRequest) -> HttpResponse:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise
        return HttpResponse(200, [], b"late")

    srv = await serve(slow, write_timeout=0.3)
    conn = await raw(srv.port)
    conn.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert await conn.closed(within=3)
    await until(lambda: bool(outcome))
    assert outcome == ["cancelled"]


async def test_close_listener_and_wait_idle_finish_in_flight_requests(serve, raw) -> None:
    release = asyncio.Event()

    async def handler(req: HttpRequest) -> HttpResponse:
        if req.target == "/slow":
            await release.wait()
        return HttpResponse(200, [], req.target.encode())

    srv = await serve(handler)
    port = srv.port
    busy = await raw(port)
    idle = await raw(port)
    idle.send(b"GET /quick HTTP/1.1\r\nHost: t\r\n\r\n")
    assert (await idle.response()).body == b"/quick"
    busy.send(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
    await until(lambda: srv.inflight == 1)

    await srv.close_listener()
    assert await idle.closed(within=3)  # idle keep-alive connection closed at once
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)  # no longer accepting
    assert await srv.wait_idle(0.1) is False  # still one in flight

    release.set()
    assert await srv.wait_idle(5) is True
    resp = await busy.response()
    assert (resp.status, resp.body, resp.header("connection")) == (200, b"/slow", "close")
    assert await busy.closed()


async def test_large_response_to_a_slow_reader_arrives_whole(serve, raw) -> None:
    big = bytes(range(256)) * 16384  # 4 MiB: overflows the transport buffer, pauses reading

    async def handler(req: HttpRequest) -> HttpResponse:
        return HttpResponse(200, [], big)

    srv = await serve(handler)
    conn = await raw(srv.port)
    conn.send(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\n")
    await asyncio.sleep(0.2)  # let the server fill its buffer while we do not read
    for _ in range(2):
        resp = await conn.response(within=10)
        assert resp.body == big


async def test_on_error_that_raises_still_answers(raw) -> None:
    from graph_router.http.server import ServerLimits, start_server

    def broken(status: int, cause: str) -> HttpResponse:
        raise ValueError("bad responder")

    async def handler(req: HttpRequest) -> HttpResponse:
        return HttpResponse(200, [], b"")

    srv = await start_server(handler, host="127.0.0.1", port=0, limits=ServerLimits(), on_error=broken)
    try:
        conn = await raw(srv.port)
        conn.send(b"GARBAGE\r\n\r\n")
        resp = await conn.response()
        assert resp.status == 400
        assert resp.body.startswith(b"malformed HTTP request")
    finally:
        await srv.close()


async def test_shutdown_while_a_request_is_half_read_answers_it_then_closes(serve, raw) -> None:
    echo = Echo()
    srv = await serve(echo)
    conn = await raw(srv.port)
    conn.send(b"POST /half HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nab")
    await until(lambda: srv.connections == 1)
    await asyncio.sleep(0.05)
    await srv.close_listener()
    conn.send(b"cd")
    resp = await conn.response()
    assert (resp.status, resp.header("connection")) == (200, "close")
    assert orjson.loads(resp.body)["body"] == "abcd"
    assert await conn.closed()


async def test_close_cancels_running_handlers_and_closes_connections(serve, raw) -> None:
    outcome: list[str] = []

    async def slow(req: HttpRequest) -> HttpResponse:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise
        return HttpResponse(200, [], b"")

    srv = await serve(slow)
    conn = await raw(srv.port)
    conn.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    await until(lambda: srv.inflight == 1)
    await srv.close()
    assert outcome == ["cancelled"]
    assert srv.inflight == 0
    assert await conn.closed()


async def test_serves_on_a_given_socket() -> None:
    import socket

    from graph_router.http.server import ServerLimits, start_server

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))

    async def handler(req: HttpRequest) -> HttpResponse:
        return HttpResponse(200, [], b"on sock")

    srv = await start_server(
        handler,
        host=None,
        port=None,
        sock=sock,
        limits=ServerLimits(),
        on_error=lambda st, c: HttpResponse(st, [], b""),
    )
    try:
        assert srv.port == sock.getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        async with asyncio.timeout(5):
            data = await reader.read()
        assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"\r\n\r\non sock")
        writer.close()
    finally:
        await srv.close()


# --- chunk boundaries: the parser glue must not care where reads split the stream ------------------

STREAM = (
    b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
    b"POST /b HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nX-Long: " + b"v" * 300 + b"\r\n\r\n"
    b"3\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n"
    b"GET /c?q=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
)


class FakeTransport(asyncio.Transport):
    def __init__(self, proto: asyncio.Protocol) -> None:
        super().__init__()
        self.proto = proto
        self.out = bytearray()
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.out += data

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            asyncio.get_running_loop().call_soon(self.proto.connection_lost, None)

    abort = close

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 5555) if name == "peername" else default


async def _feed_in_pieces(cuts: list[int]) -> tuple[bytes, list[tuple[str, str, bytes]]]:
    from graph_router.http.server import ServerLimits
    from graph_router.http.server_protocol import ServerConnection
    from graph_router.http.server_state import ServerState

    seen: list[tuple[str, str, bytes]] = []

    async def handler(req: HttpRequest) -> HttpResponse:
        seen.append((req.method, req.target, req.body))
        return HttpResponse(200, [], req.target.encode() + b":" + req.body)

    limits = ServerLimits(max_header_bytes=1024)
    state = ServerState(handler, limits, lambda status, cause: HttpResponse(status, [], cause.encode()))
    conn = ServerConnection(state)
    transport = FakeTransport(conn)
    conn.connection_made(transport)
    bounds = [0, *sorted(set(cuts)), len(STREAM)]
    for start, end in itertools.pairwise(bounds):
        if end > start:
            conn.data_received(STREAM[start:end])
            await asyncio.sleep(0)
    async with asyncio.timeout(5):
        while not transport.closing:  # noqa: ASYNC110 - the fake transport has no event to await
            await asyncio.sleep(0.001)
    return bytes(transport.out), seen


@given(st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), max_size=12))
@settings(max_examples=150, deadline=None)
def test_any_split_of_a_pipelined_stream_gives_the_same_answers(cuts: list[int]) -> None:
    out, seen = asyncio.run(_feed_in_pieces(cuts))
    assert seen == [("POST", "/a", b"hello"), ("POST", "/b", b"abcde"), ("GET", "/c?q=1", b"")]
    bodies = [part.split(b"\r\n\r\n", 1)[1] for part in out.split(b"HTTP/1.1 200 OK\r\n")[1:]]
    assert [b.split(b"HTTP/")[0] for b in bodies] == [b"/a:hello", b"/b:abcde", b"/c?q=1:"]
    assert out.count(b"connection: close\r\n") == 1


async def test_head_gets_the_length_but_no_body(serve, raw) -> None:
    srv = await serve(Echo())
    conn = await raw(srv.port)
    conn.send(b"HEAD /h HTTP/1.1\r\nHost: t\r\n\r\nGET /g HTTP/1.1\r\nHost: t\r\n\r\n")
    async with asyncio.timeout(5):
        head = await conn.reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    get_body = orjson.dumps({"method": "HEAD", "target": "/h", "body": ""})
    assert f"content-length: {len(get_body)}\r\n".encode() in head  # what GET would send
    resp = await conn.response()  # the next bytes are the GET answer, not a HEAD body
    assert orjson.loads(resp.body)["target"] == "/g"


async def test_half_close_after_a_large_request_still_gets_the_answer(serve, raw) -> None:
    # The body arrives in reads larger than one turn's slice, then EOF: every slice is parsed first.
    echo = Echo(delay=0.05)
    srv = await serve(echo)
    conn = await raw(srv.port)
    body = b"y" * 300_000
    conn.send(b"POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    conn.writer.write_eof()
    resp = await conn.response()
    assert (resp.status, len(orjson.loads(resp.body)["body"])) == (200, len(body))
    assert await conn.closed()


async def test_refusal_then_lingering_close_reads_and_discards(serve, raw) -> None:
    srv = await serve(Echo(), max_body_bytes=10)
    conn = await raw(srv.port)
    conn.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n")
    conn.send(b"x" * 200_000)  # still sending after the refusal: read and discarded, no reset
    resp = await conn.response()
    assert resp.status == 413
    assert await conn.reader.read() == b""  # a clean FIN, not a reset
