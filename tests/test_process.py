"""`graph-router serve` as a real process: drain on SIGTERM, reload on SIGHUP, workers, CLI exits."""

from __future__ import annotations

import asyncio
import gc
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from .conftest import ONE_STEP_GRAPH as GRAPH
from .conftest import ROOT, Backend, RouterProcess, reply


async def get(url: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, await r.read()


async def post(url: str, body: Any) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as s, s.post(url, json=body) as r:
        return r.status, await r.read()


async def test_drain_completes_in_flight_requests_and_turns_readyz_503(
        tmp_path: Path, backend_factory: Callable[[], Awaitable[Backend]],
        router_process: Callable[..., RouterProcess]) -> None:
    b = await backend_factory()
    b.default = reply(200, {"slow": True}, delay=1.5)
    f = tmp_path / "g.yaml"
    f.write_text(GRAPH)
    rp = router_process(str(f), "--service", f"a={b.predict_url('a')}", "--drain-seconds", "1")
    in_flight = [asyncio.create_task(post(rp.url, {"i": i})) for i in range(5)]
    await asyncio.sleep(0.3)
    rp.signal(signal.SIGTERM)
    await asyncio.sleep(0.2)
    status, body = await get(rp.url + "/readyz")
    assert (status, body) == (503, b"shutting down\n")
    during = await post(rp.url, {"late": 1})  # still served during the drain period
    results = await asyncio.gather(*in_flight)
    assert [s for s, _ in results] == [200] * 5 and during[0] == 200
    assert await asyncio.to_thread(rp.wait, 20) == 0
    assert len(b.seen) == 6


async def test_reload_keeps_serving_when_the_new_file_is_bad(
        tmp_path: Path, backend_factory: Callable[[], Awaitable[Backend]],
        router_process: Callable[..., RouterProcess]) -> None:
    a, c = await backend_factory(), await backend_factory()
    f = tmp_path / "g.yaml"
    f.write_text(GRAPH)
    rp = router_process(str(f), "--service", f"a={a.predict_url('a')}", "--service", f"c={c.predict_url('c')}",
                        "--drain-seconds", "0")
    f.write_text(GRAPH.replace("routerType: Sequence", "routerType: Sequense"))
    rp.signal(signal.SIGHUP)
    await asyncio.sleep(0.5)
    assert (await post(rp.url, {"x": 1}))[0] == 200 and len(a.seen) == 1
    assert "reload rejected" in rp.log() and "Sequense" in rp.log()
    f.write_text(GRAPH.replace("serviceName: a", "serviceName: c"))
    rp.signal(signal.SIGHUP)
    await asyncio.sleep(0.5)
    assert (await post(rp.url, {"x": 1}))[0] == 200
    assert len(c.seen) == 1 and len(a.seen) == 1
    rp.signal(signal.SIGTERM)
    assert await asyncio.to_thread(rp.wait, 20) == 0


async def test_watch_reloads_changed_files(tmp_path: Path, backend_factory: Callable[[], Awaitable[Backend]],
                                           router_process: Callable[..., RouterProcess]) -> None:
    a, c = await backend_factory(), await backend_factory()
    f = tmp_path / "g.yaml"
    f.write_text(GRAPH)
    rp = router_process(str(f), "--service", f"a={a.predict_url('a')}", "--service", f"c={c.predict_url('c')}",
                        "--watch", "0.2", "--drain-seconds", "0")
    await asyncio.sleep(0.05)
    f.write_text(GRAPH.replace("serviceName: a", "serviceName: c"))
    for _ in range(50):
        await post(rp.url, {"x": 1})
        if c.seen:
            break
        await asyncio.sleep(0.1)
    assert c.seen


async def test_two_workers_answer_on_the_port(tmp_path: Path, backend_factory: Callable[[], Awaitable[Backend]],
                                             router_process: Callable[..., RouterProcess]) -> None:
    b = await backend_factory()
    f = tmp_path / "g.yaml"
    f.write_text(GRAPH)
    rp = router_process(str(f), "--service", f"a={b.predict_url('a')}", "--workers", "2", "--drain-seconds", "0")
    statuses = [(await post(rp.url, {"i": i}))[0] for i in range(20)]
    assert statuses == [200] * 20
    await rp.logged("serving 1 graph", 2)  # the second worker may still be importing when the first answers
    rp.signal(signal.SIGTERM)
    assert await asyncio.to_thread(rp.wait, 20) == 0


async def test_graph_json_drop_in(backend_factory: Callable[[], Awaitable[Backend]],
                                  router_process: Callable[..., RouterProcess]) -> None:
    b = await backend_factory()
    spec = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": b.predict_url("x")}]}}}
    rp = router_process("--graph-json", orjson.dumps(spec).decode(), "--inferencegraph-name", "mine",
                        "--drain-seconds", "0")
    status, _ = await post(rp.url + "/whatever", {"instances": [1]})
    assert status == 200 and b.seen[0].path == "/v1/models/x:predict"


async def test_serve_freezes_start_up_objects_and_keeps_the_default_gc_thresholds(
        tmp_path: Path, backend_factory: Callable[[], Awaitable[Backend]],
        router_process: Callable[..., RouterProcess]) -> None:
    b = await backend_factory()
    graph = tmp_path / "g.yaml"
    graph.write_text(GRAPH)
    rp = router_process(str(graph), "--service", f"a={b.predict_url('a')}", "--log-level", "debug",
                        "--drain-seconds", "0")
    assert (await post(rp.url, {"instances": [1]}))[0] == 200
    line = next(x for x in rp.log().splitlines() if "start-up objects frozen" in x)
    frozen = int(line.split("gc: ", 1)[1].split()[0])
    # the interpreter's own thresholds, unchanged (a higher young-generation one let RSS grow under load)
    assert frozen > 10_000 and f"thresholds {gc.get_threshold()}" in line


def test_serve_refuses_a_bad_graph_with_exit_2(tmp_path: Path) -> None:
    f = tmp_path / "g.yaml"
    f.write_text(GRAPH.replace("serviceName: a", "serviceNme: a"))
    out = subprocess.run([sys.executable, "-m", "graph_router", "serve", str(f), "--port", "0"],
                         capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert out.returncode == 2
    assert "spec.nodes.root.steps[0].serviceNme: unknown field (did you mean 'serviceName'?)" in out.stderr
    assert "Traceback" not in out.stderr


async def test_one_access_log_line_per_request(tmp_path: Path, backend_factory: Callable[[], Awaitable[Backend]],
                                               router_process: Callable[..., RouterProcess]) -> None:
    b = await backend_factory()
    f = tmp_path / "g.yaml"
    f.write_text(GRAPH)
    rp = router_process(str(f), "--service", f"a={b.predict_url('a')}", "--drain-seconds", "0")
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with aiohttp.ClientSession() as s:
        for i in range(3):
            async with s.post(rp.url + f"/p{i}", json={"i": i}, headers={"traceparent": tp}) as r:
                assert r.status == 200
    rp.signal(signal.SIGTERM)
    assert await asyncio.to_thread(rp.wait, 20) == 0
    lines = [orjson.loads(ln) for ln in rp.log().splitlines() if ln.startswith('{"ts"') and '"access"' in ln]
    assert [(x["graph"], x["method"], x["path"], x["status"], x["route"]) for x in lines] == [
        ("g", "POST", f"/p{i}", 200, "root>0:a") for i in range(3)]
    assert all(x["trace_id"] == "0af7651916cd43dd8448eb211c80319c" and x["duration_ms"] > 0 for x in lines)


async def test_serve_the_examples_directory_with_two_workers(
        backend_factory: Callable[[], Awaitable[Backend]], router_process: Callable[..., RouterProcess]) -> None:
    from .test_graph_dirs import example_graph_names

    b = await backend_factory()
    b.default = reply(200, {"predictions": [1]})
    services = [f"--service={name}={b.predict_url(name)}" for name in ("preprocessor", "classifier", "postprocessor")]
    rp = router_process("graphs/", "--workers", "2", "--drain-seconds", "0", "--log-format", "text", *services)
    status, body = await get(rp.url + "/graphs")
    assert status == 200
    assert {g["name"] for g in orjson.loads(body)["graphs"]} == example_graph_names()
    status, body = await post(rp.url + "/graphs/sequential-pipeline", {"instances": [[1, 2]]})
    assert (status, orjson.loads(body)) == (200, {"predictions": [1]})
    predicts = [r.path for r in b.seen if r.path.endswith(":predict")]  # (the others are warm-up GETs)
    assert predicts == [f"/v1/models/{n}:predict" for n in ("preprocessor", "classifier", "postprocessor")]
    # (the second worker may still be importing when the first answers)
    log = await rp.logged(f"serving {len(example_graph_names())} graph(s)", 2)
    assert ("graph_router.loader: graphs/ensemble/deploy.yaml: skipped, not a graph spec (a mapping without "
            "kind: InferenceGraph or 'nodes')") in log
    rp.signal(signal.SIGINT)
    assert await asyncio.to_thread(rp.wait, 20) == 0
    log = rp.log()
    assert log.count("SIGINT received: draining") == 2 and "SIGTERM" not in log, log


async def test_ctrl_c_is_logged_as_sigint(tmp_path: Path, router_process: Callable[..., RouterProcess]) -> None:
    f = tmp_path / "g.yaml"
    f.write_text(GRAPH)
    rp = router_process(str(f), "--drain-seconds", "0", "--log-format", "text")
    rp.signal(signal.SIGINT)
    assert await asyncio.to_thread(rp.wait, 20) == 0
    log = rp.log()
    assert "INFO graph_router.process: SIGINT received: draining (readyz 503) for 0s" in log and "SIGTERM" not in log


async def test_kserve_auth_and_tls_flags_are_accepted_with_a_warning(
        tmp_path: Path, router_process: Callable[..., RouterProcess]) -> None:
    f = tmp_path / "g.yaml"
    f.write_text(GRAPH)
    rp = router_process(str(f), "--enable-auth", "--enable-tls", "--inferencegraph-name", "ignored",
                        "--drain-seconds", "0", "--log-format", "text")
    status, body = await get(rp.url + "/graphs")
    assert status == 200 and [g["name"] for g in orjson.loads(body)["graphs"]] == ["g"]
    rp.signal(signal.SIGTERM)
    assert await asyncio.to_thread(rp.wait, 20) == 0
    log = rp.log()
    assert ("WARNING graph_router.cli: --enable-auth (KServe's SubjectAccessReview auth) is not supported; "
            "use --auth-token-file for bearer-token auth") in log
    assert "WARNING graph_router.cli: --enable-tls is not supported; terminate TLS in the mesh or ingress" in log


async def test_ctrl_c_to_the_process_group_keeps_the_drain_with_workers(
        tmp_path: Path, router_process: Callable[..., RouterProcess]) -> None:
    import os
    import time

    f = tmp_path / "g.yaml"
    f.write_text(GRAPH)
    rp = router_process(str(f), "--workers", "2", "--drain-seconds", "2", "--log-format", "text")
    await rp.logged("serving 1 graph", 2)
    started = time.monotonic()
    os.killpg(rp.proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: supervisor and workers get it
    await asyncio.sleep(0.8)
    assert rp.proc.poll() is None and (await get(rp.url + "/readyz"))[0] == 503
    assert await asyncio.to_thread(rp.wait, 20) == 0
    log = rp.log()
    assert time.monotonic() - started >= 1.9, log
    assert log.count("SIGINT received: draining (readyz 503) for 2s") == 2 and "again" not in log, log


async def test_signals_while_workers_start_are_kept_for_when_they_serve(
        tmp_path: Path, router_process: Callable[..., RouterProcess]) -> None:
    """A SIGHUP and a SIGTERM that reach the workers before they serve (here while they import grpc) are
    a reload and a drain once they do: not a worker killed by SIGHUP's or SIGTERM's default action."""
    f = tmp_path / "g.yaml"
    f.write_text(GRAPH)
    rp = router_process(str(f), "--workers", "2", "--grpc-port", "0", "--drain-seconds", "0", "--log-format", "text",
                        ready=False)
    await rp.logged("starting 2 workers")
    rp.signal(signal.SIGHUP)
    rp.signal(signal.SIGTERM)
    assert await asyncio.to_thread(rp.wait, 20) == 0, rp.log()
    log = rp.log()
    assert log.count("reloaded 1 graph(s): g") == 2 and log.count("SIGTERM received: draining") == 2, log
    assert log.count("stopped cleanly") == 2 and log.count("exited with 0") == 2 and "failed" not in log, log
