"""Shadow traffic (step ``mirror``) through the real server, with real backends on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from graph_router import GraphRouter
from graph_router.loader import load_graph_text
from graph_router.mirror import Shadows
from graph_router.telemetry import Telemetry

from ..conftest import StartApp
from ..support.backends import Backend, reply
from ..support.graphs import graph as resource
from ..support.ports import refused_port
from ..telemetry.test_telemetry_metrics import Samples, get, scrape

MakeBackend = Callable[[], Awaitable[Backend]]
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def graph(mirror: str | None, *, extra: str = "") -> str:
    step = "        - name: score\n          serviceName: real\n"
    if mirror is not None:
        step += f"          mirror: {mirror}\n"
    return resource("g", f"    root:\n      routerType: Sequence\n      steps:\n{step}", extra)


async def serve(app_server: StartApp, yaml_text: str, services: dict[str, str], *,
                seed: int | None = None) -> tuple[str, Shadows]:
    tel = Telemetry()
    assert tel.metrics is not None
    shadows = Shadows(tel.metrics, rng=random.Random(seed) if seed is not None else None)
    router = GraphRouter(load_graph_text(yaml_text), services=services, hooks=tel.hooks, shadows=shadows)
    return await app_server(router, telemetry=tel), shadows


async def call(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, list[Any], bytes]:
    """Status, raw header lines without Date (it changes every second), body bytes."""
    async with aiohttp.ClientSession() as s, s.post(url, data=body, headers={
            "Content-Type": "application/json", **(headers or {})}) as r:
        raw = [h for h in r.raw_headers if h[0].lower() != b"date"]
        return r.status, raw, await r.read()


def mirror_labels(shadow: str = "shadow") -> dict[str, str]:
    return {"graph": "g", "node": "root", "step": "score", "shadow": shadow}


async def hang(_req: web.Request, _body: bytes) -> web.StreamResponse:
    await asyncio.sleep(3600)
    raise AssertionError("unreachable")


BEHAVIOURS: dict[str, Any] = {
    "answers": reply(200, {"predictions": [7]}),
    "slow": reply(200, {"predictions": [7]}, delay=3.0),
    "garbage": reply(200, raw=b"\x00\xffnot json at all{"),
    "error": reply(500, {"error": "boom"}),
    "hangs": hang,
    "down": None,
}


@pytest.mark.parametrize("shadow_is", list(BEHAVIOURS))
async def test_the_callers_answer_is_byte_identical_with_and_without_a_mirror(
        shadow_is: str, app_server: StartApp, backend_factory: MakeBackend) -> None:
    real, shadow = await backend_factory(), await backend_factory()
    real.default = reply(200, {"predictions": [1, 2], "model": "v1"})
    shadow.default = BEHAVIOURS[shadow_is]
    shadow_url = shadow.predict_url("shadow") if shadow_is != "down" else f"http://127.0.0.1:{refused_port()}/v1/x"
    extra = "  propagateHeaders: [X-Request-Id]\n"
    plain, _ = await serve(app_server, graph(None, extra=extra), {"real": real.predict_url("real")})
    mirrored, shadows = await serve(app_server, graph("{serviceName: shadow, timeout: 1}", extra=extra),
                                    {"real": real.predict_url("real"), "shadow": shadow_url})
    body = b'{"instances": [[1.0, 2.0]]}'
    hdrs = {"x-request-id": "r-1", "traceparent": TRACEPARENT}
    expected = await call(plain, body, hdrs)
    started = time.monotonic()
    got = await call(mirrored, body, hdrs)
    assert time.monotonic() - started < 2.0  # the shadow's 3 s (slow) or forever (hangs) are not waited for
    assert got == expected
    assert expected[0] == 200 and expected[2] == b'{"predictions": [1, 2], "model": "v1"}'
    async with asyncio.timeout(10):
        await shadows.idle()
    if shadow_is != "down":  # the shadow got exactly what the real step got: body and propagated headers
        assert [s.body for s in shadow.seen] == [body]
        assert shadow.seen[0].headers["x-request-id"] == real.seen[0].headers["x-request-id"] == "r-1"
        assert shadow.seen[0].headers["traceparent"] == TRACEPARENT
        assert shadow.seen[0].path == "/v1/models/shadow:predict"
    samples = await scrape(mirrored)
    assert get(samples, "graph_router_mirror_requests_total", **mirror_labels()) == 1
    errors = {"answers": None, "slow": "timeout", "garbage": None, "error": "http_500", "hangs": "timeout",
              "down": "backend_connect"}[shadow_is]
    if errors is not None:
        assert get(samples, "graph_router_mirror_errors_total", **mirror_labels(), error=errors) == 1
    assert get(samples, "graph_router_mirror_duration_seconds_count", **mirror_labels()) == 1


async def test_the_share_of_mirrored_requests_is_within_a_binomial_band(
        app_server: StartApp, backend_factory: MakeBackend) -> None:
    real, shadow = await backend_factory(), await backend_factory()
    url, shadows = await serve(app_server, graph("{serviceName: shadow, percent: 30}"),
                               {"real": real.predict_url(), "shadow": shadow.predict_url()}, seed=18)
    n, p = 2000, 0.3
    async with aiohttp.ClientSession() as s:
        async def worker(k: int) -> None:
            for _ in range(n // 10):
                async with s.post(url, data=b'{"instances": [1]}') as r:
                    assert r.status == 200
                    await r.read()

        await asyncio.gather(*(worker(k) for k in range(10)))
    async with asyncio.timeout(20):
        await shadows.idle()
    assert len(real.seen) == n
    sigma = math.sqrt(n * p * (1 - p))
    assert abs(len(shadow.seen) - n * p) <= 5 * sigma, len(shadow.seen)
    samples = await scrape(url)
    assert get(samples, "graph_router_mirror_requests_total", **mirror_labels()) == len(shadow.seen)
    assert get(samples, "graph_router_mirror_dropped_total", **mirror_labels()) == 0


async def test_the_queue_bound_holds_and_drops_are_counted_exactly(
        app_server: StartApp, backend_factory: MakeBackend) -> None:
    real, shadow = await backend_factory(), await backend_factory()
    release, full, live, peak = asyncio.Event(), asyncio.Event(), [0], [0]

    async def held(_req: web.Request, _body: bytes) -> web.StreamResponse:
        live[0] += 1
        peak[0] = max(peak[0], live[0])
        if live[0] == 3:
            full.set()
        try:
            await asyncio.wait_for(release.wait(), 20)
        finally:
            live[0] -= 1
        return web.json_response({"predictions": [1]})

    shadow.default = held
    url, shadows = await serve(app_server, graph("{serviceName: shadow, maxConcurrency: 3, queueSize: 5}"),
                               {"real": real.predict_url(), "shadow": shadow.predict_url()})
    answers = await asyncio.gather(*(call(url, b'{"instances": [1]}') for _ in range(40)))
    assert [a[0] for a in answers] == [200] * 40  # every caller answered while the shadow is stuck
    lane = shadows.lane("g", "root", "score")
    assert lane is not None
    async with asyncio.timeout(10):
        await full.wait()
    assert (lane.active, len(lane.waiting)) == (3, 5)
    samples = await scrape(url)
    assert get(samples, "graph_router_mirror_dropped_total", **mirror_labels()) == 32
    assert get(samples, "graph_router_mirror_requests_total", **mirror_labels()) == 3
    release.set()
    async with asyncio.timeout(20):
        await shadows.idle()
    samples = await scrape(url)
    assert get(samples, "graph_router_mirror_requests_total", **mirror_labels()) == 8
    assert get(samples, "graph_router_mirror_dropped_total", **mirror_labels()) == 32
    assert len(shadow.seen) == 8
    assert peak[0] == lane.peak == 3


def cls(c: str) -> dict[str, Any]:
    return {"predictions": [{"class": c}]}


def score(s: float) -> dict[str, Any]:
    return {"predictions": [{"score": s}]}


def scripted(answers: list[tuple[int, Any]]) -> list[Any]:
    return [reply(status, body) for status, body in answers]


async def test_agreement_counts_are_exact_for_scripted_answers(
        app_server: StartApp, backend_factory: MakeBackend, caplog: pytest.LogCaptureFixture) -> None:
    real, shadow = await backend_factory(), await backend_factory()
    real.script = scripted([(200, cls("cat")), (200, cls("dog")), (200, cls("cat")), (200, cls("cat")),
                            (200, cls("cat")), (500, {"e": 1}), (200, cls("cat"))])
    shadow.script = scripted([(200, cls("cat")), (200, cls("cat")), (200, cls("fox")), (200, {"other": 1}),
                              (503, {"e": 2}), (200, cls("cat")), (200, cls("cat"))])
    url, shadows = await serve(app_server, graph("{serviceName: shadow, compare: predictions.0.class}"),
                               {"real": real.predict_url(), "shadow": shadow.predict_url()})
    caplog.set_level(logging.WARNING, logger="graph_router.mirror")
    for _ in range(7):  # one at a time: the scripts pair up in order
        await call(url, b'{"instances": [1]}', {"traceparent": TRACEPARENT})
        async with asyncio.timeout(10):
            await shadows.idle()
    samples = await scrape(url)
    result = {r: get(samples, "graph_router_mirror_comparisons_total", **mirror_labels(), result=r)
              for r in ("agree", "disagree", "missing", "skipped")}
    assert result == {"agree": 2, "disagree": 2, "missing": 1, "skipped": 1}
    assert get(samples, "graph_router_mirror_errors_total", **mirror_labels(), error="http_503") == 1
    assert get(samples, "graph_router_mirror_requests_total", **mirror_labels()) == 7
    lines = [r.getMessage() for r in caplog.records if "shadow disagrees" in r.getMessage()]
    assert len(lines) == 1  # rate-limited: the second disagreement within 10 s is only counted
    assert 'real="dog" shadow_value="cat"' in lines[0]
    assert "trace_id=0af7651916cd43dd8448eb211c80319c" in lines[0]


async def test_numbers_agree_within_tolerance_and_their_difference_is_a_histogram(
        app_server: StartApp, backend_factory: MakeBackend) -> None:
    real, shadow = await backend_factory(), await backend_factory()
    real.script = scripted([(200, score(0.5)), (200, score(0.5)), (200, score(2)), (200, score(1))])
    shadow.script = scripted([(200, score(0.5)), (200, score(0.505)), (200, score(5)), (200, score(True))])
    url, shadows = await serve(app_server, graph('{serviceName: shadow, compare: "$.predictions[0].score", '
                                                 'tolerance: 0.01}'),
                               {"real": real.predict_url(), "shadow": shadow.predict_url()})
    for _ in range(4):
        await call(url, b'{"instances": [1]}')
        async with asyncio.timeout(10):
            await shadows.idle()
    samples: Samples = await scrape(url)
    labels = mirror_labels()
    assert get(samples, "graph_router_mirror_comparisons_total", **labels, result="agree") == 2
    assert get(samples, "graph_router_mirror_comparisons_total", **labels, result="disagree") == 2
    assert get(samples, "graph_router_mirror_difference_count", **labels) == 3  # true is not a number
    assert get(samples, "graph_router_mirror_difference_sum", **labels) == pytest.approx(3.005)
    assert get(samples, "graph_router_mirror_difference_bucket", **labels, le="0.0") == 0
    assert get(samples, "graph_router_mirror_difference_bucket", **labels, le="1e-06") == 1
    assert get(samples, "graph_router_mirror_difference_bucket", **labels, le="0.01") == 2
    assert get(samples, "graph_router_mirror_difference_bucket", **labels, le="10.0") == 3


async def test_alongside_sends_the_copy_while_the_real_call_runs(
        app_server: StartApp, backend_factory: MakeBackend) -> None:
    real, shadow = await backend_factory(), await backend_factory()
    shadow_got = asyncio.Event()

    async def after_shadow(_req: web.Request, _body: bytes) -> web.StreamResponse:
        await asyncio.wait_for(shadow_got.wait(), 10)  # only answers once the shadow has the copy
        return web.json_response({"predictions": [1]})

    async def shadow_answer(_req: web.Request, _body: bytes) -> web.StreamResponse:
        shadow_got.set()
        return web.json_response({"predictions": [1]})

    real.default, shadow.default = after_shadow, shadow_answer
    url, shadows = await serve(app_server, graph("{serviceName: shadow, mode: alongside}"),
                               {"real": real.predict_url(), "shadow": shadow.predict_url()})
    status, _, body = await call(url, b'{"instances": [1]}')
    assert (status, body) == (200, b'{"predictions": [1]}')
    async with asyncio.timeout(10):
        await shadows.idle()
        await asyncio.sleep(0)  # the comparison runs in a callback after the real answer
    samples = await scrape(url)
    assert get(samples, "graph_router_mirror_comparisons_total", **mirror_labels(), result="agree") == 1


async def test_a_graph_without_mirrors_shows_no_mirror_metrics(
        app_server: StartApp, backend_factory: MakeBackend) -> None:
    real = await backend_factory()
    url, _ = await serve(app_server, graph(None), {"real": real.predict_url()})
    await call(url, b"{}")
    async with aiohttp.ClientSession() as s, s.get(f"{url}/metrics") as r:
        assert b"mirror" not in await r.read()


async def test_serve_with_two_workers_counts_every_copy_once(
        router_process: Callable[..., Any], backend_factory: MakeBackend, tmp_path: Path) -> None:
    real, shadow = await backend_factory(), await backend_factory()
    shadow.default = reply(200, {"predictions": [1, 2], "model": "v2"})
    graph_file = tmp_path / "g.yaml"
    graph_file.write_text(graph("{serviceName: shadow}"))
    rp = router_process(str(graph_file), "--workers", "2", "--drain-seconds", "0", "--no-access-log",
                        "--service", f"real={real.predict_url()}", "--service", f"shadow={shadow.predict_url()}")
    n = 30
    for _ in range(n):  # a fresh connection each: SO_REUSEPORT spreads them over both workers
        conn = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=conn) as s, s.post(rp.url, data=b'{"instances": [1]}') as r:
            assert (r.status, await r.read()) == (200, b'{"predictions": [1], "echo": "{\\"instances\\": [1]}"}')
    labels = mirror_labels()
    for _ in range(100):  # up to ~5 s: each worker writes its counts to the files once a second
        samples = await scrape(rp.url)
        if get(samples, "graph_router_mirror_comparisons_total", **labels, result="disagree") == n:
            break
        await asyncio.sleep(0.05)
    assert get(samples, "graph_router_mirror_requests_total", **labels) == n
    assert get(samples, "graph_router_mirror_comparisons_total", **labels, result="disagree") == n
    assert get(samples, "graph_router_mirror_duration_seconds_count", **labels) == n
    assert len(shadow.seen) == n and len(real.seen) == n


async def test_the_graph_listing_redacts_the_shadows_password(app_server: StartApp) -> None:
    url, _ = await serve(app_server, graph('{serviceUrl: "http://u:secret@127.0.0.1:9/v1/models/s:predict"}'),
                         {"real": "http://127.0.0.1:9/v1/models/r:predict"})
    async with aiohttp.ClientSession() as s, s.get(f"{url}/graphs/g") as r:
        step = (await r.json())["spec"]["nodes"]["root"]["steps"][0]
    assert step["mirror"]["serviceUrl"] == "http://u:xxxxx@127.0.0.1:9/v1/models/s:predict"
