"""A backend answer costs about its size whatever the chunking, and is charged to the byte budget
(issue 13, items 1 and 2, client side)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import orjson
import pytest

from graph_router import GraphRouter
from graph_router.http.budget import ByteBudget
from graph_router.http.client import BudgetExhausted, ClientLimits, HttpClient, Url

from ..support.backends import Conn, raw_backend
from ..support.graphs import one_step_graph
from ..support.router import reset_peak, rss_kib
from .backends import post, serve_graph

MIB = 1024 * 1024
CHUNKED = b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def tiny_chunks(size: int, chunk: int = 2):  # type: ignore[no-untyped-def]
    """A backend answering about ``size`` bytes of ``x`` in ``chunk``-byte chunks, and that size."""
    one = f"{chunk:x}\r\n".encode() + b"x" * chunk + b"\r\n"
    piece = one * (65536 // len(one))
    per_piece = chunk * (65536 // len(one))
    pieces = size // per_piece

    async def script(conn: Conn) -> None:
        while (req := await conn.request()) is not None:
            if not req.path.endswith("/big"):
                await conn.answer(200, b"{}")
                continue
            conn.write(CHUNKED)
            await conn.stream(piece, max_bytes=len(piece) * pieces, within=60)
            conn.write(b"0\r\n\r\n")
            await conn.writer.drain()
    return script, per_piece * pieces


class PeakSampler:
    """Peak RSS of a process: the kernel's high-water mark when it can be reset, else sampled."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.exact = reset_peak(pid)
        self.peak = rss_kib(pid)
        self._stop = threading.Event()
        self._thread = None if self.exact else threading.Thread(target=self._run, daemon=True)
        if self._thread is not None:
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_kib(self.pid))

    def stop(self) -> int:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(5)
            return self.peak
        return rss_kib(self.pid, "VmHWM")


def test_sixteen_mib_in_two_byte_chunks_costs_about_its_size(tmp_path: Path) -> None:
    script, size = tiny_chunks(16 * MIB)
    with raw_backend(script) as b:
        graph = one_step_graph(b.url("/v1/models/big"))
        with serve_graph(tmp_path, graph) as rp:
            time.sleep(0.3)
            idle = rss_kib(rp.proc.pid)
            sampler = PeakSampler(rp.proc.pid)
            ans = post(rp, within=120)
            peak = sampler.stop()
            assert (ans.status, len(ans.body), ans.headers["content-type"]) == (200, size, "application/octet-stream")
            assert ans.body == b"x" * size
            # was +1 GB for this answer; now within about 3x the body's size above idle (the
            # accumulated body, its final copy, and the server's write buffer)
            assert (peak - idle) * 1024 <= 3 * size + 2 * MIB, (idle, peak)
            after = settled_rss(rp.proc.pid)
            assert post(rp, within=120).status == 200
            again = settled_rss(rp.proc.pid)
            # back near idle: the allocator may keep up to about two bodies' worth of freed heap for
            # the next answer (glibc's dynamic mmap and trim thresholds); answers reuse it, never grow it
            assert (after - idle) * 1024 <= 2.25 * size, (idle, peak, after)
            assert (again - idle) * 1024 <= 2.25 * size, (idle, peak, after, again)


def test_with_a_fixed_mmap_threshold_the_memory_comes_back_at_once(tmp_path: Path) -> None:
    script, size = tiny_chunks(8 * MIB)
    with raw_backend(script) as b, serve_graph(tmp_path, one_step_graph(b.url("/v1/models/big")),
                                           env={"MALLOC_MMAP_THRESHOLD_": "1048576"}) as rp:
        idle = settled_rss(rp.proc.pid)
        for _ in range(2):
            assert post(rp, within=120).status == 200
            after = settled_rss(rp.proc.pid)
            assert (after - idle) * 1024 <= size // 4, (idle, after)


def settled_rss(pid: int) -> int:
    time.sleep(0.3)
    return rss_kib(pid)


async def paused_answer(conn: Conn, body_size: int, release: threading.Event) -> None:
    """Send the head and half of a Content-Length body, wait for ``release``, send the rest."""
    if await conn.request() is None:
        return
    conn.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % body_size + b"x" * (body_size // 2))
    await conn.writer.drain()
    await asyncio.to_thread(release.wait, 10)
    conn.write(b"x" * (body_size - body_size // 2))
    await conn.writer.drain()
    await conn.closed_by_peer(2)


async def test_body_bytes_are_charged_while_read_and_given_back() -> None:
    budget = ByteBudget(1 * MIB)
    release = threading.Event()

    async def script(conn: Conn) -> None:  # the second connection's half alone fits, not with the first's
        await paused_answer(conn, 1_000_000 if conn.index == 0 else 1_200_000, release)

    with raw_backend(script) as b:
        client = HttpClient(ClientLimits(budget=budget))
        try:
            first = asyncio.ensure_future(client.request("POST", Url.parse(b.url()), [], b"{}", timeout=10))
            for _ in range(500):  # until the first half arrived
                if budget.used >= 500_000:
                    break
                await asyncio.sleep(0.01)
            assert budget.used == 500_000
            # a second answer that would pass the budget while the first is being read: refused
            with pytest.raises(BudgetExhausted) as info:
                await client.request("POST", Url.parse(b.url()), [], b"{}", timeout=10)
            assert info.value.detail == ("the router's memory budget for bodies in flight (1048576 bytes) is spent; "
                                         "response body refused")
            assert budget.refused == 1 and budget.used == 500_000  # the refused one gave its bytes back
            release.set()
            resp = await first
            assert (resp.status, len(resp.body)) == (200, 1_000_000)
            assert budget.used == 0 and budget.peak >= 1_000_000
        finally:
            release.set()
            await client.aclose()


async def test_a_broken_answer_gives_its_bytes_back() -> None:
    budget = ByteBudget(1 * MIB)

    async def half_then_close(conn: Conn) -> None:
        if await conn.request() is not None:
            conn.write(b"HTTP/1.1 200 OK\r\ncontent-length: 500000\r\n\r\n" + b"x" * 200_000)
            await conn.writer.drain()

    with raw_backend(half_then_close) as b:
        client = HttpClient(ClientLimits(budget=budget))
        try:
            with pytest.raises(Exception, match="unexpected EOF"):
                await client.request("POST", Url.parse(b.url()), [], b"{}", timeout=10)
        finally:
            await client.aclose()
    assert budget.used == 0 and budget.peak == 200_000


async def test_a_spent_budget_is_503_with_retry_after_through_the_engine() -> None:
    budget = ByteBudget(1 * MIB)

    async def big(conn: Conn) -> None:
        while await conn.request() is not None:
            await conn.answer(200, b'"' + b"x" * (2 * MIB) + b'"')

    with raw_backend(big) as b:
        spec = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": b.url()}]}}}
        async with GraphRouter.from_spec(spec, client_limits=ClientLimits(budget=budget)) as router:
            res = await router.infer({"instances": [1]})
    assert res.status == 503
    assert orjson.loads(res.body) == {
        "error": "Failed to process request",
        "cause": f'Post "{b.url()}": the router\'s memory budget for bodies in flight (1048576 bytes) is spent; '
                 "response body refused",
    }
    headers = dict(res.headers)
    assert (headers["Retry-After"], headers["X-Graph-Error-Node"]) == ("1", "root")
    assert budget.used == 0 and budget.refused == 1
    assert len(b.requests) == 1  # not retried: the budget is not a backend failure
