"""No request sent twice unless asked, and every accepted request answered (issue 13, items 4 and 5).

Most tests run a real ``graph-router serve`` against a raw-socket backend on 127.0.0.1; the rest
use the client or the library directly.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest

from graph_router import GraphRouter
from graph_router.backend import DEFAULT_RETRY_WINDOW
from graph_router.http.client import ClientLimits, HttpClient, Url

from ..support.backends import Conn, answer_each, raw_backend
from ..support.graphs import one_step_graph
from ..support.ports import refused_port
from .backends import post, serve_graph


async def read_then_close_on_reuse(conn: Conn) -> None:
    """Answers the first request keep-alive, then reads the next one and closes without a byte."""
    if conn.index == 0:
        if await conn.request() is None:
            return
        await conn.answer(200, b'{"first": true}')
        await conn.request()
        return
    await answer_each(conn, b'{"fresh": true}')


def test_post_read_on_a_reused_connection_reaches_the_backend_once(tmp_path: Path) -> None:
    with raw_backend(read_then_close_on_reuse) as b, serve_graph(tmp_path, one_step_graph(b.url())) as rp:
        first = post(rp, b'{"n": 1}')
        assert (first.status, first.body) == (200, b'{"first": true}')
        second = post(rp, b'{"n": 2}')
        # KServe's router (Go's Transport never re-sends a written POST) answers exactly this
        assert (second.status, second.cause) == (500, f'Post "{b.url()}": EOF')
        assert second.headers["content-type"] == "application/json"
        assert [(r.conn, r.body) for r in b.requests] == [(0, b'{"n": 1}'), (0, b'{"n": 2}')]
        assert b.connections == 1
        third = post(rp, b'{"n": 3}')  # served right after, on a fresh connection
        assert (third.status, third.body) == (200, b'{"fresh": true}')
        assert [(r.conn, r.body) for r in b.requests][-1] == (1, b'{"n": 3}')


def test_the_graphs_retry_policy_may_send_it_again(tmp_path: Path) -> None:
    retry = "          retry: {maxRetries: 1, initialDelayMs: 1, maxDelayMs: 1, retryOn: [reset]}\n"
    with raw_backend(read_then_close_on_reuse) as b, \
            serve_graph(tmp_path, one_step_graph(b.url(), step_extra=retry)) as rp:
        assert post(rp, b'{"n": 1}').status == 200
        again = post(rp, b'{"n": 2}')
        assert (again.status, again.body) == (200, b'{"fresh": true}')
        assert [(r.conn, r.body) for r in b.requests] == [(0, b'{"n": 1}'), (0, b'{"n": 2}'), (1, b'{"n": 2}')]


async def test_an_idle_connection_the_backend_closed_is_not_reused() -> None:
    async def close_when_idle(conn: Conn) -> None:
        if await conn.request() is not None:
            await conn.answer(200, b"{}")
        # then close the idle keep-alive connection, as a backend's idle timeout does

    with raw_backend(close_when_idle) as b:
        client = HttpClient()
        try:
            url = Url.parse(b.url())
            assert (await client.request("POST", url, [], b"1", timeout=5)).status == 200
            for _ in range(200):  # the loop delivers the backend's FIN to the idle connection
                if client.idle_connections() == 0:
                    break
                await asyncio.sleep(0.01)
            assert client.idle_connections() == 0
            assert (await client.request("POST", url, [], b"2", timeout=5)).status == 200
        finally:
            await client.aclose()
    assert [(r.conn, r.body) for r in b.requests] == [(0, b"1"), (1, b"2")]


def test_a_down_backend_is_answered_within_the_default_retry_window(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{refused_port()}/v1/models/m:predict"  # nothing listens there
    with serve_graph(tmp_path, one_step_graph(url)) as rp:
        ans = post(rp, within=DEFAULT_RETRY_WINDOW + 20)
    assert (ans.status, ans.cause) == (500, f'Post "{url}": dial tcp {url[7:].split("/")[0]}: connect: '
                                            "connection refused")
    # retried for the window (scale-from-zero), then answered: the window plus generous slack
    assert DEFAULT_RETRY_WINDOW - 1.5 <= ans.seconds <= DEFAULT_RETRY_WINDOW + 5


def test_the_retry_window_is_a_serve_flag(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{refused_port()}/v1/models/m:predict"
    with serve_graph(tmp_path, one_step_graph(url), "--default-retry-window", "0.5") as rp:
        ans = post(rp, within=20)
    assert ans.status == 500 and ans.cause.endswith("connect: connection refused")
    assert ans.seconds <= 0.5 + 4


def test_retries_end_before_the_servers_write_timeout(tmp_path: Path) -> None:
    # a retry window and a retry policy both longer than the write timeout: the client still
    # gets its status and envelope before the server would drop the connection
    url = f"http://127.0.0.1:{refused_port()}/v1/models/m:predict"
    timeouts = "  routerTimeouts: {serverWrite: 2}\n"
    with serve_graph(tmp_path, one_step_graph(url, spec_extra=timeouts), "--default-retry-window", "30") as rp:
        ans = post(rp, within=20)
        assert (ans.status, ans.headers["content-type"]) == (500, "application/json")
        assert ans.cause.endswith("connect: connection refused")
        assert ans.seconds < 2.0
        retry = "          retry: {maxRetries: 10, initialDelayMs: 1000, maxDelayMs: 1000}\n"
    with serve_graph(tmp_path / "policy", one_step_graph(url, spec_extra=timeouts, step_extra=retry)) as rp:
        ans = post(rp, within=20)
        assert ans.status == 500 and ans.cause.endswith("connect: connection refused")
        assert ans.seconds < 2.0


@pytest.mark.parametrize("value", ["-1", "soon", "inf"])
def test_a_bad_retry_window_is_refused_at_start(tmp_path: Path, value: str) -> None:
    import subprocess
    import sys

    from ..support.router import ROOT

    (tmp_path / "g.yaml").write_text(one_step_graph("http://127.0.0.1:1/x"))
    done = subprocess.run([sys.executable, "-m", "graph_router", "serve", str(tmp_path / "g.yaml"),
                           "--default-retry-window", value], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "argument --default-retry-window:" in done.stderr
    assert "Traceback" not in done.stderr


def test_client_limits_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="max_head_bytes must be positive"):
        ClientLimits(max_head_bytes=0)


async def test_a_replayable_request_is_sent_again_once(tmp_path: Path) -> None:
    # Go's Request.isReplayable: GET, or an Idempotency-Key; the backend sees it twice, as with Go
    with raw_backend(read_then_close_on_reuse) as b:
        client = HttpClient()
        try:
            url = Url.parse(b.url())
            key = [("Idempotency-Key", "abc")]
            assert (await client.request("POST", url, key, b"1", timeout=5)).status == 200
            started = time.monotonic()
            resp = await client.request("POST", url, key, b"2", timeout=5)
            assert (resp.status, resp.body) == (200, b'{"fresh": true}')
            assert time.monotonic() - started < 5
        finally:
            await client.aclose()
    assert [(r.conn, r.body) for r in b.requests] == [(0, b"1"), (0, b"2"), (1, b"2")]


async def test_the_library_answers_before_its_write_timeout_too(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{refused_port()}/v1/models/m:predict"
    spec = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": url}]}}}
    async with GraphRouter.from_spec(spec, default_retry_window=30, write_timeout=1.0) as router:
        started = time.monotonic()
        with caplog.at_level("INFO", logger="graph_router.retry"):
            res = await router.infer({})
        elapsed = time.monotonic() - started
    assert any(r.getMessage().startswith("retrying ") for r in caplog.records)  # the window did apply
    assert res.status == 500 and orjson.loads(res.body)["cause"].endswith("connect: connection refused")
    assert elapsed < 1.0  # retried (never sleeping past the answer due), then answered in time
    with pytest.raises(ValueError, match="default_retry_window must be >= 0 seconds"):
        GraphRouter.from_spec(spec, default_retry_window=-1)
