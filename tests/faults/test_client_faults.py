"""Fault matrix, client side: hostile or broken clients against a real router process.

Each test asserts the status (or the dropped connection), the envelope's cause, and that the router
answers the next request normally.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from ..support.backends import Exchange, RawBackend, RawBehaviour
from ..support.graphs import graph, sequence
from ..support.router import RouterProcess, stop_router
from .conftest import call, cause_of, fd_count, start_router, wait_until

MAX_BODY = 1_048_576
NO_ROUTE = "None of the routes matched with the switch condition"


async def echo(ex: Exchange) -> bool:
    return await ex.answer(200, ex.body)


def predictions(value: float) -> RawBehaviour:
    async def behave(ex: Exchange) -> bool:
        return await ex.answer(200, orjson.dumps({"predictions": [value]}))

    return behave


async def wrap(ex: Exchange) -> bool:
    return await ex.answer(200, b'{"predictions": ' + ex.body + b"}")


async def hold(ex: Exchange) -> bool:
    return await ex.hold(20, "hold")



def mean_of(*urls: str) -> str:
    steps = "".join(f"        - serviceUrl: {u}\n" for u in urls)
    return f"    root:\n      routerType: Ensemble\n      aggregate: mean\n      steps:\n{steps}"


Env = tuple[RouterProcess, RawBackend]


@pytest.fixture(scope="module")
def env(module_dir: Path, raw_factory: Callable[[dict[str, RawBehaviour]], RawBackend]) -> Iterator[Env]:
    b = raw_factory({"echo": echo, "p1": predictions(1.0), "p3": predictions(3.0), "wrap": wrap, "hold": hold})
    graphs = {
        # serverRead applies to the whole server (the largest value of all graphs wins)
        "echo": graph("echo", sequence(b.route("echo")), "  routerTimeouts: {serverRead: 1}\n"),
        "switch": graph("switch", "    root:\n      routerType: Switch\n      steps:\n"
                                  f"        - serviceUrl: {b.route('echo')}\n          condition: a\n"),
        "mean": graph("mean", mean_of(b.route("p1"), b.route("p3"))),
        "mean-wrap": graph("mean-wrap", mean_of(b.route("wrap"), b.route("p1"))),
        "select": graph("select", sequence(b.route("echo"), "          data: $request.instances\n")),
        "hold": graph("hold", sequence(b.route("hold"))),
    }
    rp = start_router(module_dir, graphs, "--max-body-bytes", str(MAX_BODY))
    yield rp, b
    stop_router(rp)


@pytest.fixture
def router(env: Env) -> Iterator[Env]:
    env[1].reset()
    yield env
    assert env[0].proc.poll() is None, env[0].log()


async def run(rp: RouterProcess, name: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    return await call(f"{rp.url}/graphs/{name}", body)


async def still_serving(rp: RouterProcess) -> None:
    status, _, body = await run(rp, "echo", b'{"still": "serving"}')
    assert (status, body) == (200, b'{"still": "serving"}')


async def raw(rp: RouterProcess, data: bytes, *, within: float = 10) -> bytes:
    """Send ``data`` on a fresh connection; everything the router sends back until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", rp.port)
    try:
        writer.write(data)
        await writer.drain()
        out = b""
        async with asyncio.timeout(within):
            while chunk := await reader.read(65536):
                out += chunk
        return out
    finally:
        writer.close()


def split(response: bytes) -> tuple[int, bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def request(path: str, body: bytes = b"", headers: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nhost: r\r\nconnection: close\r\ncontent-length: {len(body)}\r\n{headers}\r\n"
            .encode() + body)


async def test_body_over_the_limit_is_413(router: Env) -> None:
    rp, b = router
    expected = f"request body larger than {MAX_BODY} bytes"
    # declared up front: refused before any byte of the body is read
    head = f"POST /graphs/echo HTTP/1.1\r\nhost: r\r\ncontent-length: {MAX_BODY + 1}\r\n\r\n".encode()
    status, body = split(await raw(rp, head))
    assert (status, cause_of(body)) == (413, expected)
    # chunked: refused as the body passes the limit
    chunked = (b"POST /graphs/echo HTTP/1.1\r\nhost: r\r\ntransfer-encoding: chunked\r\n\r\n"
               + f"{MAX_BODY + 1:x}\r\n".encode() + b"x" * (MAX_BODY + 1))
    status, body = split(await raw(rp, chunked))
    assert (status, cause_of(body)) == (413, expected)
    assert b.hits["echo"] == 0
    status, _, body = await run(rp, "echo", b'"' + b"x" * (MAX_BODY - 2) + b'"')  # the limit is inclusive
    assert status == 200 and len(body) == MAX_BODY
    await still_serving(rp)


async def slow_send(rp: RouterProcess, first: bytes, drip: bytes) -> tuple[bytes, float]:
    """Send ``first``, then ``drip`` one byte per 0.1 s until the router hangs up."""
    reader, writer = await asyncio.open_connection("127.0.0.1", rp.port)
    t0 = time.monotonic()
    got = b""
    try:
        writer.write(first)
        for byte in drip:
            writer.write(bytes([byte]))
            await writer.drain()
            try:
                got += await asyncio.wait_for(reader.read(65536), 0.1)
                break  # the router closed (b"") or answered
            except TimeoutError:
                continue
    except ConnectionError:
        pass
    finally:
        writer.close()
    return got, time.monotonic() - t0


async def test_slowloris_is_cut_at_the_read_timeout(router: Env) -> None:
    rp, b = router
    slow_body, took = await slow_send(rp, b"POST /graphs/echo HTTP/1.1\r\nhost: r\r\ncontent-length: 100\r\n\r\n",
                                      b"x" * 100)
    assert slow_body == b"" and 0.9 < took < 4  # dropped without an answer, as Go's server does
    slow_head, took = await slow_send(rp, b"POST /graphs/echo HTTP/1.1\r\nhost: r\r\n", b"x-slow: " + b"y" * 100)
    assert slow_head == b"" and 0.9 < took < 4
    assert b.hits["echo"] == 0
    await still_serving(rp)


async def test_invalid_utf8_body(router: Env) -> None:
    rp, b = router
    body = b'{"a": "\xff\xfe broken \xc3"}'
    status, _, out = await run(rp, "echo", body)
    assert (status, out) == (200, body)  # passed through byte for byte
    status, _, out = await run(rp, "switch", body)  # gjson does not check UTF-8: `a` exists
    assert (status, out) == (200, body)
    status, _, out = await run(rp, "switch", b"\xff\xfe")
    assert (status, cause_of(out)) == (404, NO_ROUTE)
    assert [r.body for r in b.requests] == [body, body]
    await still_serving(rp)


async def test_deeply_nested_json(router: Env) -> None:
    rp, b = router
    unclosed = b"[" * 100_000
    balanced = b"[" * 50_000 + b"]" * 50_000
    for body in (unclosed, balanced):
        status, _, out = await run(rp, "switch", body)
        assert (status, cause_of(out)) == (404, NO_ROUTE)
        status, _, out = await run(rp, "select", body)
        assert (status, cause_of(out)) == (
            400, "data '$request.instances': the request is not JSON, so nothing can be selected from it")
        # an Ensemble never parses the request: the backends get it as sent and the answers aggregate
        status, _, out = await run(rp, "mean", body)
        assert (status, orjson.loads(out)) == (200, {"predictions": [2.0]})
        status, _, out = await run(rp, "mean-wrap", body)  # a backend echoes it back inside its answer
        # Go's encoding/json refuses nesting past 10000 levels with this text (graph_router/go_unmarshal.py)
        assert (status, cause_of(out)) == (500, "invalid character '[' exceeded max depth")
    assert all(r.body in (unclosed, balanced) for r in b.requests) and b.hits["p1"] == 4
    await still_serving(rp)


async def test_json_just_under_the_parser_depth_limit(router: Env) -> None:
    rp, _ = router
    deep = b"[" * 1000 + b"]" * 1000
    obj = b'{"instances":' * 1000 + b"1" + b"}" * 1000
    for name, body in (("mean-wrap", deep), ("select", obj)):
        status, _, out = await run(rp, name, body)
        assert status in (400, 500) and cause_of(out) != "internal server error", (name, out[:200])
    assert "Traceback" not in rp.log()
    await still_serving(rp)


async def test_error_cause_does_not_echo_a_large_backend_answer(router: Env) -> None:
    rp, _ = router
    body = b'[["' + b"x" * 100_000 + b'"]]'
    status, _, out = await run(rp, "mean-wrap", body)
    assert status == 500
    assert cause_of(out).startswith("aggregate mean: step '0' answered ")
    assert len(out) < 2000, f"the cause carries {len(out)} bytes of the backend's answer"


async def test_thousands_of_headers_is_431(router: Env) -> None:
    rp, b = router
    many = "".join(f"x-h-{i}: v\r\n" for i in range(5000))
    status, body = split(await raw(rp, request("/graphs/echo", b"{}", many)))
    assert (status, cause_of(body)) == (431, "request header fields too large")
    huge = f"x-big: {'v' * 100_000}\r\n"
    status, body = split(await raw(rp, request("/graphs/echo", b"{}", huge)))
    assert (status, cause_of(body)) == (431, "request header fields too large")
    assert b.hits["echo"] == 0
    await still_serving(rp)


async def disconnect_mid_graph(rp: RouterProcess, b: RawBackend, n: int) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", rp.port)
    writer.write(request("/graphs/hold", b'{"x": 1}'))
    await writer.drain()
    for _ in range(250):
        if b.hits["hold"] >= n:
            break
        await asyncio.sleep(0.02)
    # A reset: a FIN alone may be a half-close, whose sender still waits for its answer.
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
    await asyncio.sleep(0)


async def test_client_disconnect_cancels_the_backend_call(router: Env) -> None:
    rp, b = router
    await still_serving(rp)
    await disconnect_mid_graph(rp, b, 1)
    assert await wait_until(lambda: b.closed_by_peer["hold"] == 1), "the backend call was not cancelled"
    await still_serving(rp)
    before = fd_count(rp.proc.pid)
    for batch in range(5):
        await asyncio.gather(*(disconnect_mid_graph(rp, b, 2 + batch * 10 + i) for i in range(10)))
    assert await wait_until(lambda: b.closed_by_peer["hold"] == 51), b.closed_by_peer
    await still_serving(rp)
    assert await wait_until(lambda: fd_count(rp.proc.pid) <= before + 2), (before, fd_count(rp.proc.pid))
