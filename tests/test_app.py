"""The router server over real HTTP: endpoints, timeouts, retries, headers, limits (in-process app)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from graph_router import GraphRouter
from graph_router.http.messages import ServerLimits
from graph_router.loader import load_graph_text

from .conftest import Backend, StartApp, reply
from .support.graphs import graph, sequence_of
from .support.ports import refused_port, release

ENVELOPE = "Failed to process request"
Serve = Callable[..., Awaitable[str]]


@pytest.fixture
def serve(app_server: StartApp) -> Serve:
    """Serve a YAML graph through the real app on 127.0.0.1; returns its base URL."""

    async def start(yaml_text: str, services: dict[str, str], *, limits: ServerLimits | None = None,
                    auth_token: str | None = None, **router_kw: Any) -> str:
        router = GraphRouter(load_graph_text(yaml_text), services=services, **router_kw)
        return await app_server(router, limits=limits, auth_token=auth_token)

    return start


ONE = graph("one", sequence_of("a"))


async def post(url: str, body: Any = None, *, data: bytes | None = None,
               headers: dict[str, str] | None = None, method: str = "POST") -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as s, s.request(
        method, url, json=body if data is None else None, data=data, headers=headers
    ) as r:
        return r.status, dict(r.headers), await r.read()


async def test_one_graph_runs_on_any_path_and_method(serve: Serve,
                                                     backend_factory: Callable[[], Awaitable[Backend]]) -> None:
    b = await backend_factory()
    base = await serve(ONE, {"a": b.predict_url("a")})
    for method, path in (("POST", "/"), ("PUT", "/v1/models/x:predict"), ("POST", "/anything?q=1")):
        status, headers, body = await post(base + path, {"instances": [1]}, method=method)
        assert status == 200 and headers["Content-Type"] == "application/json"
        assert headers["X-Graph-Route"] == "root>0:a"
    assert [s.path for s in b.seen] == ["/v1/models/a:predict"] * 3
    assert b.seen[0].body == b'{"instances": [1]}'
    status, _, body = await post(base + "/readyz", method="GET")
    assert (status, body) == (200, b"")
    status, _, body = await post(base + "/healthz", method="GET")
    assert (status, body) == (200, b"ok")
    # reserved only for GET (README "Deviations"): a POST there still runs the graph, as in KServe
    status, _, body = await post(base + "/graphs", method="GET")
    assert status == 200 and __import__("orjson").loads(body)["graphs"][0]["name"] == "one"
    status, _, _ = await post(base + "/graphs/one", {"instances": [1]})
    assert status == 200 and len(b.seen) == 4


async def test_several_graphs(serve: Serve, backend_factory: Callable[[], Awaitable[Backend]]) -> None:
    b = await backend_factory()
    two = ONE + "---\n" + ONE.replace("name: one", "name: two").replace("serviceName: a", "serviceName: b")
    base = await serve(two, {"a": b.predict_url("a"), "b": b.predict_url("b")})
    status, _, _ = await post(base + "/graphs/two", {"x": 1})
    assert status == 200 and b.seen[-1].path == "/v1/models/b:predict"
    status, _, body = await post(base + "/graphs", method="GET")
    assert status == 200 and [g["name"] for g in __import__("orjson").loads(body)["graphs"]] == ["one", "two"]
    status, _, body = await post(base + "/graphs/one", method="GET")
    assert __import__("orjson").loads(body)["spec"]["nodes"]["root"]["steps"] == [{"serviceName": "a"}]
    status, _, body = await post(base + "/graphs/three", {"x": 1})
    assert status == 404
    assert body == b'{"error":"Failed to process request","cause":"graph \'three\' not found; known graphs: one, two"}'
    status, _, body = await post(base + "/", {"x": 1})
    assert status == 404 and b"POST /graphs/<name> with one of: one, two" in body


async def test_backend_headers_are_not_returned_but_non_json_keeps_its_content_type(
        serve: Serve, backend_factory: Callable[[], Awaitable[Backend]]) -> None:
    b = await backend_factory()

    async def plain(_r: web.Request, _b: bytes) -> web.StreamResponse:
        return web.Response(body=b"plain text", headers={"X-Secret": "1"}, content_type="text/plain")

    b.default = plain
    base = await serve(ONE, {"a": b.predict_url("a")})
    status, headers, body = await post(base, {"x": 1})
    assert (status, body) == (200, b"plain text")
    # other headers stay behind; a non-JSON answer keeps the backend's own type (KServe sniffs one)
    assert "X-Secret" not in headers and headers["Content-Type"] == "text/plain"


async def test_connection_refused_is_500_with_go_like_cause(serve: Serve) -> None:
    port = refused_port()
    url = f"http://127.0.0.1:{port}/v1/models/a:predict"
    base = await serve(ONE, {"a": url}, default_retry=False)
    status, headers, body = await post(base, {"x": 1})
    assert status == 500 and headers["Content-Type"] == "application/json"
    assert __import__("orjson").loads(body) == {
        "error": ENVELOPE,
        "cause": f'Post "{url}": dial tcp 127.0.0.1:{port}: connect: connection refused'}


async def test_cold_start_refused_for_two_seconds_then_answers(serve: Serve) -> None:
    port = refused_port()
    base = await serve(ONE, {"a": f"http://127.0.0.1:{port}/v1/models/a:predict"})

    async def start_late() -> web.AppRunner:
        await asyncio.sleep(2)
        app = web.Application()
        async def warm(_r: web.Request) -> web.Response:
            return web.json_response({"predictions": ["warm"]})

        app.router.add_post("/v1/models/a:predict", warm)
        runner = web.AppRunner(app)
        await runner.setup()
        release(port)
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner

    late = asyncio.create_task(start_late())
    t0 = time.monotonic()
    status, _, body = await post(base, {"x": 1})
    runner = await late
    try:
        assert status == 200 and body == b'{"predictions": ["warm"]}'
        assert time.monotonic() - t0 >= 2
    finally:
        await runner.cleanup()


RETRY = ONE.replace("  nodes:", "  defaultRetry: {maxRetries: 3, initialDelayMs: 10, maxDelayMs: 50}\n  nodes:")


async def test_503_twice_then_200(serve: Serve, backend_factory: Callable[[], Awaitable[Backend]]) -> None:
    b = await backend_factory()
    b.script = [reply(503, {"e": "cold"}), reply(503, {"e": "cold"}), reply(200, {"ok": 1})]
    base = await serve(RETRY, {"a": b.predict_url("a")})
    status, _, body = await post(base, {"x": 1})
    assert (status, body, len(b.seen)) == (200, b'{"ok": 1}', 3)


async def test_503_without_retry_config_is_returned_after_one_call(
        serve: Serve, backend_factory: Callable[[], Awaitable[Backend]]) -> None:
    b = await backend_factory()
    b.script = [reply(503, {"e": "cold"}), reply(200, {"ok": 1})]
    base = await serve(ONE, {"a": b.predict_url("a")})
    status, _, body = await post(base, {"x": 1})
    assert (status, body, len(b.seen)) == (503, b'{"e": "cold"}', 1)


async def test_4xx_is_never_retried(serve: Serve, backend_factory: Callable[[], Awaitable[Backend]]) -> None:
    b = await backend_factory()
    b.script = [reply(429, {"e": "slow down"}), reply(200, {"ok": 1})]
    base = await serve(RETRY, {"a": b.predict_url("a")})
    status, _, _ = await post(base, {"x": 1})
    assert status == 429 and len(b.seen) == 1


@pytest.mark.serial  # 0.6 s of slack: timing bounds that need the cores to itself
async def test_retry_budget_bounded_by_graph_timeout(serve: Serve,
                                                    backend_factory: Callable[[], Awaitable[Backend]]) -> None:
    b = await backend_factory()
    b.default = reply(503, {"e": "cold"})
    graph = ONE.replace("  nodes:", "  timeout: 1\n  defaultRetry: {maxRetries: 10, initialDelayMs: 300, "
                                    "maxDelayMs: 300}\n  nodes:")
    base = await serve(graph, {"a": b.predict_url("a")})
    t0 = time.monotonic()
    status, _, _ = await post(base, {"x": 1})
    assert time.monotonic() - t0 < 1.6
    assert status in (503, 504) and 1 <= len(b.seen) <= 11


async def test_service_client_timeout_is_500_like_kserve(serve: Serve,
                                                        backend_factory: Callable[[], Awaitable[Backend]]) -> None:
    b = await backend_factory()
    b.default = reply(200, {"late": 1}, delay=3)
    graph = ONE.replace("  nodes:", "  routerTimeouts: {serviceClient: 1}\n  nodes:")
    base = await serve(graph, {"a": b.predict_url("a")}, default_retry=False)
    status, _, body = await post(base, {"x": 1})
    assert status == 500
    cause = __import__("orjson").loads(body)["cause"]
    assert cause == (f'Post "{b.predict_url("a")}": context deadline exceeded '
                     f"(Client.Timeout exceeded while awaiting headers)")


async def test_graph_timeout_is_504(serve: Serve, backend_factory: Callable[[], Awaitable[Backend]]) -> None:
    b = await backend_factory()
    b.default = reply(200, {"late": 1}, delay=3)
    base = await serve(ONE.replace("  nodes:", "  timeout: 1\n  nodes:"), {"a": b.predict_url("a")})
    status, headers, body = await post(base, {"x": 1})
    assert status == 504
    assert __import__("orjson").loads(body) == {
        "error": ENVELOPE, "cause": "graph timeout of 1.0s exceeded while node 'root' step '0' was running"}
    assert headers["X-Graph-Error-Node"] == "root"


async def test_step_timeout_is_504(serve: Serve, backend_factory: Callable[[], Awaitable[Backend]]) -> None:
    b = await backend_factory()
    b.default = reply(200, {"late": 1}, delay=3)
    base = await serve(ONE.replace("- serviceName: a", "- serviceName: a\n          timeout: 0.5"),
                       {"a": b.predict_url("a")})
    status, _, body = await post(base, {"x": 1})
    assert status == 504
    assert __import__("orjson").loads(body)["cause"] == f"step timeout of 0.5s exceeded calling {b.predict_url('a')}"


async def test_propagate_headers_kserve_and_graph_list(serve: Serve,
                                                      backend_factory: Callable[[], Awaitable[Backend]]) -> None:
    b = await backend_factory()
    graph = ONE.replace("  nodes:", "  propagateHeaders: ['^X-Tenant$']\n  nodes:")
    base = await serve(graph, {"a": b.predict_url("a")}, propagate_headers=["Request-Id", "Custom", "["])
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    await post(base, {"x": 1}, headers={"X-Request-Id": "r1", "x-custom-thing": "c", "X-Tenant": "t1",
                                        "X-Tenant-Other": "no", "Authorization": "Bearer s", "Cookie": "a=b",
                                        "traceparent": tp, "Content-Type": "application/json"})
    got = b.seen[0].headers
    assert got["X-Request-Id"] == "r1" and got["X-Custom-Thing"] == "c" and got["X-Tenant"] == "t1"
    assert got["traceparent"] == tp
    for absent in ("X-Tenant-Other", "Authorization", "Cookie"):
        assert absent not in got
    assert got["Content-Type"] == "application/json"


async def test_propagated_content_type_wins(serve: Serve, backend_factory: Callable[[], Awaitable[Backend]]) -> None:
    b = await backend_factory()
    base = await serve(ONE, {"a": b.predict_url("a")}, propagate_headers=["Content-Type"])
    await post(base, data=b"x=1", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert b.seen[0].headers["Content-Type"] == "application/x-www-form-urlencoded"


async def test_body_limit_is_413_with_envelope(serve: Serve, backend_factory: Callable[[], Awaitable[Backend]]) -> None:
    b = await backend_factory()
    base = await serve(ONE, {"a": b.predict_url("a")}, limits=ServerLimits(max_body_bytes=1000))
    status, headers, body = await post(base, data=b"x" * 5000)
    assert status == 413 and headers["Content-Type"] == "application/json"
    assert __import__("orjson").loads(body)["error"] == ENVELOPE
    assert b.seen == []


async def test_selection_on_a_non_json_request_is_400(serve: Serve,
                                                     backend_factory: Callable[[], Awaitable[Backend]]) -> None:
    b = await backend_factory()
    base = await serve(ONE.replace("- serviceName: a", "- serviceName: a\n          data: $request.instances"),
                       {"a": b.predict_url("a")})
    status, _, body = await post(base, data=b"\xff not json")
    assert status == 400
    assert __import__("orjson").loads(body)["cause"] == (
        "data '$request.instances': the request is not JSON, so nothing can be selected from it")


async def test_bearer_auth(serve: Serve, backend_factory: Callable[[], Awaitable[Backend]]) -> None:
    b = await backend_factory()
    base = await serve(ONE, {"a": b.predict_url("a")}, auth_token="s3cret")
    status, _, body = await post(base, {"x": 1})
    assert status == 401 and b"missing bearer token" in body
    status, _, body = await post(base, {"x": 1}, headers={"Authorization": "Bearer wrong"})
    assert status == 401 and b"invalid bearer token" in body and b"wrong" not in body
    status, _, _ = await post(base, {"x": 1}, headers={"Authorization": "Bearer s3cret"})
    assert status == 200
    assert "Authorization" not in b.seen[0].headers
    status, _, _ = await post(base + "/readyz", method="GET")
    assert status == 200


@pytest.mark.parametrize(("url", "cause"), [
    ("model:predict", 'Post "model:predict": unsupported protocol scheme "model"'),
    ("/v1/models/m:predict", 'Post "/v1/models/m:predict": unsupported protocol scheme ""'),
    ("1model:predict", 'parse "1model:predict": first path segment in URL cannot contain colon'),
    ("http://", 'Post "http://": http: no Host in request URL'),
])
async def test_malformed_service_url_answers_500_like_kserve(serve: Serve, url: str, cause: str) -> None:
    graph = ONE.replace("- serviceName: a", f"- serviceUrl: '{url}'")
    base = await serve(graph, {})
    status, headers, body = await post(base, {"x": 1})
    assert status == 500 and headers["Content-Type"] == "application/json"
    assert __import__("orjson").loads(body) == {"error": ENVELOPE, "cause": cause}


async def test_unresolvable_host_is_not_retried_by_default(serve: Serve) -> None:
    url = "http://no-such-host.invalid/v1/models/a:predict"
    base = await serve(ONE, {"a": url})
    t0 = time.monotonic()
    status, _, body = await post(base, {"x": 1})
    assert status == 500 and time.monotonic() - t0 < 15
    cause = __import__("orjson").loads(body)["cause"]
    assert cause.startswith(f'Post "{url}": dial tcp: lookup no-such-host.invalid')


async def test_graph_listing_redacts_backend_passwords(serve: Serve) -> None:
    graph = ONE.replace("- serviceName: a", "- serviceUrl: 'http://user:s3cret@127.0.0.1:9/v1/models/a:predict'")
    base = await serve(graph, {})
    status, _, body = await post(base + "/graphs/one", method="GET")
    assert status == 200 and b"s3cret" not in body
    step = __import__("orjson").loads(body)["spec"]["nodes"]["root"]["steps"][0]
    assert step == {"serviceUrl": "http://user:xxxxx@127.0.0.1:9/v1/models/a:predict"}
    status, _, body = await post(base, {"x": 1})
    assert status == 500 and b"s3cret" not in body
