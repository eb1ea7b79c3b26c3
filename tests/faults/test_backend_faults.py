"""Fault matrix, backend side: a real router process against raw-socket backends that misbehave.

One router serves every graph of this module (``POST /graphs/<name>``); each test asserts the status,
the envelope's cause, and that the router answers the next request normally.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from ..support.backends import Exchange, RawBackend, RawBehaviour
from ..support.graphs import graph, sequence
from ..support.ports import refused_port
from ..support.router import RouterProcess, stop_router
from .conftest import call, cause_of, head, start_router

MAX_RESPONSE = 1_048_576
UNMARSHAL = "json: cannot unmarshal {} into Go value of type map[string]interface {{}}"


async def reset_mid_body(ex: Exchange) -> bool:
    ex.send(head(200, 1000) + b'{"predictions": [')
    await ex.writer.drain()
    await asyncio.sleep(0.05)
    ex.conn.abort()
    return False


async def stall_after_headers(ex: Exchange) -> bool:
    ex.send(head(200, 100))
    return await ex.hold(10, "stall")


async def stall_before_headers(ex: Exchange) -> bool:
    return await ex.hold(10, "silent")


async def trickle(ex: Exchange) -> bool:
    ex.send(head(200, 200))
    try:
        for _ in range(200):
            ex.send(b" ")
            await ex.writer.drain()
            await asyncio.sleep(0.05)
    except ConnectionError:
        ex.backend.closed_by_peer["trickle"] += 1
    return False


async def close_without_answer(ex: Exchange) -> bool:
    return False  # the whole request was read: the backend may have processed it


async def garbage(ex: Exchange) -> bool:
    ex.send(b"NOT HTTP AT ALL\r\n\r\n")
    await ex.writer.drain()
    return False


def fixed(status: int, body: bytes) -> RawBehaviour:
    async def behave(ex: Exchange) -> bool:
        return await ex.answer(status, body)

    return behave


async def huge_with_length(ex: Exchange) -> bool:
    return await ex.answer(200, b"[" + b"1," * MAX_RESPONSE + b"1]")


async def huge_chunked(ex: Exchange) -> bool:
    ex.send(head(200, None, "transfer-encoding: chunked\r\n"))
    chunk = b"x" * 65536
    try:
        for _ in range(40):  # 2.5 MB in 64 KiB chunks, no Content-Length to check up front
            ex.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            await ex.writer.drain()
        ex.send(b"0\r\n\r\n")
        await ex.writer.drain()
    except ConnectionError:
        ex.backend.closed_by_peer["huge-chunked"] += 1
        return False
    return True


async def just_under(ex: Exchange) -> bool:
    return await ex.answer(200, b'"' + b"x" * (MAX_RESPONSE - 2) + b'"')


async def echo_status(ex: Exchange) -> bool:
    status = int(orjson.loads(ex.body)["status"])
    return await ex.answer(status, orjson.dumps({"backend_status": status, "n": orjson.loads(ex.body)["n"]}))


BEHAVIOURS: dict[str, RawBehaviour] = {
    "reset": reset_mid_body,
    "stall": stall_after_headers,
    "silent": stall_before_headers,
    "trickle": trickle,
    "html": fixed(200, b"<html>oops</html>"),
    "null": fixed(200, b"null"),
    "array": fixed(200, b"[1, 2]"),
    "string": fixed(200, b'"a string"'),
    "huge": huge_with_length,
    "huge-chunked": huge_chunked,
    "just-under": just_under,
    "status": echo_status,
    "close": close_without_answer,
    "garbage": garbage,
}



def ensemble(*urls: str) -> str:
    steps = "".join(f"        - name: s{i}\n          serviceUrl: {u}\n" for i, u in enumerate(urls))
    return f"    root:\n      routerType: Ensemble\n      steps:\n{steps}"


def graphs(b: RawBackend, refused: str) -> dict[str, str]:
    no_retry = "          retry: {maxRetries: 0}\n"
    return {
        "ok": graph("ok", sequence(b.route("ok"))),
        "refuse": graph("refuse", sequence(refused, no_retry)),
        "refuse-default-retry": graph("refuse-default-retry", sequence(refused), "  timeout: 1\n"),
        "reset": graph("reset", sequence(b.route("reset"))),
        "stall-client": graph("stall-client", sequence(b.route("stall")), "  routerTimeouts: {serviceClient: 1}\n"),
        "silent-client": graph("silent-client", sequence(b.route("silent")), "  routerTimeouts: {serviceClient: 1}\n"),
        "stall-graph": graph("stall-graph", sequence(b.route("stall")), "  timeout: 1\n"),
        "stall-step": graph("stall-step", sequence(b.route("stall"), "          timeout: 0.5\n")),
        "trickle": graph("trickle", sequence(b.route("trickle")), "  routerTimeouts: {serviceClient: 1}\n"),
        "ens-html": graph("ens-html", ensemble(b.route("ok"), b.route("html"))),
        "ens-null": graph("ens-null", ensemble(b.route("ok"), b.route("null"))),
        "ens-array": graph("ens-array", ensemble(b.route("ok"), b.route("array"))),
        "ens-string": graph("ens-string", ensemble(b.route("ok"), b.route("string"))),
        "seq-cond-html": graph("seq-cond-html", "    root:\n      routerType: Sequence\n      steps:\n"
                               f"        - serviceUrl: {b.route('html')}\n"
                               f"        - serviceUrl: {b.route('ok')}\n          condition: predictions\n"),
        "huge": graph("huge", sequence(b.route("huge"))),
        "huge-chunked": graph("huge-chunked", sequence(b.route("huge-chunked"))),
        "just-under": graph("just-under", sequence(b.route("just-under"))),
        "storm": graph("storm", sequence(b.route("status"))),
        "close": graph("close", sequence(b.route("close")), "  timeout: 2\n"),
        "garbage": graph("garbage", sequence(b.route("garbage"))),
    }


@pytest.fixture(scope="module")
def env(module_dir: Path, raw_factory: Callable[[dict[str, RawBehaviour]], RawBackend],
        ) -> Iterator[tuple[RouterProcess, RawBackend, str]]:
    b = raw_factory(BEHAVIOURS)
    refused = f"http://127.0.0.1:{refused_port()}/v1/models/gone:predict"
    rp = start_router(module_dir, graphs(b, refused), "--max-response-bytes", str(MAX_RESPONSE))
    yield rp, b, refused
    stop_router(rp)


@pytest.fixture
def router(env: tuple[RouterProcess, RawBackend, str]) -> Iterator[tuple[RouterProcess, RawBackend, str]]:
    env[1].reset()
    yield env
    rp = env[0]
    assert rp.proc.poll() is None, rp.log()
    assert "Traceback" not in rp.log(), rp.log()


async def run(rp: RouterProcess, name: str, body: bytes = b'{"instances": [1]}') -> tuple[int, dict[str, str], bytes]:
    return await call(f"{rp.url}/graphs/{name}", body)


async def still_serving(rp: RouterProcess) -> None:
    status, headers, body = await run(rp, "ok")
    assert status == 200 and orjson.loads(body)["predictions"] == [1], body
    assert headers["Content-Type"] == "application/json"


async def test_backend_refuses(router: tuple[RouterProcess, RawBackend, str]) -> None:
    rp, _, refused = router
    port = refused.split(":")[2].split("/")[0]
    expected = f'Post "{refused}": dial tcp 127.0.0.1:{port}: connect: connection refused'
    status, headers, body = await run(rp, "refuse")
    assert (status, cause_of(body)) == (500, expected)
    assert headers["Content-Type"] == "application/json" and headers["X-Graph-Error-Node"] == "root"
    # the default retry (refused = nothing processed) keeps trying within the graph timeout, then reports
    status, _, body = await run(rp, "refuse-default-retry")
    assert (status, cause_of(body)) == (500, expected)
    await still_serving(rp)


async def test_backend_resets_mid_body(router: tuple[RouterProcess, RawBackend, str]) -> None:
    rp, b, _ = router
    status, _, body = await run(rp, "reset")
    assert status == 500
    assert re.fullmatch(r"read tcp 127\.0\.0\.1:\d+->127\.0\.0\.1:\d+: read: connection reset by peer", cause_of(body))
    assert b.hits["reset"] == 1  # part of an answer arrived: never retried by default
    await still_serving(rp)


async def test_headers_then_stall_with_client_timeout(router: tuple[RouterProcess, RawBackend, str]) -> None:
    rp, b, _ = router
    status, _, body = await run(rp, "stall-client")
    assert (status, cause_of(body)) == (
        500, "context deadline exceeded (Client.Timeout or context cancellation while reading body)")
    status, _, body = await run(rp, "silent-client")
    assert (status, cause_of(body)) == (
        500, f'Post "{b.route("silent")}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)')
    # the router dropped both stalled connections rather than leaving them to the backend
    assert await wait_closed(b, "stall", 1) and await wait_closed(b, "silent", 1)
    await still_serving(rp)


async def test_headers_then_stall_with_graph_timeout(router: tuple[RouterProcess, RawBackend, str]) -> None:
    rp, b, _ = router
    status, headers, body = await run(rp, "stall-graph")
    assert (status, cause_of(body)) == (
        504, "graph timeout of 1.0s exceeded while node 'root' step '0' was running")
    assert headers["X-Graph-Error-Step"] == "0"
    status, _, body = await run(rp, "stall-step")
    assert (status, cause_of(body)) == (504, f"step timeout of 0.5s exceeded calling {b.route('stall')}")
    assert await wait_closed(b, "stall", 2)
    await still_serving(rp)


async def test_body_trickles_past_the_timeout(router: tuple[RouterProcess, RawBackend, str]) -> None:
    rp, b, _ = router
    status, _, body = await run(rp, "trickle")
    assert (status, cause_of(body)) == (
        500, "context deadline exceeded (Client.Timeout or context cancellation while reading body)")
    assert await wait_closed(b, "trickle", 1)
    await still_serving(rp)


async def test_invalid_json_where_the_graph_needs_json(router: tuple[RouterProcess, RawBackend, str]) -> None:
    rp, _, _ = router
    status, headers, body = await run(rp, "ens-html")
    assert (status, cause_of(body)) == (500, "invalid character '<' looking for beginning of value")
    assert (headers["X-Graph-Error-Node"], headers["X-Graph-Error-Step"]) == ("root", "s1")
    status, _, body = await run(rp, "seq-cond-html")  # a condition must read the previous (non-JSON) answer
    assert (status, cause_of(body)) == (500, "invalid response")
    await still_serving(rp)


async def test_ensemble_step_answers_null_array_or_string(router: tuple[RouterProcess, RawBackend, str]) -> None:
    rp = router[0]
    status, _, body = await run(rp, "ens-null")
    assert status == 200
    assert orjson.loads(body) == {"s0": {"predictions": [1], "path": "/ok/m"}, "s1": None}
    for name, kind in (("ens-array", "array"), ("ens-string", "string")):
        status, _, body = await run(rp, name)
        assert (status, cause_of(body)) == (500, UNMARSHAL.format(kind))
    await still_serving(rp)


async def test_enormous_backend_body_is_502(router: tuple[RouterProcess, RawBackend, str]) -> None:
    rp, b, _ = router
    for name in ("huge", "huge-chunked"):
        status, _, body = await run(rp, name)
        url = b.route(name)
        assert (status, cause_of(body)) == (502, f'Post "{url}": response body larger than {MAX_RESPONSE} bytes')
    status, _, body = await run(rp, "just-under")  # the limit is inclusive
    assert status == 200 and len(body) == MAX_RESPONSE
    await still_serving(rp)


async def test_500_503_504_storm_answers_as_the_backend_did(router: tuple[RouterProcess, RawBackend, str]) -> None:
    rp, b, _ = router
    wanted = [(500, 503, 504)[i % 3] for i in range(300)]
    results = await asyncio.gather(*(
        run(rp, "storm", orjson.dumps({"status": s, "n": i})) for i, s in enumerate(wanted)))
    for i, (status, headers, body) in enumerate(results):
        assert status == wanted[i]
        assert orjson.loads(body) == {"backend_status": wanted[i], "n": i}  # the backend's body, verbatim
        assert headers["Content-Type"] == "application/json"
    assert b.hits["status"] == 300  # no retries without a retry config
    await still_serving(rp)


async def wait_closed(b: RawBackend, key: str, n: int) -> bool:
    for _ in range(150):
        if b.closed_by_peer[key] >= n:
            return True
        await asyncio.sleep(0.02)
    return False


async def test_backend_answer_is_not_http(router: tuple[RouterProcess, RawBackend, str]) -> None:
    rp, b, _ = router
    status, _, body = await run(rp, "garbage")
    assert (status, cause_of(body)) == (502, f'Post "{b.route("garbage")}": net/http: HTTP/1.x transport connection '
                                              "broken: malformed HTTP response (Expected HTTP/, RTSP/ or ICE/)")
    assert b.hits["garbage"] == 1
    await still_serving(rp)


async def test_backend_closes_without_answering_is_not_retried(router: tuple[RouterProcess, RawBackend, str]) -> None:
    rp, b, _ = router
    status, _, body = await run(rp, "close")
    # Go's transport never retries a POST on a fresh connection (persistConn.shouldRetryRequest)
    assert (status, cause_of(body)) == (500, f'Post "{b.route("close")}": EOF')
    # sent once: not on a fresh connection, and not on a reused one either (a POST is not replayable)
    assert b.hits["close"] == 1
