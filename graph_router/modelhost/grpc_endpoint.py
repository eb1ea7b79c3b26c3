"""The model host's gRPC endpoint: its v2 models over the Open Inference Protocol's gRPC API.

Requests are converted to the v2 JSON form and answered by the same code as over HTTP, so a model
answers the same tensors either way; errors get the codes KServe's model server uses.
"""

from __future__ import annotations

from typing import Any, Protocol

import grpc
import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from ..grpc.convert import ConversionError, request_to_json, response_from_json
from ..grpc.proto import grpc_predict_v2_pb2 as _pb2
from ..grpc.proto.grpc_predict_v2_pb2_grpc import (
    GRPCInferenceServiceServicer,
    add_GRPCInferenceServiceServicer_to_server,
)
from .model import InvalidInput, Model
from .received import Received, v2_answer

pb: Any = _pb2  # generated, untyped


class HostModels(Protocol):
    """What the endpoint uses of its host (``host.ModelHost``): the models, and where requests are recorded."""

    models: dict[str, Model]
    requests: list[Received]


class _Servicer(GRPCInferenceServiceServicer):
    def __init__(self, host: HostModels) -> None:
        self.host = host

    async def _model(self, name: str, context: Any, *, ready: bool = True) -> Model:
        model = self.host.models.get(name)
        if model is None or not model.supports_v2:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"Model with name {name} does not exist.")
        assert model is not None
        if ready and not model.ready:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"Model with name {name} is not ready.")
        return model

    async def ServerLive(self, request: Any, context: Any) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=all(m.ready for m in self.host.models.values()))

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        return pb.ServerMetadataResponse(name="graph-router-modelhost", version="1")

    async def ModelReady(self, request: Any, context: Any) -> Any:
        model = await self._model(request.name, context, ready=False)
        return pb.ModelReadyResponse(ready=model.ready)

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        meta = (await self._model(request.name, context, ready=False)).metadata()
        resp = pb.ModelMetadataResponse(name=meta["name"], versions=meta.get("versions", []),
                                        platform=meta.get("platform", ""))
        for key in ("inputs", "outputs"):
            for t in meta.get(key, []):
                getattr(resp, key).add(name=t["name"], datatype=t["datatype"], shape=t["shape"])
        return resp

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        model = await self._model(request.model_name, context)
        try:
            body = request_to_json(request)
        except ConversionError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        headers = CIMultiDictProxy(CIMultiDict((k, v) for k, v in context.invocation_metadata() if isinstance(v, str)))
        self.host.requests.append(Received(model.served_name, "v2", headers, body))
        try:
            answer = v2_answer(model, orjson.loads(body))
        except InvalidInput as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Exception as exc:  # a model bug reaches the caller as INTERNAL, as KServe's server does
            await context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")
        return response_from_json(orjson.dumps(answer), model=model.served_name,
                                  raw=bool(request.raw_input_contents))


class GrpcEndpoint:
    def __init__(self, server: grpc.aio.Server, port: int) -> None:
        self.server = server
        self.port = port

    async def stop(self) -> None:
        await self.server.stop(None)


async def start_grpc_endpoint(host: HostModels, address: str, port: int) -> GrpcEndpoint:
    """Serve ``host``'s v2 models over gRPC on ``address:port``. Raises OSError if it cannot bind."""
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    add_GRPCInferenceServiceServicer_to_server(_Servicer(host), server)  # type: ignore[no-untyped-call]
    bound = server.add_insecure_port(f"[{address}]:{port}" if ":" in address else f"{address}:{port}")
    if bound == 0:
        raise OSError(f"gRPC: cannot listen on {address}:{port}")
    await server.start()
    return GrpcEndpoint(server, bound)
