"""The failure matrix's gRPC column: each failure, the HTTP status it gives and the gRPC code."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import orjson
import pytest

from graph_router.api import GraphRouter
from graph_router.grpc.server import GrpcLimits

from ..support.ports import refused_port, release
from .fixtures import GrpcModels, StartFront, fp32_request, grpc
from .test_grpc_front import error_of, seq


async def http_post(base: str, body: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.post(base, data=orjson.dumps(body)) as r:
        return r.status, orjson.loads(await r.read())


V2 = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}


async def test_backend_down(grpc_front: StartFront, app_server: Any) -> None:
    url = f"grpc://127.0.0.1:{refused_port()}/m"
    front = await grpc_front(GraphRouter.from_spec(seq({"serviceUrl": url}), default_retry=False))
    code, details = await error_of(front.stub.ModelInfer(fp32_request("graph", [1.0])))
    assert code == grpc.StatusCode.UNAVAILABLE
    assert details.startswith(f"ModelInfer {url}: ")
    # over HTTP the same graph answers KServe's 500 with the same cause
    base = await app_server(GraphRouter.from_spec(seq({"serviceUrl": url}), default_retry=False))
    status, body = await http_post(base, V2)
    assert status == 500 and body["cause"].startswith(f"ModelInfer {url}: ")


async def test_backend_down_then_up_is_retried_by_default(grpc_front: StartFront) -> None:
    """A gRPC step refusing connections (a backend scaled to zero) is retried as an HTTP one is."""
    from .fixtures import _Servicer, echo, pb_grpc

    port = refused_port()
    front = await grpc_front(GraphRouter.from_spec(seq({"serviceUrl": f"grpc://127.0.0.1:{port}/echo"})))
    call = asyncio.ensure_future(front.stub.ModelInfer(fp32_request("graph", [2.0]), timeout=20))
    await asyncio.sleep(0.5)
    assert not call.done()
    state = GrpcModels(port=port, models={"echo": echo})
    server = grpc.aio.server()
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(_Servicer(state), server)
    release(port)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        out = await asyncio.wait_for(call, 15)
        assert list(out.outputs[0].contents.fp32_contents) == [2.0]
    finally:
        await server.stop(None)


async def test_client_deadline_is_the_request_deadline(grpc_front: StartFront, grpc_models: GrpcModels) -> None:
    front = await grpc_front(GraphRouter.from_spec(seq({"serviceUrl": grpc_models.url("slow")})))
    start = time.monotonic()
    code, details = await error_of(front.stub.ModelInfer(fp32_request("graph", [1.0]), timeout=0.5))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    # the router's own answer (naming the step), unless grpc-core's timer fired first
    assert details in ("the caller's deadline exceeded while node 'root' step '0' was running", "Deadline Exceeded")
    assert time.monotonic() - start < 3  # the slow model takes 5 s
    # the router stopped the step's call too (the model saw it cancelled)
    for _ in range(100):
        if grpc_models.cancelled:
            break
        await asyncio.sleep(0.02)
    assert grpc_models.cancelled == ["slow"]


async def test_deadline_answer_names_the_step(grpc_front: StartFront, grpc_models: GrpcModels) -> None:
    front = await grpc_front(GraphRouter.from_spec(seq({"serviceUrl": grpc_models.url("slow")}, timeout=1)))
    code, details = await error_of(front.stub.ModelInfer(fp32_request("graph", [1.0])))
    assert (code, details) == (grpc.StatusCode.DEADLINE_EXCEEDED,
                               "graph timeout of 1.0s exceeded while node 'root' step '0' was running")
    code, details = await error_of(front.stub.ModelInfer(fp32_request("graph", [1.0]), timeout=0.4))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_step_client_timeout(grpc_front: StartFront, grpc_models: GrpcModels) -> None:
    spec = seq({"serviceUrl": grpc_models.url("slow")}, routerTimeouts={"serviceClient": 1})
    front = await grpc_front(GraphRouter.from_spec(spec))
    code, details = await error_of(front.stub.ModelInfer(fp32_request("graph", [1.0])))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert details.startswith(f"ModelInfer {grpc_models.url('slow')}: client timeout exceeded")


async def test_bad_message_from_the_client(grpc_front: StartFront, grpc_models: GrpcModels) -> None:
    front = await grpc_front(GraphRouter.from_spec(seq({"serviceUrl": grpc_models.url("echo")})))
    req = fp32_request("graph", [1.0, 2.0])
    req.inputs[0].shape[:] = [3]
    code, details = await error_of(front.stub.ModelInfer(req))
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT,
                               "inputs[0]: shape [3] needs 3 elements; the contents hold 2")
    assert "echo" not in grpc_models.seen


async def test_bad_message_for_a_grpc_step(app_server: Any, grpc_models: GrpcModels) -> None:
    """A v1 body cannot become a ModelInferRequest: 400 naming the step, before any call."""
    base = await app_server(GraphRouter.from_spec(seq({"serviceUrl": grpc_models.url("echo")})))
    status, body = await http_post(base, {"instances": [1, 2]})
    assert status == 400
    assert body["cause"] == (f"cannot send to {grpc_models.url('echo')}: the step's input has no 'inputs' array "
                             "(got null); a gRPC step takes an Open Inference Protocol v2 request")
    assert "echo" not in grpc_models.seen


@pytest.mark.parametrize(("model", "status", "code", "message"), [
    ("bad", 400, grpc.StatusCode.INVALID_ARGUMENT, "input 'x' has the wrong shape"),
    ("nope", 404, grpc.StatusCode.NOT_FOUND, "Model with name nope does not exist."),
    ("broken", 500, grpc.StatusCode.INTERNAL, "model crashed"),
    ("loading", 503, grpc.StatusCode.UNAVAILABLE, "Model loading is not ready."),
])
async def test_a_grpc_step_error_status(grpc_front: StartFront, app_server: Any, grpc_models: GrpcModels,
                                        model: str, status: int, code: Any, message: str) -> None:
    from .fixtures import failing

    grpc_models.models["broken"] = failing(grpc.StatusCode.INTERNAL, "model crashed")
    grpc_models.models["loading"] = failing(grpc.StatusCode.UNAVAILABLE, "Model loading is not ready.")
    spec = seq({"serviceUrl": grpc_models.url(model)})
    front = await grpc_front(GraphRouter.from_spec(spec, default_retry=False))
    assert await error_of(front.stub.ModelInfer(fp32_request("graph", [1.0]))) == (code, message)
    base = await app_server(GraphRouter.from_spec(spec, default_retry=False))
    got_status, body = await http_post(base, V2)
    assert (got_status, body["error"]) == (status, message)


async def test_oversized_message(grpc_front: StartFront, grpc_models: GrpcModels) -> None:
    front = await grpc_front(GraphRouter.from_spec(seq({"serviceUrl": grpc_models.url("echo")})),
                             limits=GrpcLimits(max_receive_bytes=4096))
    code, details = await error_of(front.stub.ModelInfer(fp32_request("graph", [1.0] * 2000)))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in details
    assert "echo" not in grpc_models.seen
    out = await front.stub.ModelInfer(fp32_request("graph", [1.0] * 100))
    assert len(out.outputs[0].contents.fp32_contents) == 100


async def test_oversized_step_answer(grpc_front: StartFront, grpc_models: GrpcModels) -> None:
    router = GraphRouter.from_spec(seq({"serviceUrl": grpc_models.url("echo")}), max_response_bytes=4096)
    front = await grpc_front(router)
    code, details = await error_of(front.stub.ModelInfer(fp32_request("graph", [1.0] * 2000)))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details.startswith(f"ModelInfer {grpc_models.url('echo')}: ") and "larger than max" in details


async def test_client_cancel_cancels_the_step(grpc_front: StartFront, grpc_models: GrpcModels) -> None:
    front = await grpc_front(GraphRouter.from_spec(seq({"serviceUrl": grpc_models.url("slow")})))
    call = front.stub.ModelInfer(fp32_request("graph", [1.0]))
    for _ in range(100):
        if "slow" in grpc_models.seen:
            break
        await asyncio.sleep(0.02)
    assert call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert await call.code() == grpc.StatusCode.CANCELLED
    for _ in range(100):
        if grpc_models.cancelled:
            break
        await asyncio.sleep(0.02)
    assert grpc_models.cancelled == ["slow"]


async def test_step_timeout(grpc_front: StartFront, grpc_models: GrpcModels) -> None:
    front = await grpc_front(GraphRouter.from_spec(seq({"serviceUrl": grpc_models.url("slow"), "timeout": 0.3})))
    code, details = await error_of(front.stub.ModelInfer(fp32_request("graph", [1.0])))
    assert (code, details) == (grpc.StatusCode.DEADLINE_EXCEEDED,
                               f"step timeout of 0.3s exceeded calling {grpc_models.url('slow')}")


async def test_nested_switch_without_a_match_is_internal(grpc_front: StartFront, grpc_models: GrpcModels) -> None:
    spec = {"nodes": {
        "root": {"routerType": "Sequence", "steps": [{"nodeName": "pick"}]},
        "pick": {"routerType": "Switch", "steps": [
            {"serviceUrl": grpc_models.url("echo"), "condition": 'inputs.0.name == "never"'}]}}}
    front = await grpc_front(GraphRouter.from_spec(spec))
    code, details = await error_of(front.stub.ModelInfer(fp32_request("graph", [1.0])))
    assert (code, details) == (grpc.StatusCode.INTERNAL, "None of the routes matched with the switch condition")


async def test_a_graph_answer_that_is_not_v2(grpc_front: StartFront, aiohttp_server: Any) -> None:
    from aiohttp import web

    async def v1(request: web.Request) -> web.Response:
        return web.json_response({"predictions": [1]})

    app = web.Application()
    app.router.add_post("/v1/models/m:predict", v1)
    server = await aiohttp_server(app)
    front = await grpc_front(GraphRouter.from_spec(seq({"serviceUrl": f"http://127.0.0.1:{server.port}/v1/models/m:predict"})))
    code, details = await error_of(front.stub.ModelInfer(fp32_request("graph", [1.0])))
    assert code == grpc.StatusCode.INTERNAL
    assert details.startswith("the graph's answer has no 'outputs' array (keys: predictions)")
