"""The model host's gRPC endpoint and the grpc-chain example: HTTP in, both steps over gRPC."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from graph_router import GraphRouter
from graph_router.modelhost import ModelHost, example_models
from graph_router.modelhost.quickstart import Grpc, grpc_services, model_host_argv, router_argv

from .fixtures import grpc, pb, pb_grpc
from .test_grpc_front import error_of

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "graphs" / "grpc-chain"
PROBABILITIES = [0.9650999903678894, 0.0348999984562397, 0.0, 0.00039999998989515007, 0.030799999833106995,
                 0.9688000082969666]


@pytest.fixture
async def host() -> Any:
    async with ModelHost(example_models(["v2-scaler", "v2-classifier", "sklearn-iris"]), grpc_port=0) as h:
        yield h


async def test_grpc_chain_example(host: ModelHost) -> None:
    services = {n: host.grpc_url_for(n) for n in ("v2-scaler", "v2-classifier")}
    body = orjson.loads((EXAMPLE / "request.json").read_bytes())
    async with GraphRouter.from_file(EXAMPLE / "graph.yaml", services=services) as router:
        result = await router.infer(body)
    assert result.status == 200, result.body
    assert result.json() == {"model_name": "v2-classifier", "model_version": "1", "id": "req-1", "outputs": [
        {"name": "label", "shape": [2], "datatype": "INT64", "data": [0, 2]},
        {"name": "probabilities", "shape": [2, 3], "datatype": "FP32", "data": PROBABILITIES}]}
    # both models were called over gRPC; the classifier got the scaler's outputs (FP32 values) as inputs
    assert [r.model for r in host.requests] == ["v2-scaler", "v2-classifier"]
    sent = host.received("v2-classifier")[0]
    assert sent["id"] == "req-1" and sent["parameters"] == {"trace": "demo", "scaler": "standard"}
    assert [(t["name"], t["datatype"], t["shape"]) for t in sent["inputs"]] == [("scaled", "FP32", [2, 4])]


async def test_model_host_grpc_endpoint(host: ModelHost) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{host.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        assert (await stub.ServerReady(pb.ServerReadyRequest())).ready is True
        assert (await stub.ModelReady(pb.ModelReadyRequest(name="v2-scaler"))).ready is True
        meta = await stub.ModelMetadata(pb.ModelMetadataRequest(name="v2-classifier"))
        assert meta.name == "v2-classifier" and [t.name for t in meta.inputs]
        code, details = await error_of(stub.ModelInfer(pb.ModelInferRequest(model_name="nope")))
        assert (code, details) == (grpc.StatusCode.NOT_FOUND, "Model with name nope does not exist.")
        # a v1-only model has no v2 (so no gRPC) endpoint
        code, _ = await error_of(stub.ModelInfer(pb.ModelInferRequest(model_name="sklearn-iris")))
        assert code == grpc.StatusCode.NOT_FOUND
        bad = pb.ModelInferRequest(model_name="v2-scaler")
        bad.inputs.add(name="features", datatype="FP32", shape=[1, 3]).contents.fp32_contents.extend([1, 2, 3])
        code, details = await error_of(stub.ModelInfer(bad))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and details
    with pytest.raises(KeyError, match="no v2 model named 'sklearn-iris'"):
        host.grpc_url_for("sklearn-iris")


def test_quickstart_calls_the_example_over_grpc() -> None:
    grpc_cfg = Grpc(grpc_services(EXAMPLE), 8081, 9001)
    assert grpc_cfg.services == {"v2-scaler", "v2-classifier"}
    assert model_host_argv(["v2-scaler", "v2-classifier"], 9000, grpc_cfg) == [
        sys.executable, "-m", "graph_router.modelhost", "serve", "--port", "9000", "--models",
        "v2-scaler,v2-classifier", "--grpc-port", "9001"]
    argv = router_argv(EXAMPLE / "graph.yaml", ["v2-scaler", "v2-classifier"], 8080, 9000, grpc_cfg)
    assert argv[argv.index("--grpc-port") + 1] == "8081"
    assert "v2-scaler=grpc://127.0.0.1:9001/v2-scaler" in argv
    assert "v2-classifier=grpc://127.0.0.1:9001/v2-classifier" in argv
    assert grpc_services(ROOT / "graphs" / "v2-chain") == set()


def test_the_image_installs_the_grpc_extra() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "'.[fast,grpc]'" in text and "EXPOSE 8080 8081" in text


def test_grpc_bench_runs_every_phase() -> None:
    """benchmarks/grpc_bench.py, tiny: direct, 1 hop and Sequence of 3 complete without errors (no timing asserted)."""
    import re
    import subprocess

    done = subprocess.run([sys.executable, "benchmarks/grpc_bench.py", "--requests", "100", "--warmup", "20",
                           "--concurrency", "4", "--max-seconds", "5"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = re.findall(r"^  (direct|1 hop|Sequence of 3)\s+(\d+)\s+(\d+)\s", done.stdout, re.M)
    assert [(name, int(n), int(err)) for name, n, err in rows] == [
        ("direct", 100, 0), ("1 hop", 100, 0), ("Sequence of 3", 100, 0)]


async def test_quickstart_grpc_chain_process() -> None:
    """`graph-router quickstart grpc-chain`: one command; HTTP in and gRPC in both answer; Ctrl-C stops all."""
    import asyncio
    import signal

    import aiohttp

    from graph_router.grpc.convert import request_from_json, response_to_json

    from ..support.ports import free_port, free_port_pair
    from ..support.quickstart import start_quickstart, stop_quickstart

    port, grpc_port, models_port = free_port(), free_port(), free_port_pair()
    proc, lines = await start_quickstart("grpc-chain", "--port", str(port), "--models-port", str(models_port),
                                         "--grpc-port", str(grpc_port))
    try:
        assert any(f"--service v2-scaler=grpc://127.0.0.1:{models_port + 1}/v2-scaler" in line for line in lines)
        body = (EXAMPLE / "request.json").read_bytes()
        async with aiohttp.ClientSession() as http, http.post(f"http://127.0.0.1:{port}/", data=body) as r:
            assert r.status == 200
            over_http = await r.json()
        assert over_http["outputs"][1]["data"] == PROBABILITIES
        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            out = await pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
                request_from_json(body, "grpc-chain"), timeout=10)
        assert orjson.loads(response_to_json(out)) == over_http
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        await stop_quickstart(proc)
