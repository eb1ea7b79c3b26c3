"""The keep-alive client pool against aiohttp and against raw servers scripted byte by byte."""

from __future__ import annotations

import asyncio
import itertools
import ssl

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from graph_router.http.client import (
    ClientLimits,
    ConnectFailed,
    Disconnected,
    HttpClient,
    ProtocolViolation,
    ReadTimeout,
    ResponseTooLarge,
    Url,
)
from graph_router.http.wire import HeaderInjection

from ..support.backends import Conn
from ..support.ports import refused_port

pytestmark = pytest.mark.timeout(20)


@pytest.fixture
async def client():
    c = HttpClient()
    yield c
    await c.aclose()


# --- against aiohttp ---------------------------------------------------------------------------


@pytest.fixture
async def aio(aiohttp_server):
    peers: list[object] = []
    seen: list[tuple[str, str, CIMultiDict[str], bytes]] = []

    async def handle(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        seen.append((request.method, request.path_qs, CIMultiDict(request.headers), await request.read()))
        if request.path == "/redirect":
            return web.Response(status=302, headers={"Location": "/elsewhere"})
        return web.json_response({"n": len(seen)}, headers={"X-Reply": "yes"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = await aiohttp_server(app)
    return server, peers, seen


async def test_post_to_aiohttp_and_connection_reuse(aio, client: HttpClient) -> None:
    server, peers, seen = aio
    url = Url.parse(f"http://127.0.0.1:{server.port}/v1/models/m:predict?v=1")
    for i in range(5):
        resp = await client.request("POST", url, [("X-Request-Id", f"r{i}")], b'{"a":1}', timeout=5)
        assert resp.status == 200
        assert resp.body == f'{{"n": {i + 1}}}'.encode()
        assert resp.header("x-reply") == "yes"
        assert resp.header("content-type") == "application/json; charset=utf-8"
    assert len(set(peers)) == 1  # one connection, reused
    assert client.connects == 1
    assert client.idle_connections() == 1
    method, path, headers, body = seen[0]
    assert (method, path, body) == ("POST", "/v1/models/m:predict?v=1", b'{"a":1}')
    assert headers["Host"] == f"127.0.0.1:{server.port}"
    assert headers["Content-Length"] == "7"
    assert headers["X-Request-Id"] == "r0"


async def test_concurrent_requests_open_connections_and_pool_is_bounded(aio) -> None:
    server, _, _ = aio
    client = HttpClient(ClientLimits(max_idle_per_host=2))
    url = Url.parse(f"http://127.0.0.1:{server.port}/x")
    resps = await asyncio.gather(*(client.request("POST", url, [], b"{}", timeout=5) for _ in range(5)))
    assert [r.status for r in resps] == [200] * 5
    assert client.connects == 5
    assert client.idle_connections() == 2
    await client.aclose()
    assert client.idle_connections() == 0


async def test_redirects_are_returned_not_followed(aio, client: HttpClient) -> None:
    server, _, seen = aio
    url = Url.parse(f"http://127.0.0.1:{server.port}/redirect")
    resp = await client.request("POST", url, [], b"x", timeout=5)
    assert resp.status == 302
    assert resp.header("location") == "/elsewhere"
    assert len(seen) == 1


# --- against scripted raw servers -------------------------------------------------------------------


async def test_request_framing_headers_from_the_caller_are_dropped(raw_backend_here, client: HttpClient) -> None:
    async def script(c: Conn) -> None:
        await c.request(within=None)
        c.write(c.ok())

    s = await raw_backend_here(script)
    hdrs = [("Host", "evil"), ("Content-Length", "999"), ("Transfer-Encoding", "chunked"),
            ("Connection", "close"), ("x-keep", "1")]
    await client.request("POST", Url.parse(s.url()), hdrs, b"abc", timeout=5)
    got = s.requests[0]
    assert got.request_line == "POST /v1/models/m:predict HTTP/1.1"
    assert got.head.split("\r\n")[1:-2] == [f"host: 127.0.0.1:{s.port}", "x-keep: 1", "content-length: 3"]
    assert got.body == b"abc"


async def test_header_injection_is_refused_before_sending(raw_backend_here, client: HttpClient) -> None:
    async def script(c: Conn) -> None:
        await c.request(within=None)

    s = await raw_backend_here(script)
    with pytest.raises(HeaderInjection):
        await client.request("POST", Url.parse(s.url()), [("x", "1\r\nevil: 1")], b"", timeout=5)
    assert s.connections == 0


def _read_then_close_on_reuse(reply: bytes):  # type: ignore[no-untyped-def]
    async def script(c: Conn) -> None:
        if c.index == 0:
            await c.request(within=None)
            c.write(c.ok(b"first"))
            await c.request(within=None)  # the backend read the request on the reused connection, then dropped it
            return
        while await c.request(within=None):
            c.write(c.ok(reply))
    return script


async def test_post_read_on_a_reused_connection_is_not_sent_again(raw_backend_here, client: HttpClient) -> None:
    # Go's Transport never re-sends a written POST (persistConn.shouldRetryRequest: not replayable)
    s = await raw_backend_here(_read_then_close_on_reuse(b"fresh"))
    url = Url.parse(s.url())
    assert (await client.request("POST", url, [], b"1", timeout=5)).body == b"first"
    with pytest.raises(Disconnected) as info:
        await client.request("POST", url, [], b"2", timeout=5)
    assert (info.value.detail, info.value.nothing_received) == ("EOF", True)
    assert s.connections == 1
    assert [r.body for r in s.requests] == [b"1", b"2"]


@pytest.mark.parametrize(("method", "headers"), [
    ("GET", []), ("POST", [("Idempotency-Key", "k1")]), ("POST", [("x-idempotency-key", "k1")]),
])
async def test_replayable_request_is_sent_again_once_on_a_fresh_connection(
    raw_backend_here, client: HttpClient, method: str, headers: list[tuple[str, str]]
) -> None:
    s = await raw_backend_here(_read_then_close_on_reuse(b"fresh"))
    url = Url.parse(s.url())
    assert (await client.request(method, url, headers, b"1", timeout=5)).body == b"first"
    assert (await client.request(method, url, headers, b"2", timeout=5)).body == b"fresh"
    assert s.connections == 2
    assert [r.body for r in s.requests] == [b"1", b"2", b"2"]


async def test_retry_happens_once_only(raw_backend_here, client: HttpClient) -> None:
    async def script(c: Conn) -> None:
        await c.request(within=None)
        if c.index == 0:
            c.write(c.ok(b"first"))
            await c.request(within=None)
        # every later connection: read the request, close without a byte

    s = await raw_backend_here(script)
    url = Url.parse(s.url())
    key = [("Idempotency-Key", "k")]
    await client.request("POST", url, key, b"1", timeout=5)
    with pytest.raises(Disconnected) as info:
        await client.request("POST", url, key, b"2", timeout=5)
    assert info.value.nothing_received is True
    assert info.value.detail == "EOF"
    assert s.connections == 2  # the pooled one, and one fresh retry


async def test_fresh_connection_closed_without_answer_is_not_retried(raw_backend_here, client: HttpClient) -> None:
    async def script(c: Conn) -> None:
        await c.request(within=None)

    s = await raw_backend_here(script)
    with pytest.raises(Disconnected) as info:
        await client.request("POST", Url.parse(s.url()), [], b"x", timeout=5)
    assert (info.value.nothing_received, info.value.in_body) == (True, False)
    assert s.connections == 1


async def test_idle_connection_closed_by_backend_is_not_reused(raw_backend_here, client: HttpClient) -> None:
    async def script(c: Conn) -> None:
        await c.request(within=None)
        c.write(c.ok(b"%d" % c.index))  # keep-alive answer, then the backend closes anyway

    s = await raw_backend_here(script)
    url = Url.parse(s.url())
    assert (await client.request("POST", url, [], b"", timeout=5)).body == b"0"
    await asyncio.sleep(0.1)  # the FIN arrives while the connection is idle
    assert client.idle_connections() == 0
    assert (await client.request("POST", url, [], b"", timeout=5)).body == b"1"
    assert len(s.requests) == 2  # no request was wasted on the dead connection


async def test_chunked_response_then_keep_alive(raw_backend_here, client: HttpClient) -> None:
    async def script(c: Conn) -> None:
        while await c.request(within=None):
            c.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            await asyncio.sleep(0.02)
            c.write(b"6;x=y\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")

    s = await raw_backend_here(script)
    url = Url.parse(s.url())
    for _ in range(2):
        resp = await client.request("POST", url, [], b"", timeout=5)
        assert resp.body == b"hello world"
        assert resp.headers == [("transfer-encoding", "chunked")]
    assert s.connections == 1


async def test_connection_close_answer_is_not_pooled(raw_backend_here, client: HttpClient) -> None:
    async def script(c: Conn) -> None:
        await c.request(within=None)
        c.write(c.ok(b"bye", extra="connection: close\r\n"))

    s = await raw_backend_here(script)
    url = Url.parse(s.url())
    assert (await client.request("POST", url, [], b"", timeout=5)).body == b"bye"
    assert client.idle_connections() == 0
    assert (await client.request("POST", url, [], b"", timeout=5)).body == b"bye"
    assert s.connections == 2


@pytest.mark.parametrize("status_line", [b"HTTP/1.1 200 OK", b"HTTP/1.0 200 OK"])
async def test_response_without_length_is_read_to_eof(
    raw_backend_here, client: HttpClient, status_line: bytes
) -> None:
    async def script(c: Conn) -> None:
        await c.request(within=None)
        c.write(status_line + b"\r\ncontent-type: text/plain\r\n\r\nstream")
        await c.writer.drain()
        await asyncio.sleep(0.05)
        c.write(b"ed")

    s = await raw_backend_here(script)
    resp = await client.request("POST", Url.parse(s.url()), [], b"", timeout=5)
    assert resp.body == b"streamed"
    assert client.idle_connections() == 0


async def test_informational_responses_are_skipped(raw_backend_here, client: HttpClient) -> None:
    async def script(c: Conn) -> None:
        await c.request(within=None)
        c.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        c.write(b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n" + c.ok(b"final"))

    s = await raw_backend_here(script)
    resp = await client.request("POST", Url.parse(s.url()), [], b"", timeout=5)
    assert (resp.status, resp.body) == (200, b"final")
    assert ("link", "</a>") not in resp.headers


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n01234567890",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n8\r\n01234567\r\n8\r\n01234567\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n0123456789012345",
    ],
    ids=["content-length", "chunked", "until-eof"],
)
async def test_response_over_the_limit(raw_backend_here, answer: bytes) -> None:
    async def script(c: Conn) -> None:
        await c.request(within=None)
        c.write(answer)

    s = await raw_backend_here(script)
    client = HttpClient(ClientLimits(max_response_bytes=10))
    with pytest.raises(ResponseTooLarge) as info:
        await client.request("POST", Url.parse(s.url()), [], b"", timeout=5)
    assert info.value.detail == "response body larger than 10 bytes"
    assert client.idle_connections() == 0
    await client.aclose()


async def test_timeout_awaiting_headers(raw_backend_here, client: HttpClient) -> None:
    async def script(c: Conn) -> None:
        await c.request(within=None)
        await asyncio.sleep(30)

    s = await raw_backend_here(script)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(ReadTimeout) as info:
        await client.request("POST", Url.parse(s.url()), [], b"", timeout=0.2)
    assert 0.15 < loop.time() - t0 < 2
    assert info.value.headers_received is False
    assert client.idle_connections() == 0


async def test_timeout_reading_body(raw_backend_here, client: HttpClient) -> None:
    async def script(c: Conn) -> None:
        await c.request(within=None)
        c.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n01234")
        await asyncio.sleep(30)

    s = await raw_backend_here(script)
    with pytest.raises(ReadTimeout) as info:
        await client.request("POST", Url.parse(s.url()), [], b"", timeout=0.2)
    assert info.value.headers_received is True


async def test_connection_refused(client: HttpClient) -> None:
    port = refused_port()
    with pytest.raises(ConnectFailed) as info:
        await client.request("POST", Url.parse(f"http://127.0.0.1:{port}/"), [], b"", timeout=5)
    assert info.value.detail == f"dial tcp 127.0.0.1:{port}: connect: connection refused"


async def test_malformed_response_is_a_protocol_violation(raw_backend_here, client: HttpClient) -> None:
    async def script(c: Conn) -> None:
        await c.request(within=None)
        c.write(b"SPDY/9 what\r\n\r\n")

    s = await raw_backend_here(script)
    with pytest.raises(ProtocolViolation) as info:
        await client.request("POST", Url.parse(s.url()), [], b"", timeout=5)
    broken = "net/http: HTTP/1.x transport connection broken: malformed HTTP response"
    assert info.value.detail.startswith(broken)


async def test_reset_in_the_middle_of_the_body(raw_backend_here, client: HttpClient) -> None:
    async def script(c: Conn) -> None:
        await c.request(within=None)
        c.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
        await c.writer.drain()
        await asyncio.sleep(0.05)
        c.abort()  # RST, not FIN

    s = await raw_backend_here(script)
    with pytest.raises(Disconnected) as info:
        await client.request("POST", Url.parse(s.url()), [], b"", timeout=5)
    err = info.value
    assert (err.nothing_received, err.in_body) == (False, True)
    assert err.detail.startswith("read tcp 127.0.0.1:")
    assert err.detail.endswith(f"->127.0.0.1:{s.port}: read: connection reset by peer")


async def test_second_response_to_one_request_kills_the_connection(raw_backend_here, client: HttpClient) -> None:
    async def script(c: Conn) -> None:
        while await c.request(within=None):
            c.write(c.ok(b"one") + c.ok(b"unasked"))

    s = await raw_backend_here(script)
    url = Url.parse(s.url())
    assert (await client.request("POST", url, [], b"", timeout=5)).body == b"one"
    await asyncio.sleep(0.05)
    assert (await client.request("POST", url, [], b"", timeout=5)).body == b"one"
    assert s.connections == 2


async def test_cancelled_request_drops_its_connection(raw_backend_here, client: HttpClient) -> None:
    closed = asyncio.Event()

    async def script(c: Conn) -> None:
        await c.request(within=None)
        if await c.reader.read() == b"":
            closed.set()

    s = await raw_backend_here(script)
    task = asyncio.create_task(client.request("POST", Url.parse(s.url()), [], b"", timeout=None))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with asyncio.timeout(5):
        await closed.wait()
    assert client.idle_connections() == 0


async def test_closed_client_refuses_requests() -> None:
    client = HttpClient()
    await client.aclose()
    with pytest.raises(RuntimeError):
        await client.request("GET", Url.parse("http://127.0.0.1:1/"), [], b"", timeout=1)


# --- Url -------------------------------------------------------------------------------------


def test_url_parse_precomputes_the_request_head() -> None:
    url = Url.parse("http://model.ns.svc.cluster.local/v1/models/m:predict")
    assert (url.host, url.port, url.target, url.authority) == (
        "model.ns.svc.cluster.local", 80, "/v1/models/m:predict", "model.ns.svc.cluster.local"
    )
    head = "POST /v1/models/m:predict HTTP/1.1\r\nhost: model.ns.svc.cluster.local\r\n"
    assert url.head_prefix("POST") == head
    assert Url.parse("http://127.0.0.1:8080").target == "/"
    assert Url.parse("http://[::1]:8080/a?b=c d".replace(" ", "%20")).dial_address == "[::1]:8080"
    assert Url.parse("http://h/a b%20c?q=ä".replace(" ", "%20")).target == "/a%20b%20c?q=%C3%A4"
    assert Url.parse("http://h:81/x").join("/y?z").raw == "http://h:81/y?z"
    https = Url.parse("https://h/x")
    assert (https.port, https.tls, https.key) == (443, True, ("https", "h", 443))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("ftp://h/x", "scheme must be http or https, got 'ftp'"),
        ("h:80/x", "scheme must be http or https"),
        ("http:///x", "missing host"),
        ("http://h:99999/x", "Port out of range"),
        ("http://h:port/x", "invalid URL"),
        ("http://u:p@h/x", "credentials in backend URLs are not supported"),
        ("http://h/x y", "contains whitespace or a control character"),
    ],
)
def test_url_parse_rejects_bad_urls_clearly(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("?", r"\?")):
        Url.parse(raw)


# --- https -------------------------------------------------------------------------------------


@pytest.fixture
async def tls_backend(cert: tuple[str, str]):
    crt, key = cert
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(crt, key)
    connections = 0

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            while await read_request(reader):
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecret")
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0, ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    yield f"https://127.0.0.1:{port}/v1/models/m:predict", lambda: connections
    server.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return b""
    lines = head.lower().split(b"\r\n")
    length = next((int(ln.split(b":")[1]) for ln in lines if ln.startswith(b"content-length:")), 0)
    return head + (await reader.readexactly(length) if length else b"")


async def test_https_backend_with_trusted_certificate(tls_backend, cert) -> None:
    url, connections = tls_backend
    client = HttpClient(ClientLimits(ssl_context=ssl.create_default_context(cafile=cert[0])))
    for _ in range(2):
        resp = await client.request("POST", Url.parse(url), [], b"{}", timeout=5)
        assert (resp.status, resp.body) == (200, b"secret")
    assert connections() == 1
    await client.aclose()


async def test_https_backend_with_untrusted_certificate(tls_backend) -> None:
    url, _ = tls_backend
    client = HttpClient()
    with pytest.raises(ConnectFailed) as info:
        await client.request("POST", Url.parse(url), [], b"{}", timeout=5)
    assert info.value.detail.startswith("tls: failed to verify certificate: x509: ")
    await client.aclose()


# --- chunk boundaries ------------------------------------------------------------------------------

ANSWERS = (
    b"HTTP/1.1 100 Continue\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: " + b"a" * 200 + b"\r\n\r\n"
    b"4\r\nwiki\r\n5\r\npedia\r\n0\r\nX-T: 1\r\n\r\n"
)


class _Sink(asyncio.Transport):
    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def abort(self) -> None:
        pass

    close = abort

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 1)


async def _parse_in_pieces(cuts: list[int]) -> tuple[int, bytes, bool]:
    from graph_router.http.client_protocol import ClientConnection

    conn = ClientConnection(asyncio.get_running_loop(), ClientLimits(max_response_bytes=1 << 20))
    conn.connection_made(_Sink())
    fut = conn.exchange(b"POST / HTTP/1.1\r\n\r\n", b"")
    bounds = [0, *sorted(set(cuts)), len(ANSWERS)]
    for start, end in itertools.pairwise(bounds):
        if end > start:
            conn.data_received(ANSWERS[start:end])
    resp = await asyncio.wait_for(fut, 1)
    return resp.status, resp.body, conn.dead


@given(st.lists(st.integers(min_value=1, max_value=len(ANSWERS) - 1), max_size=12))
@settings(max_examples=150, deadline=None)
def test_any_split_of_a_response_parses_the_same(cuts: list[int]) -> None:
    assert asyncio.run(_parse_in_pieces(cuts)) == (200, b"wikipedia", False)
