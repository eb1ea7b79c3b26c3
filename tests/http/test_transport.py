"""HttpBackend: Go-worded error translation, header rules, redirects, the shared factory."""

from __future__ import annotations

import asyncio
import re

import pytest
from aiohttp import web

from graph_router.backend import Backend, BackendRequest
from graph_router.errors import (
    BackendConnectError,
    BackendDisconnected,
    BackendError,
    BackendProtocolError,
    BackendResponseTooLarge,
    BackendTimeout,
)
from graph_router.http.client import ClientLimits, HttpClient
from graph_router.transport import HttpBackend, HttpBackendFactory

from ..support.backends import Conn, serve_handler
from ..support.ports import refused_port

pytestmark = pytest.mark.timeout(20)


@pytest.fixture
async def factory():
    f = HttpBackendFactory()
    yield f
    await f.aclose()


JSON_TYPE = [("Content-Type", "application/json")]  # what the engine's header policy always sends


def req(body: bytes = b'{"instances":[1]}', headers=None, timeout: float | None = 5.0) -> BackendRequest:
    return BackendRequest(body=body, headers=list(headers or []), timeout=timeout)


# --- error translation --------------------------------------------------------------------------


async def test_refused_reads_like_go(factory: HttpBackendFactory) -> None:
    port = refused_port()
    url = f"http://127.0.0.1:{port}/v1/models/m:predict"
    with pytest.raises(BackendConnectError) as info:
        await factory.get(url).call(req())
    err = info.value
    assert err.cause == f'Post "{url}": dial tcp 127.0.0.1:{port}: connect: connection refused'
    assert (err.status, err.nothing_processed) == (500, True)
    assert err.__cause__ is not None  # raised from the client's exception


async def test_timeout_awaiting_headers_reads_like_go(raw_backend_here, factory: HttpBackendFactory) -> None:
    async def script(c: Conn) -> None:
        await c.request(within=None)
        await asyncio.sleep(30)

    s = await raw_backend_here(script)
    with pytest.raises(BackendTimeout) as info:
        await factory.get(s.url()).call(req(timeout=0.2))
    assert info.value.cause == (
        f'Post "{s.url()}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)'
    )


async def test_timeout_reading_body_reads_like_go(raw_backend_here, factory: HttpBackendFactory) -> None:
    async def script(c: Conn) -> None:
        await c.request(within=None)
        c.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nab")
        await asyncio.sleep(30)

    s = await raw_backend_here(script)
    with pytest.raises(BackendTimeout) as info:
        await factory.get(s.url()).call(req(timeout=0.2))
    go = "context deadline exceeded (Client.Timeout or context cancellation while reading body)"
    assert info.value.cause == go


async def test_closed_without_answer_is_eof(raw_backend_here, factory: HttpBackendFactory) -> None:
    async def script(c: Conn) -> None:
        await c.request(within=None)

    s = await raw_backend_here(script)
    with pytest.raises(BackendDisconnected) as info:
        await factory.get(s.url()).call(req())
    assert info.value.cause == f'Post "{s.url()}": EOF'
    # a fresh connection: the backend read the whole request and may have processed it (Go never
    # re-sends a POST then), so it is not safe to retry
    assert info.value.nothing_processed is False


async def test_reset_reads_like_go(raw_backend_here, factory: HttpBackendFactory) -> None:
    async def script(c: Conn) -> None:
        await c.request(within=None)
        c.abort()  # RST, not FIN

    s = await raw_backend_here(script)
    with pytest.raises(BackendDisconnected) as info:
        await factory.get(s.url()).call(req())
    pattern = (
        rf'Post "{re.escape(s.url())}": '
        rf"read tcp 127\.0\.0\.1:\d+->127\.0\.0\.1:{s.port}: read: connection reset by peer"
    )
    assert re.fullmatch(pattern, info.value.cause), info.value.cause


async def test_cut_body_is_unexpected_eof_without_url(raw_backend_here, factory: HttpBackendFactory) -> None:
    async def script(c: Conn) -> None:
        await c.request(within=None)
        c.write(b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\nhalf")

    s = await raw_backend_here(script)
    with pytest.raises(BackendDisconnected) as info:
        await factory.get(s.url()).call(req())
    assert info.value.cause == "unexpected EOF"
    assert info.value.nothing_processed is False


async def test_malformed_answer_is_a_502_protocol_error(raw_backend_here, factory: HttpBackendFactory) -> None:
    async def script(c: Conn) -> None:
        await c.request(within=None)
        c.write(b"NOT HTTP AT ALL\r\n\r\n")

    s = await raw_backend_here(script)
    with pytest.raises(BackendProtocolError) as info:
        await factory.get(s.url()).call(req())
    assert info.value.status == 502
    assert info.value.cause.startswith(f'Post "{s.url()}": net/http: HTTP/1.x transport connection broken')


async def test_too_large_answer_is_a_502(raw_backend_here) -> None:
    async def script(c: Conn) -> None:
        await c.request(within=None)
        c.write(c.ok(b"x" * 100))

    s = await raw_backend_here(script)
    f = HttpBackendFactory(limits=ClientLimits(max_response_bytes=64))
    with pytest.raises(BackendResponseTooLarge) as info:
        await f.get(s.url()).call(req())
    assert info.value.status == 502
    assert info.value.cause == f'Post "{s.url()}": response body larger than 64 bytes'
    await f.aclose()


# --- headers -------------------------------------------------------------------------------------


async def test_hop_by_hop_headers_never_reach_the_wire(raw_backend_here, factory: HttpBackendFactory) -> None:
    async def script(c: Conn) -> None:
        while await c.request(within=None):
            c.write(c.ok())

    s = await raw_backend_here(script)
    incoming = [
        ("X-Request-Id", "abc"), ("Connection", "keep-alive, X-Foo"), ("Keep-Alive", "timeout=5"),
        ("Proxy-Authorization", "Basic x"), ("Proxy-Connection", "keep-alive"), ("TE", "trailers"),
        ("Trailer", "X-T"), ("Transfer-Encoding", "chunked"), ("Upgrade", "h2c"), ("Host", "evil"),
        ("Content-Length", "1"), ("Authorization", "Bearer t"), ("Content-Type", "application/json"),
    ]
    resp = await factory.get(s.url()).call(req(b"{}", incoming))
    assert resp.status == 200
    lines = s.requests[0].head.split("\r\n")
    assert lines[0] == "POST /v1/models/m:predict HTTP/1.1"
    assert lines[1:-2] == [
        f"host: 127.0.0.1:{s.port}", "X-Request-Id: abc", "Authorization: Bearer t",
        "Content-Type: application/json", "content-length: 2",
    ]

    await factory.get(s.url()).call(req(b"<x/>", [("Content-Type", "application/xml")]))
    assert s.requests[1].header("content-type") == "application/xml"
    assert s.requests[1].head.lower().count("content-type") == 1

    # the header policy decides Content-Type (graph_router.headers); the transport adds none
    await factory.get(s.url()).call(req(b"{}", []))
    assert s.requests[2].header("content-type") is None


# --- redirects -----------------------------------------------------------------------------------


@pytest.fixture
async def redirecting(aiohttp_server):
    seen: list[tuple[str, str, bytes, str | None]] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append((request.method, request.path, body, request.headers.get("Content-Type")))
        hops = {
            "/307": (307, "/final"), "/308": (308, "/final"), "/302": (302, "/final"),
            "/303": (303, "/final"), "/301": (301, "/final"), "/loop": (307, "/loop"),
            "/away": (307, "http://example.invalid/final"),
        }
        if request.path in hops:
            status, location = hops[request.path]
            return web.Response(status=status, headers={"Location": location})
        return web.json_response({"method": request.method, "body": body.decode()})

    return await serve_handler(aiohttp_server, handle), seen


async def test_redirect_not_followed_by_default(redirecting, factory: HttpBackendFactory) -> None:
    base, seen = redirecting
    resp = await factory.get(base + "/307").call(req(b"{}"))
    assert resp.status == 307
    assert len(seen) == 1


@pytest.mark.parametrize("code", ["307", "308"])
async def test_307_308_re_post_the_body(redirecting, factory: HttpBackendFactory, code: str) -> None:
    base, seen = redirecting
    resp = await factory.get(base + "/" + code, follow_redirects=True).call(req(b'{"a":1}', JSON_TYPE))
    assert (resp.status, resp.body) == (200, b'{"method": "POST", "body": "{\\"a\\":1}"}')
    assert seen[1] == ("POST", "/final", b'{"a":1}', "application/json")


@pytest.mark.parametrize("code", ["301", "302", "303"])
async def test_301_302_303_become_a_bodyless_get(redirecting, factory: HttpBackendFactory, code: str) -> None:
    base, seen = redirecting
    resp = await factory.get(base + "/" + code, follow_redirects=True).call(req(b'{"a":1}', JSON_TYPE))
    assert (resp.status, resp.body) == (200, b'{"method": "GET", "body": ""}')
    assert seen[1] == ("GET", "/final", b"", None)


async def test_redirect_to_another_host_is_returned(redirecting, factory: HttpBackendFactory) -> None:
    base, seen = redirecting
    resp = await factory.get(base + "/away", follow_redirects=True).call(req())
    assert resp.status == 307
    assert len(seen) == 1


async def test_redirect_loop_stops_after_ten(redirecting, factory: HttpBackendFactory) -> None:
    base, seen = redirecting
    with pytest.raises(BackendError) as info:
        await factory.get(base + "/loop", follow_redirects=True).call(req())
    # Go's Client.do: the url.Error carries the first request's method and the Location as written,
    # and CheckRedirect stops once 10 requests were sent
    assert info.value.cause == 'Post "/loop": stopped after 10 redirects'
    assert len(seen) == 10


# --- factory -------------------------------------------------------------------------------------


async def test_factory_caches_per_url_and_shares_one_client() -> None:
    client = HttpClient()
    f = HttpBackendFactory(client)
    a = f.get("http://a/v1/models/m:predict")
    assert f.get("http://a/v1/models/m:predict") is a
    assert f.get("http://a/v1/models/m:predict", follow_redirects=True) is not a
    b = f("http://b/x")
    assert isinstance(a, Backend)
    assert (a.target, b.target) == ("http://a/v1/models/m:predict", "http://b/x")
    ftp = f.get("ftp://a/x")  # KServe accepts the graph and fails each request: so do we
    with pytest.raises(BackendError) as info:
        await ftp.call(BackendRequest(b"{}", []))
    assert info.value.cause == 'Post "ftp://a/x": unsupported protocol scheme "ftp"'
    await f.aclose()  # does not own the client
    assert not client._closed
    await client.aclose()


async def test_backend_constructor_rejects_malformed_urls() -> None:
    with pytest.raises(ValueError, match="missing host"):
        HttpBackend("http:///x", HttpClient())
