"""gRPC with the real components: ``kserve.ModelServer`` models as gRPC steps, and the real
``kserve.InferenceGRPCClient`` and ``tritonclient.grpc`` calling the router's gRPC front."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest

from graph_router import GraphRouter

from ..support.ports import free_port
from ..support.router import ROOT, spawn
from .conftest import ModelServerProcess, import_kserve, serving

kserve = import_kserve()
grpc = pytest.importorskip("grpc", reason="needs the grpc extra: pip install -e '.[grpc]'")
from ..grpc.fixtures import StartFront, serving_fronts  # noqa: E402

pytestmark = pytest.mark.interop
HAS_TRITON = importlib.util.find_spec("tritonclient") is not None


@dataclass
class GrpcModelServer(ModelServerProcess):
    grpc_port: int = 0

    def grpc(self, model: str) -> str:
        return f"grpc://127.0.0.1:{self.grpc_port}/{model}"


@pytest.fixture(scope="module")
def kserve_grpc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrpcModelServer]:
    """``python -m tests.interop.kserve_grpc_models HTTP GRPC``: the interop models over REST and gRPC."""
    http_port, grpc_port = free_port(), free_port()
    log_path = tmp_path_factory.mktemp("kserve-grpc") / "model-server.log"
    proc = spawn([sys.executable, "-m", "tests.interop.kserve_grpc_models", str(http_port), str(grpc_port)],
                 log_path)
    with serving(GrpcModelServer(proc, http_port, log_path, grpc_port)) as ms:
        yield ms


@pytest.fixture
async def grpc_front() -> AsyncIterator[StartFront]:
    async with serving_fronts() as start:
        yield start


def seq(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"nodes": {"root": {"routerType": "Sequence", "steps": list(steps)}}}


def chain(first: str, second: str) -> dict[str, Any]:
    return seq({"serviceUrl": first}, {"serviceUrl": second, "data": "$response", "mapOutputsToInputs": True})


RAW = {"id": "c-1", "inputs": [{"name": "raw", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 30, 4.5]}]}


async def post(base: str, body: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.post(base, data=orjson.dumps(body)) as r:
        return r.status, orjson.loads(await r.read())


def outputs_of(doc: dict[str, Any]) -> list[tuple[str, str, list[int], list[Any]]]:
    return [(o["name"], o["datatype"], o["shape"], o["data"]) for o in doc["outputs"]]


async def test_grpc_steps_answer_as_http_steps(app_server: Any, kserve_grpc: GrpcModelServer) -> None:
    """HTTP in: the same v2 chain with its steps over gRPC or over REST gives the same tensors."""
    ms = kserve_grpc
    base_grpc = await app_server(GraphRouter.from_spec(chain(ms.grpc("scaler"), ms.grpc("classifier"))))
    base_http = await app_server(GraphRouter.from_spec(chain(ms.v2("scaler"), ms.v2("classifier"))))
    status, over_grpc = await post(base_grpc, RAW)
    assert status == 200, over_grpc
    status, over_http = await post(base_http, RAW)
    assert status == 200, over_http
    assert outputs_of(over_grpc) == outputs_of(over_http) == [
        ("label", "INT64", [2], [0, 1]), ("total", "FP32", [2], [1.5, 17.25])]
    assert over_grpc["id"] == over_http["id"] == "c-1"


async def test_kserve_grpc_client_through_the_router(grpc_front: StartFront, kserve_grpc: GrpcModelServer) -> None:
    front = await grpc_front(GraphRouter.from_spec(chain(kserve_grpc.grpc("scaler"), kserve_grpc.grpc("classifier"))))
    client = kserve.InferenceGRPCClient(front.grpc_target, channel_args=[("grpc.enable_retries", 0)])
    try:
        raw = kserve.InferInput("raw", [2, 2], "FP32", data=[1.0, 2.0, 30.0, 4.5])
        res = await client.infer(kserve.InferRequest("v2-chain", infer_inputs=[raw], request_id="k-1"))
        assert res.id == "k-1"
        got = {o.name: (o.datatype, list(o.shape), list(o.as_numpy().reshape(-1).tolist())) for o in res.outputs}
        assert got == {"label": ("INT64", [2], [0, 1]), "total": ("FP32", [2], [1.5, 17.25])}
        ready = await client.is_model_ready("v2-chain")
        assert ready is True
    finally:
        await client.close()


async def test_switch_on_an_output_tensor_of_a_kserve_grpc_step(grpc_front: StartFront,
                                                              kserve_grpc: GrpcModelServer) -> None:
    high, low = 'inputs.#(name=="label").data.#(==1)', 'inputs.#(name=="label").data.#(==0)'
    spec = {"nodes": {
        "root": {"routerType": "Sequence", "steps": [
            {"serviceUrl": kserve_grpc.grpc("classifier")},
            {"nodeName": "pick", "data": "$response", "mapOutputsToInputs": True}]},
        "pick": {"routerType": "Switch", "steps": [
            {"name": "high", "serviceUrl": kserve_grpc.grpc("echo"), "condition": high},
            {"name": "low", "serviceUrl": kserve_grpc.v2("echo"), "condition": low},
        ]}}}
    front = await grpc_front(GraphRouter.from_spec(spec))
    client = kserve.InferenceGRPCClient(front.grpc_target, channel_args=[("grpc.enable_retries", 0)])
    try:
        for row in ([20.0, 1.0], [2.0, 1.0]):
            feats = kserve.InferInput("features", [1, 2], "FP32", data=row)
            res = await client.infer(kserve.InferRequest("g", infer_inputs=[feats], request_id="s-1"))
            assert {o.name: o.as_numpy().reshape(-1).tolist() for o in res.outputs} == {
                "label": [1 if sum(row) > 10 else 0], "total": [sum(row)]}
    finally:
        await client.close()
    # which branch ran: the route travels in the trailing metadata
    for row, branch in (([20.0, 1.0], f"pick>high:{kserve_grpc.grpc('echo')}"),
                        ([2.0, 1.0], f"pick>low:{kserve_grpc.v2('echo')}")):
        call = front.stub.ModelInfer(_fp32("g", "features", [1, 2], row))
        await call
        assert (await call.trailing_metadata())["x-graph-route"].endswith(branch)


def _fp32(model: str, name: str, shape: list[int], data: list[float]) -> Any:
    from ..grpc.fixtures import pb

    req = pb.ModelInferRequest(model_name=model)
    req.inputs.add(name=name, datatype="FP32", shape=shape).contents.fp32_contents.extend(data)
    return req


TENSORS = [
    {"name": "f", "datatype": "FP32", "shape": [2, 2], "data": [1.5, -0.25, 3.4028234663852886e38, 0.0]},
    {"name": "i", "datatype": "INT64", "shape": [3], "data": [-(2**63), 2**53 + 1, 2**63 - 1]},
    {"name": "s", "datatype": "BYTES", "shape": [2], "data": ["héllo", ""]},
]


@pytest.mark.parametrize("step", ["grpc", "http"])
async def test_kserve_client_typed_contents_round_trip(grpc_front: StartFront, kserve_grpc: GrpcModelServer,
                                                       step: str) -> None:
    """gRPC in -> echo over gRPC or REST -> gRPC out: FP32, INT64 and BYTES come back exactly."""
    url = kserve_grpc.grpc("echo") if step == "grpc" else kserve_grpc.v2("echo")
    front = await grpc_front(GraphRouter.from_spec(seq({"serviceUrl": url})))
    client = kserve.InferenceGRPCClient(front.grpc_target, channel_args=[("grpc.enable_retries", 0)])
    try:
        inputs = [kserve.InferInput(t["name"], t["shape"], t["datatype"], data=list(t["data"])) for t in TENSORS]
        res = await client.infer(kserve.InferRequest("g", infer_inputs=inputs, request_id="rt-1"))
        got = {o.name: (o.datatype, list(o.shape), [v.decode() if isinstance(v, bytes) else v for v in o.data])
               for o in res.outputs}
        assert got == {t["name"]: (t["datatype"], t["shape"], t["data"]) for t in TENSORS}
    finally:
        await client.close()


async def triton(target: str, model: str, tensors: list[dict[str, Any]], *token: str) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.interop.triton_grpc_client", target, model, *token, cwd=ROOT,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(orjson.dumps(tensors)), 60)
    assert proc.returncode == 0, err.decode()
    doc: dict[str, Any] = orjson.loads(out)
    return doc


@pytest.mark.skipif(not HAS_TRITON, reason="needs tritonclient[grpc] (the interop extra)")
@pytest.mark.parametrize("step", ["grpc", "http"])
async def test_tritonclient_raw_contents_round_trip(grpc_front: StartFront, kserve_grpc: GrpcModelServer,
                                                    step: str) -> None:
    """tritonclient sends raw contents; the answer comes back raw with the same values."""
    url = kserve_grpc.grpc("echo") if step == "grpc" else kserve_grpc.v2("echo")
    front = await grpc_front(GraphRouter.from_spec(seq({"serviceUrl": url})), auth_token="tok")
    got = await triton(front.grpc_target, "g", TENSORS, "tok")
    assert got["id"] == "triton-1" and got["raw"] == 3
    assert got["outputs"] == {t["name"]: {k: t[k] for k in ("datatype", "shape", "data")} for t in TENSORS}
    denied = await triton(front.grpc_target, "g", TENSORS, "wrong")
    assert denied["error"] == {"status": "StatusCode.UNAUTHENTICATED", "message": "invalid bearer token"}


@pytest.mark.skipif(not HAS_TRITON, reason="needs tritonclient[grpc] (the interop extra)")
async def test_tritonclient_sees_kserves_error_code(grpc_front: StartFront, kserve_grpc: GrpcModelServer) -> None:
    """A model's INVALID_ARGUMENT reaches the caller as INVALID_ARGUMENT with the model's message."""
    front = await grpc_front(GraphRouter.from_spec(seq({"serviceUrl": kserve_grpc.grpc("scaler")})))
    got = await triton(front.grpc_target, "g", [{"name": "wrong", "datatype": "FP32", "shape": [1], "data": [1.0]}])
    assert got["error"]["status"] == "StatusCode.INVALID_ARGUMENT"
    assert got["error"]["message"] == "scaler: expected an input named 'raw'"

