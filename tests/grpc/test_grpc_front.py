"""The gRPC front and gRPC steps, in every mix with HTTP, against real servers on 127.0.0.1."""

from __future__ import annotations

import struct
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from graph_router.api import GraphRouter

from .fixtures import Front, GrpcModels, StartFront, fp32_request, grpc, pb


def seq(*steps: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"nodes": {"root": {"routerType": "Sequence", "steps": list(steps)}}, **spec}


async def infer(front: Front, req: Any, **kw: Any) -> Any:
    return await front.stub.ModelInfer(req, **kw)


async def error_of(awaitable: Any) -> tuple[Any, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await awaitable
    return info.value.code(), info.value.details()


# --- the service's other methods ----------------------------------------------------------------


async def test_health_metadata_and_readiness(grpc_front: StartFront, grpc_models: GrpcModels) -> None:
    router = GraphRouter.from_spec(seq({"serviceUrl": grpc_models.url("echo")}))
    front = await grpc_front(router)
    stub = front.stub
    assert (await stub.ServerLive(pb.ServerLiveRequest())).live is True
    assert (await stub.ServerReady(pb.ServerReadyRequest())).ready is True
    meta = await stub.ServerMetadata(pb.ServerMetadataRequest())
    assert meta.name == "graph-router" and meta.version
    # one graph loaded: any model name is that graph, as any path is over HTTP
    assert (await stub.ModelReady(pb.ModelReadyRequest(name="anything"))).ready is True
    md = await stub.ModelMetadata(pb.ModelMetadataRequest(name="graph"))
    assert (md.name, md.platform) == ("graph", "graph-router")
    front.app.health.draining = True
    assert (await stub.ServerReady(pb.ServerReadyRequest())).ready is False
    assert (await stub.ModelReady(pb.ModelReadyRequest(name="graph"))).ready is False


async def test_standard_health_and_reflection(grpc_front: StartFront, grpc_models: GrpcModels) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    front = await grpc_front(GraphRouter.from_spec(seq({"serviceUrl": grpc_models.url("echo")})))
    health = health_pb2_grpc.HealthStub(front.channel)
    for service in ("", "inference.GRPCInferenceService"):
        got = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert got.status == health_pb2.HealthCheckResponse.SERVING
    front_srv = front.app  # drain flips health to NOT_SERVING through GrpcFront.set_serving (see process tests)
    assert front_srv.health.ready
    refl = reflection_pb2_grpc.ServerReflectionStub(front.channel)

    async def ask(**kw: Any) -> Any:
        async for answer in refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(**kw)])):
            return answer
        raise AssertionError("no reflection answer")

    listed = await ask(list_services="")
    names = {s.name for s in listed.list_services_response.service}
    assert {"inference.GRPCInferenceService", "grpc.health.v1.Health"} <= names
    found = await ask(file_containing_symbol="inference.ModelInferRequest")
    assert found.file_descriptor_response.file_descriptor_proto


async def test_several_graphs_are_chosen_by_model_name(grpc_front: StartFront, grpc_models: GrpcModels) -> None:
    from graph_router.loader import load_graph_json

    docs = [load_graph_json(orjson.dumps(seq({"serviceUrl": grpc_models.url(m)})).decode(), name=n)
            for n, m in (("g-double", "double"), ("g-triple", "triple"))]
    front = await grpc_front(GraphRouter(docs))
    out = await infer(front, fp32_request("g-triple", [1.0, 2.0]))
    assert list(out.outputs[0].contents.fp32_contents) == [3.0, 6.0]
    assert out.model_name == "triple"  # the last step's answer, as over HTTP (KServe passes it through)
    code, details = await error_of(infer(front, fp32_request("nope", [1.0])))
    assert code == grpc.StatusCode.NOT_FOUND
    assert details == "graph 'nope' not found; known graphs: g-double, g-triple"
    code, details = await error_of(infer(front, fp32_request("", [1.0])))
    assert (code, details) == (grpc.StatusCode.NOT_FOUND,
                               "several graphs are loaded; set model_name to one of: g-double, g-triple")
    code, _ = await error_of(front.stub.ModelReady(pb.ModelReadyRequest(name="nope")))
    assert code == grpc.StatusCode.NOT_FOUND


# --- one graph, both protocols --------------------------------------------------------------------


async def test_grpc_in_grpc_steps_sequence(grpc_front: StartFront, grpc_models: GrpcModels) -> None:
    spec = seq({"serviceUrl": grpc_models.url("double")},
               {"serviceUrl": grpc_models.url("triple"), "data": "$response", "mapOutputsToInputs": True})
    front = await grpc_front(GraphRouter.from_spec(spec))
    call = front.stub.ModelInfer(fp32_request("graph", [1.0, 2.5]), metadata=(("x-request-id", "r-7"),))
    out = await call
    assert list(out.outputs[0].contents.fp32_contents) == [6.0, 15.0]
    assert (await call.trailing_metadata())["x-graph-route"] == (
        f"root>0:{grpc_models.url('double')},root>1:{grpc_models.url('triple')}")
    seen = grpc_models.seen["triple"][0].request
    # mapOutputsToInputs turned the first step's outputs into the second's inputs, over gRPC
    assert [(t.name, t.datatype, list(t.shape)) for t in seen.inputs] == [
        ("y", "FP32", [1, 2]), ("label", "INT64", [1])]
    assert seen.id == "req-1"


async def test_raw_contents_in_raw_contents_out(grpc_front: StartFront, grpc_models: GrpcModels) -> None:
    front = await grpc_front(GraphRouter.from_spec(seq({"serviceUrl": grpc_models.url("echo")})))
    req = pb.ModelInferRequest(model_name="graph")
    values = {"FP32": [1.5, -2.25], "INT64": [2**62, -5], "BYTES": ["a", "bé"]}
    for dt in values:
        req.inputs.add(name=dt.lower(), datatype=dt, shape=[2])
    req.raw_input_contents.extend([struct.pack("<2f", *values["FP32"]), struct.pack("<2q", *values["INT64"]),
                                   b"\x01\x00\x00\x00a\x03\x00\x00\x00b\xc3\xa9"])
    out = await infer(front, req)
    assert list(out.raw_output_contents) == list(req.raw_input_contents)
    assert [o.name for o in out.outputs] == ["fp32", "int64", "bytes"]
    # the step got typed contents (the router's choice for steps) with the same values
    step_req = grpc_models.seen["echo"][0].request
    assert list(step_req.inputs[1].contents.int64_contents) == values["INT64"]
    assert list(step_req.inputs[2].contents.bytes_contents) == [b"a", "bé".encode()]


async def test_http_in_grpc_step(app_server: Any, grpc_models: GrpcModels) -> None:
    base = await app_server(GraphRouter.from_spec(seq({"serviceUrl": grpc_models.url("double")})))
    body = {"id": "h1", "inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [[1.5, 4]]}]}
    async with aiohttp.ClientSession() as s, s.post(base, json=body, headers={"X-Tenant": "t1"}) as r:
        assert r.status == 200
        got = await r.json()
    assert got == {"model_name": "double", "id": "h1", "outputs": [
        {"name": "y", "shape": [1, 2], "datatype": "FP32", "data": [3.0, 8.0]},
        {"name": "label", "shape": [1], "datatype": "INT64", "data": [1]}]}  # 3 + 8 > 10
    assert list(grpc_models.seen["double"][0].request.inputs[0].contents.fp32_contents) == [1.5, 4.0]


async def test_grpc_in_http_step(grpc_front: StartFront, aiohttp_server: Any) -> None:
    received: list[Any] = []

    async def model(request: web.Request) -> web.Response:
        doc = await request.json()
        received.append((doc, request.headers.get("x-tenant"), request.headers.get("content-type")))
        t = doc["inputs"][0]
        return web.json_response({"model_name": "m", "id": doc.get("id"), "outputs": [
            {"name": "sum", "shape": [1], "datatype": "FP64", "data": [sum(t["data"])]}]})

    app = web.Application()
    app.router.add_post("/v2/models/m/infer", model)
    server = await aiohttp_server(app)
    url = f"http://127.0.0.1:{server.port}/v2/models/m/infer"
    router = GraphRouter.from_spec(seq({"serviceUrl": url}), propagate_headers=["X-Tenant"])
    front = await grpc_front(router)
    out = await infer(front, fp32_request("graph", [1.0, 2.0, 4.5]), metadata=(("x-tenant", "acme"),))
    assert (out.model_name, out.id) == ("m", "req-1")
    assert out.outputs[0].datatype == "FP64" and list(out.outputs[0].contents.fp64_contents) == [7.5]
    assert received == [({"id": "req-1", "inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32",
                                                     "data": [1.0, 2.0, 4.5]}]}, "acme", "application/json")]


async def test_switch_reads_an_output_tensor_of_a_grpc_step(grpc_front: StartFront, grpc_models: GrpcModels) -> None:
    # a Switch's conditions read the node's input: here the gRPC step's answer, in v2 JSON form
    spec = {"nodes": {
        "root": {"routerType": "Sequence", "steps": [
            {"serviceUrl": grpc_models.url("double")},
            {"nodeName": "pick", "data": "$response", "mapOutputsToInputs": True}]},
        "pick": {"routerType": "Switch", "steps": [
            {"serviceUrl": grpc_models.url("triple"), "condition": 'inputs.#(name=="label").data.#(==1)'},
            {"serviceUrl": grpc_models.url("echo"), "condition": 'inputs.#(name=="label").data.#(==0)'}]}}}
    front = await grpc_front(GraphRouter.from_spec(spec))
    high = await infer(front, fp32_request("graph", [4.0, 3.0]))  # doubled sum 14 > 10: label 1 -> triple
    assert list(high.outputs[0].contents.fp32_contents) == [24.0, 18.0]
    low = await infer(front, fp32_request("graph", [1.0, 1.0]))  # doubled sum 4: label 0 -> echo
    assert [o.name for o in low.outputs] == ["y", "label"]
    assert list(low.outputs[0].contents.fp32_contents) == [2.0, 2.0]
    assert len(grpc_models.seen["triple"]) == 1 and len(grpc_models.seen["echo"]) == 1


async def test_switch_without_a_match_is_not_found(grpc_front: StartFront, grpc_models: GrpcModels) -> None:
    spec = {"nodes": {"root": {"routerType": "Switch", "steps": [
        {"serviceUrl": grpc_models.url("echo"), "condition": 'inputs.0.name == "never"'}]}}}
    front = await grpc_front(GraphRouter.from_spec(spec))
    code, details = await error_of(infer(front, fp32_request("graph", [1.0])))
    assert (code, details) == (grpc.StatusCode.NOT_FOUND, "None of the routes matched with the switch condition")


# --- auth, limits, telemetry --------------------------------------------------------------------------


async def test_bearer_token_in_metadata(grpc_front: StartFront, grpc_models: GrpcModels) -> None:
    front = await grpc_front(GraphRouter.from_spec(seq({"serviceUrl": grpc_models.url("echo")})), auth_token="s3cret")
    code, details = await error_of(infer(front, fp32_request("graph", [1.0])))
    assert (code, details) == (grpc.StatusCode.UNAUTHENTICATED, "missing bearer token")
    code, details = await error_of(infer(front, fp32_request("graph", [1.0]),
                                         metadata=(("authorization", "Bearer nope"),)))
    assert (code, details) == (grpc.StatusCode.UNAUTHENTICATED, "invalid bearer token")
    code, _ = await error_of(front.stub.ModelMetadata(pb.ModelMetadataRequest(name="graph")))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    malformed = fp32_request("graph", [1.0])
    malformed.inputs[0].shape[:] = [5]
    code, details = await error_of(infer(front, malformed))  # auth comes before looking at the message
    assert (code, details) == (grpc.StatusCode.UNAUTHENTICATED, "missing bearer token")
    out = await infer(front, fp32_request("graph", [1.0]), metadata=(("authorization", "Bearer s3cret"),))
    assert list(out.outputs[0].contents.fp32_contents) == [1.0]
    assert "authorization" not in grpc_models.seen["echo"][0].metadata  # not propagated unless configured
    assert len(grpc_models.seen["echo"]) == 1


async def test_access_log_records_grpc_calls(grpc_front: StartFront, grpc_models: GrpcModels) -> None:
    import io

    from graph_router.accesslog import AccessLog

    stream = io.StringIO()
    log = AccessLog(stream)
    front = await grpc_front(GraphRouter.from_spec(seq({"serviceUrl": grpc_models.url("bad")})), access_log=log)
    code, details = await error_of(infer(front, fp32_request("graph", [1.0])))
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, "input 'x' has the wrong shape")
    log.close()
    entry = orjson.loads(stream.getvalue())
    assert {k: entry[k] for k in ("graph", "method", "path", "status", "route")} == {
        "graph": "graph", "method": "POST", "path": "/inference.GRPCInferenceService/ModelInfer", "status": 400,
        "route": f"root>0:{grpc_models.url('bad')}"}


async def test_a_message_refused_at_conversion_is_logged_once(grpc_front: StartFront,
                                                               grpc_models: GrpcModels) -> None:
    import io

    from graph_router.accesslog import AccessLog

    stream = io.StringIO()
    log = AccessLog(stream)
    front = await grpc_front(GraphRouter.from_spec(seq({"serviceUrl": grpc_models.url("echo")})), access_log=log)
    req = fp32_request("graph", [1.0, 2.0])
    req.inputs[0].shape[:] = [3]
    code, _ = await error_of(infer(front, req))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    log.close()
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["graph"], e["method"], e["path"], e["status"], e["reason"]) for e in lines] == [
        ("graph", "POST", "/inference.GRPCInferenceService/ModelInfer", 400, "bad_message")]
    assert "echo" not in grpc_models.seen
