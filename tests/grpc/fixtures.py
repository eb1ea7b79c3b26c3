"""gRPC fixtures and helpers: scriptable Open Inference Protocol models on a real grpc.aio server, and the
router's gRPC front (beside its HTTP server) on 127.0.0.1. Imported by conftest.py only when grpc is installed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from graph_router.grpc.proto import grpc_predict_v2_pb2 as pb
from graph_router.grpc.proto import grpc_predict_v2_pb2_grpc as pb_grpc

#: A model: (request, metadata dict) -> response, or raises ModelError / sleeps.
ModelFn = Callable[[Any, dict[str, str]], Awaitable[Any]]


class ModelError(Exception):
    def __init__(self, code: Any, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


@dataclass
class Seen:
    request: Any
    metadata: dict[str, str]


@dataclass
class GrpcModels:
    """A real gRPC server answering ModelInfer with Python functions; records what each model received."""

    port: int = 0
    models: dict[str, ModelFn] = field(default_factory=dict)
    seen: dict[str, list[Seen]] = field(default_factory=dict)
    cancelled: list[str] = field(default_factory=list)

    def url(self, model: str) -> str:
        return f"grpc://127.0.0.1:{self.port}/{model}"


class _Servicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, state: GrpcModels) -> None:
        self.state = state

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        fn = self.state.models.get(request.model_name)
        if fn is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"Model with name {request.model_name} does not exist.")
        md = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        self.state.seen.setdefault(request.model_name, []).append(Seen(request, md))
        try:
            return await fn(request, md)
        except ModelError as err:
            await context.abort(err.code, err.details)
        except asyncio.CancelledError:
            self.state.cancelled.append(request.model_name)
            raise


async def echo(request: Any, md: dict[str, str]) -> Any:
    """Every input back as an output (contents or raw contents as received)."""
    resp = pb.ModelInferResponse(model_name=request.model_name, id=request.id)
    for k, v in request.parameters.items():
        resp.parameters[k].CopyFrom(v)
    for t in request.inputs:
        o = resp.outputs.add(name=t.name, datatype=t.datatype, shape=t.shape)
        if t.HasField("contents"):
            o.contents.CopyFrom(t.contents)
    resp.raw_output_contents.extend(request.raw_input_contents)
    return resp


def scale(factor: float) -> ModelFn:
    """FP32 input -> output ``y`` = input * factor (typed contents), plus a ``label`` INT64 [1]: 1 if sum > 10."""

    async def fn(request: Any, md: dict[str, str]) -> Any:
        t = request.inputs[0]
        ys = [v * factor for v in t.contents.fp32_contents]
        resp = pb.ModelInferResponse(model_name=request.model_name, id=request.id)
        resp.outputs.add(name="y", datatype="FP32", shape=t.shape).contents.fp32_contents.extend(ys)
        resp.outputs.add(name="label", datatype="INT64", shape=[1]).contents.int64_contents.append(
            1 if sum(ys) > 10 else 0)
        return resp

    return fn


def sleeper(seconds: float) -> ModelFn:
    async def fn(request: Any, md: dict[str, str]) -> Any:
        await asyncio.sleep(seconds)
        return await echo(request, md)

    return fn


def failing(code: Any, details: str) -> ModelFn:
    async def fn(request: Any, md: dict[str, str]) -> Any:
        raise ModelError(code, details)

    return fn


@pytest.fixture
async def grpc_models() -> AsyncIterator[GrpcModels]:
    state = GrpcModels(models={"echo": echo, "double": scale(2.0), "triple": scale(3.0), "slow": sleeper(5.0),
                               "bad": failing(grpc.StatusCode.INVALID_ARGUMENT, "input 'x' has the wrong shape")})
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(_Servicer(state), server)
    state.port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield state
    await server.stop(None)


@dataclass
class Front:
    http: str
    grpc_target: str
    app: Any
    channel: Any

    @property
    def stub(self) -> Any:
        return pb_grpc.GRPCInferenceServiceStub(self.channel)


StartFront = Callable[..., Awaitable[Front]]


@contextlib.asynccontextmanager
async def serving_fronts() -> AsyncIterator[StartFront]:
    """``await start(router, auth_token=..., telemetry=..., limits=GrpcLimits(...))``: the router served over
    HTTP and gRPC on 127.0.0.1; returns the addresses and a channel to the gRPC front. All closed at exit."""
    from graph_router.app import RouterApp, error_response
    from graph_router.grpc.server import start_grpc
    from graph_router.http.messages import ServerLimits
    from graph_router.http.server import start_server

    started: list[tuple[Any, Any, Any, Any]] = []

    async def start(router: Any, *, auth_token: str | None = None, telemetry: Any = None, limits: Any = None,
                    access_log: Any = None) -> Front:
        app = RouterApp(router, auth_token=auth_token, telemetry=telemetry, access_log=access_log)
        http = await start_server(app.handle, host="127.0.0.1", port=0, limits=ServerLimits(),
                                  on_error=error_response)
        front = await start_grpc(app, host="127.0.0.1", port=0, limits=limits, reuse_port=False)
        app.health.ready = True
        await front.set_serving(True)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{front.port}")
        started.append((http, front, router, channel))
        return Front(f"http://127.0.0.1:{http.port}", f"127.0.0.1:{front.port}", app, channel)

    try:
        yield start
    finally:
        for http, front, router, channel in started:
            await channel.close()
            await front.stop(None)
            await http.close()
            await router.aclose()


@pytest.fixture
async def grpc_front() -> AsyncIterator[StartFront]:
    async with serving_fronts() as start:
        yield start


def fp32_request(model: str, values: list[float], *, name: str = "x", raw: bool = False) -> Any:
    import struct

    req = pb.ModelInferRequest(model_name=model, id="req-1")
    t = req.inputs.add(name=name, datatype="FP32", shape=[1, len(values)])
    if raw:
        req.raw_input_contents.append(struct.pack(f"<{len(values)}f", *values))
    else:
        t.contents.fp32_contents.extend(values)
    return req
