"""What the router does with odd but valid backend answers (issue 13, item 6, client side):
a non-JSON answer keeps the backend's ``Content-Type``; ``mapPredictionsToInstances`` reads the key
as Go's ``encoding/json`` does (checked against KServe's own router when it is available)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import orjson
import pytest

from graph_router import GraphRouter

from ..support.backends import Conn, raw_backend
from ..support.graphs import one_step_graph
from ..support.ports import free_port
from ..support.router import ROOT
from .backends import post, serve_graph

#: KServe's own router binary, built for comparison: ``$KSERVE_ROUTER``, or one beside the checkout.
KSERVE_ROUTER = Path(os.environ.get("KSERVE_ROUTER") or ROOT.parent / "shared" / "kserve-router" / "router")


@pytest.mark.parametrize(("content_type", "body"), [
    ("text/csv; charset=utf-8", b"a,b\n1,2\n"),
    ("application/octet-stream", b"\x00\x01\x02"),
    ("text/html", b"<p>hi</p>"),
])
def test_a_non_json_answer_keeps_the_backends_content_type(tmp_path: Path, content_type: str, body: bytes) -> None:
    async def script(conn: Conn) -> None:
        while await conn.request() is not None:
            await conn.answer(200, body, f"content-type: {content_type}\r\n")

    with raw_backend(script) as b, serve_graph(tmp_path, one_step_graph(b.url())) as rp:
        ans = post(rp)
    assert (ans.status, ans.headers["content-type"], ans.body) == (200, content_type, body)


def test_a_non_json_answer_without_a_type_gets_none(tmp_path: Path) -> None:
    async def script(conn: Conn) -> None:
        while await conn.request() is not None:
            await conn.answer(200, b"plain")

    with raw_backend(script) as b, serve_graph(tmp_path, one_step_graph(b.url())) as rp:
        ans = post(rp)
    assert (ans.status, ans.body, "content-type" in ans.headers) == (200, b"plain", False)


def test_a_json_answer_is_application_json_whatever_the_backend_said(tmp_path: Path) -> None:
    async def script(conn: Conn) -> None:
        while await conn.request() is not None:
            await conn.answer(200, b'{"a": 1}', "content-type: text/plain\r\n")

    with raw_backend(script) as b, serve_graph(tmp_path, one_step_graph(b.url())) as rp:
        ans = post(rp)
    assert (ans.status, ans.headers["content-type"], ans.body) == (200, "application/json", b'{"a": 1}')


#: (first step's answer, what the second step receives), as KServe's router (Go 1.19) does it.
PREDICTIONS = [
    ('{"Predictions":[1]}', '{"instances":[1]}'),
    ('{"predictions":[1],"Predictions":[2]}', '{"instances":[2]}'),
    ('{"Predictions":[2],"predictions":[1]}', '{"instances":[1]}'),
    ('{"PREDICTIONS":[1],"Predictions":[2]}', '{"instances":[2]}'),
    ('{"pREDICTIONS":[3]}', '{"instances":[3]}'),
    ('{"prediction\u017f":[1]}', '{"instances":[1]}'),
    ('{"predictions":[1],"other":1}', '{"instances":[1]}'),
    ('{"Predictions":[]}', '{"Predictions":[]}'),
    ('{"Predictions":5}', '{"Predictions":5}'),
    ('{"predictions":[1],"Predictions":null}', '{"predictions":[1],"Predictions":null}'),
    ('{"Predictions":[1],"predictions":5}', '{"Predictions":[1],"predictions":5}'),
    ('{"predictions":5,"Predictions":[1]}', '{"predictions":5,"Predictions":[1]}'),
    ('{"predictions":[1],"Predictions":[]}', '{"predictions":[1],"Predictions":[]}'),
    ('{"predictions":[1],"Predictions":"x"}', '{"predictions":[1],"Predictions":"x"}'),
    ('{"predictions":[1],"predictions":[2]}', '{"instances":[2]}'),
    ('{"predictIons":[1]}', '{"instances":[1]}'),
    ('{"predict\u0130ons":[1]}', '{"predict\u0130ons":[1]}'),
    ('[1]', '[1]'),
]


def two_steps(url_first: str, url_echo: str) -> dict[str, object]:
    return {"nodes": {"root": {"routerType": "Sequence", "steps": [
        {"serviceUrl": url_first},
        {"serviceUrl": url_echo, "data": "$response", "mapPredictionsToInstances": True},
    ]}}}


async def case_backend(conn: Conn) -> None:
    """``/first/<n>`` answers case n's document; ``/echo`` answers what it received."""
    while (req := await conn.request()) is not None:
        if req.path.startswith("/first/"):
            await conn.answer(200, PREDICTIONS[int(req.path.rsplit("/", 1)[1])][0].encode())
        else:
            await conn.answer(200, req.body)


@pytest.mark.parametrize(("index", "case"), list(enumerate(PREDICTIONS)))
async def test_map_predictions_reads_the_key_as_go(index: int, case: tuple[str, str]) -> None:
    with raw_backend(case_backend) as b:
        async with GraphRouter.from_spec(two_steps(b.url(f"/first/{index}"), b.url("/echo"))) as router:
            res = await router.infer({})
    assert res.status == 200
    assert orjson.loads(res.body) == orjson.loads(case[1])


@pytest.mark.skipif(not KSERVE_ROUTER.exists(), reason="KServe's router binary is not available")
def test_the_cases_are_what_kserve_answers(tmp_path: Path) -> None:
    with raw_backend(case_backend) as b:
        for index, (_, expected) in enumerate(PREDICTIONS):
            got = kserve_answer(two_steps(b.url(f"/first/{index}"), b.url("/echo")))
            assert orjson.loads(got) == orjson.loads(expected), (index, got)


def kserve_answer(spec: dict[str, object]) -> bytes:
    port = free_port()
    env = {**os.environ, "ORACLE_LISTEN_ADDR": f"127.0.0.1:{port}"}
    assert shutil.which(str(KSERVE_ROUTER))
    proc = subprocess.Popen([str(KSERVE_ROUTER), "--graph-json", orjson.dumps(spec).decode()], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=b"{}", method="POST")
                with urllib.request.urlopen(req, timeout=5) as resp:
                    return bytes(resp.read())
            except OSError:
                time.sleep(0.05)
        raise AssertionError("KServe's router did not answer")
    finally:
        proc.kill()
        proc.wait(10)
