"""Backend answers' heads, trailers and chunk framing are bounded (issue 13, item 1).

A header or trailer that never ends, millions of header fields and endless chunk extensions each
fail fast with 502 and a cause naming the limit, at bounded CPU, and the next request is served.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from graph_router.http.client import ClientLimits, HttpClient, ResponseLimitExceeded, Url

from ..support.backends import Conn, RawBackend, answer_each, raw_backend
from ..support.graphs import one_step_graph
from ..support.router import RouterProcess, cpu_seconds
from .backends import post, serve_graph

MIB = 1024 * 1024
CHUNKED = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"


def by_path(hostile_answers: dict[str, bytes | tuple[bytes, bytes]]):  # type: ignore[no-untyped-def]
    """A backend whose answer is picked by the request path's last segment; ``normal`` is well-behaved.

    A ``(prefix, piece)`` answer sends ``prefix`` then ``piece`` over and over (up to 64 MiB or
    until the router hangs up)."""
    async def script(conn: Conn) -> None:
        while (req := await conn.request()) is not None:
            what = hostile_answers.get(req.path.rsplit("/", 1)[-1])
            if what is None:
                await conn.answer(200, b'{"predictions": [1]}', "content-type: application/json\r\n")
                continue
            if isinstance(what, tuple):
                conn.write(what[0])
                await conn.stream(what[1], max_bytes=64 * MIB)
            else:
                conn.write(what)
                await conn.writer.drain()
            if await conn.closed_by_peer():
                CLOSED_BY_ROUTER.append(req.path.rsplit("/", 1)[-1])
            return
    return script


#: Behaviours whose connection the router closed (in order).
CLOSED_BY_ROUTER: list[str] = []


ENDLESS = {
    "value": (b"HTTP/1.1 200 OK\r\nx-endless: ", b"a" * 65536),
    "headers": (b"HTTP/1.1 200 OK\r\n", b"a: b\r\n" * 10000),
    "trailer": (CHUNKED + b"2\r\n{}\r\n0\r\nx-endless: ", b"a" * 65536),
    "trailers": (CHUNKED + b"2\r\n{}\r\n0\r\n", b"t: 1\r\n" * 10000),
    "extension": (CHUNKED + b"2;ext=", b"a" * 65536),
    "chunk-extensions": (CHUNKED, b"1;" + b"e" * 200 + b"\r\n{\r\n"),
    "status-999": b"HTTP/1.1 999 Odd\r\ncontent-length: 0\r\n\r\n",
    "status-099": b"HTTP/1.1 099 Odd\r\ncontent-length: 0\r\n\r\n",
    "informational": (b"", b"HTTP/1.1 103 Early Hints\r\nlink: </a>; rel=preload\r\n\r\n"),
}


@pytest.fixture(scope="module")
def backend() -> Iterator[RawBackend]:
    with raw_backend(by_path(ENDLESS)) as b:
        yield b


def graphs_for(b: RawBackend) -> str:
    """One graph per behaviour, each calling ``<backend>/v1/models/<behaviour>``."""
    docs = []
    for name in [*ENDLESS, "normal"]:
        docs.append(one_step_graph(b.url(f"/v1/models/{name}")).replace("{name: g}", f"{{name: {name}}}"))
    return "---\n".join(docs)


@pytest.fixture(scope="module")
def router(backend: RawBackend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    with serve_graph(tmp_path_factory.mktemp("head"), graphs_for(backend)) as rp:
        yield rp


def call(rp: RouterProcess, name: str, within: float = 30.0) -> tuple[int, str, float]:
    """(status, cause or body, router CPU seconds spent) for one request to graph ``name``."""
    import http.client

    before = cpu_seconds(rp.proc.pid)
    conn = http.client.HTTPConnection("127.0.0.1", rp.port, timeout=within)
    try:
        conn.request("POST", f"/graphs/{name}", body=b"{}", headers={"content-type": "application/json"})
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    import orjson

    text = orjson.loads(body)["cause"] if resp.status >= 500 else body.decode()
    return resp.status, text, cpu_seconds(rp.proc.pid) - before


def still_serving(rp: RouterProcess) -> None:
    status, body, _ = call(rp, "normal")
    assert (status, body) == (200, '{"predictions": [1]}')


@pytest.mark.parametrize(("name", "detail"), [
    ("value", "net/http: server response headers exceeded 1048576 bytes; aborted"),
    ("headers", "net/http: server response has more than 1000 header fields; aborted"),
    ("informational", "net/http: server response headers exceeded 1048576 bytes; aborted"),
    ("trailer", "net/http: server response chunk extensions and trailers exceeded 65536 bytes; aborted"),
    ("trailers", "net/http: server response has more than 100 trailer fields; aborted"),
    ("extension", "net/http: server response chunk extensions and trailers exceeded 65536 bytes; aborted"),
    ("chunk-extensions", "net/http: server response chunk extensions and trailers exceeded 65536 bytes; aborted"),
])
def test_an_endless_head_or_trailer_fails_fast_with_502(
    router: RouterProcess, backend: RawBackend, name: str, detail: str
) -> None:
    streamed = backend.streamed
    status, cause, cpu = call(router, name)
    assert (status, cause) == (502, f'Post "{backend.url(f"/v1/models/{name}")}": {detail}')
    assert cpu < 2.0  # was 27 s of CPU for an endless header value
    # the router stopped reading near the limit: the limit plus what was in flight, not 64 MiB
    assert backend.streamed - streamed < 16 * MIB
    for _ in range(100):  # the backend notices the close on its own thread
        if name in CLOSED_BY_ROUTER:
            break
        time.sleep(0.02)
    assert name in CLOSED_BY_ROUTER  # the router hung up on it
    still_serving(router)


@pytest.mark.parametrize(("name", "code"), [("status-999", "999"), ("status-099", "099")])
def test_a_status_outside_100_599_is_502_without_a_traceback(
    router: RouterProcess, backend: RawBackend, name: str, code: str
) -> None:
    status, cause, _ = call(router, name)
    assert (status, cause) == (502, f'Post "{backend.url(f"/v1/models/{name}")}": net/http: HTTP/1.x transport '
                                    f'connection broken: malformed HTTP status code "{code}"')
    assert "Traceback" not in router.log()
    still_serving(router)


def test_two_million_response_headers_are_refused_quickly(tmp_path: Path) -> None:
    async def two_million(conn: Conn) -> None:
        if await conn.request() is None:
            return
        conn.write(b"HTTP/1.1 200 OK\r\n")
        await conn.stream(b"a: b\r\n" * 10000, max_bytes=2_000_000 * 6)
        await conn.closed_by_peer()

    with raw_backend(two_million) as b, serve_graph(tmp_path, one_step_graph(b.url())) as rp:
        before = cpu_seconds(rp.proc.pid)
        ans = post(rp, within=30)
        assert (ans.status, ans.cause) == (502, f'Post "{b.url()}": net/http: server response has more than 1000 '
                                                "header fields; aborted")
        assert ans.seconds < 5
        assert cpu_seconds(rp.proc.pid) - before < 2.0
        assert b.streamed < 2_000_000 * 6  # it stopped reading long before the 2,000,000th


def test_each_limit_is_a_serve_flag(tmp_path: Path) -> None:
    async def script(conn: Conn) -> None:
        while (req := await conn.request()) is not None:
            n = int(req.path.rsplit("/", 1)[-1])
            fields = "".join(f"x-{i}: {i}\r\n" for i in range(n))
            conn.write(CHUNKED + b"2\r\n{}\r\n0\r\n" + fields.encode() + b"\r\n")
            await conn.writer.drain()

    with raw_backend(script) as b:
        docs = [one_step_graph(b.url(f"/v1/models/{n}")).replace("{name: g}", f"{{name: g{n}}}") for n in (3, 4)]
        flags = ("--max-response-trailers", "3", "--max-response-headers", "3",
                 "--max-response-head-bytes", "4096", "--max-response-trailer-bytes", "4096")
        with serve_graph(tmp_path, "---\n".join(docs), *flags) as rp:
            assert call(rp, "g3")[:2] == (200, "{}")
            status, cause, _ = call(rp, "g4")
            assert (status, cause) == (502, f'Post "{b.url("/v1/models/4")}": net/http: server response has '
                                            "more than 3 trailer fields; aborted")


@pytest.mark.parametrize("flag", ["--max-response-head-bytes", "--max-response-headers",
                                  "--max-response-trailer-bytes", "--max-response-trailers", "--max-response-bytes"])
@pytest.mark.parametrize("value", ["0", "lots"])
def test_a_bad_limit_is_refused_at_start(tmp_path: Path, flag: str, value: str) -> None:
    import subprocess
    import sys

    from ..support.router import ROOT

    (tmp_path / "g.yaml").write_text(one_step_graph("http://127.0.0.1:1/x"))
    done = subprocess.run([sys.executable, "-m", "graph_router", "serve", str(tmp_path / "g.yaml"), flag, value],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert f"argument {flag}:" in done.stderr and "Traceback" not in done.stderr


# --- the client alone: exact limits ----------------------------------------------------------


async def one_answer(answer: bytes, limits: ClientLimits) -> tuple[int, bytes] | str:
    async def script(conn: Conn) -> None:
        if await conn.request() is not None:
            conn.write(answer)
            await conn.writer.drain()
            await conn.closed_by_peer(2)

    with raw_backend(script) as b:
        client = HttpClient(limits)
        try:
            resp = await client.request("POST", Url.parse(b.url()), [], b"{}", timeout=10)
        except ResponseLimitExceeded as exc:
            return exc.detail
        finally:
            await client.aclose()
    return resp.status, resp.body


def fields(n: int, prefix: str = "x") -> bytes:
    return "".join(f"{prefix}-{i:04d}: v\r\n" for i in range(n)).encode()


async def test_header_count_is_exact() -> None:
    limits = ClientLimits(max_headers=10)
    ok = b"HTTP/1.1 200 OK\r\n" + fields(9) + b"content-length: 2\r\n\r\n{}"
    assert await one_answer(ok, limits) == (200, b"{}")
    over = b"HTTP/1.1 200 OK\r\n" + fields(10) + b"content-length: 2\r\n\r\n{}"
    assert await one_answer(over, limits) == "net/http: server response has more than 10 header fields; aborted"


async def test_a_head_over_the_byte_limit_in_one_read_is_refused() -> None:
    limits = ClientLimits(max_head_bytes=1000)
    head = b"HTTP/1.1 200 OK\r\n" + fields(80) + b"content-length: 2\r\n\r\n{}"  # 918 bytes
    assert await one_answer(head, limits) == (200, b"{}")
    head = b"HTTP/1.1 200 OK\r\n" + fields(90) + b"content-length: 2\r\n\r\n{}"  # 1,028 bytes
    assert await one_answer(head, limits) == "net/http: server response headers exceeded 1000 bytes; aborted"


async def test_trailers_within_limits_are_read_and_dropped() -> None:
    limits = ClientLimits(max_trailers=5, max_trailer_bytes=200)
    answer = CHUNKED + b"2;a=b\r\n{}\r\n0\r\n" + fields(5, "t") + b"\r\n"
    assert await one_answer(answer, limits) == (200, b"{}")
    answer = CHUNKED + b"2\r\n{}\r\n0\r\n" + fields(4, "t") + b"x-long: " + b"v" * 200 + b"\r\n\r\n"
    assert await one_answer(answer, limits) == (
        "net/http: server response chunk extensions and trailers exceeded 200 bytes; aborted")


async def test_tiny_chunks_are_not_chunk_framing() -> None:
    # 1-byte chunks carry 5 bytes of framing each, within the 16 bytes per chunk that are free
    body = b'{"a": "' + b"x" * 20000 + b'"}'
    answer = CHUNKED + b"".join(b"1\r\n%c\r\n" % c for c in body) + b"0\r\n\r\n"
    assert await one_answer(answer, ClientLimits(max_trailer_bytes=64)) == (200, body)


async def test_the_normal_backend_still_answers(tmp_path: Path) -> None:
    with raw_backend(answer_each) as b:
        client = HttpClient()
        try:
            resp = await client.request("POST", Url.parse(b.url()), [], b"{}", timeout=5)
        finally:
            await client.aclose()
    assert (resp.status, resp.body) == (200, b'{"predictions": [1]}')
