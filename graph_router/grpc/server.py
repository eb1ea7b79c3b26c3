"""The gRPC front: ``inference.GRPCInferenceService`` on plaintext HTTP/2, beside the HTTP port.

``ModelInfer`` runs the graph named by ``model_name`` (with one graph loaded, any name runs it) through
the same :meth:`RouterApp.run_graph` as HTTP: bearer auth (``authorization`` metadata), telemetry,
access log and metrics apply alike, and the gRPC deadline is the request's deadline. The standard
``grpc.health.v1`` service and server reflection are served too.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from .. import __version__
from ..app import RouterApp
from ..http.messages import HttpRequest
from .convert import ConversionError, request_to_json, response_from_json
from .proto import grpc_predict_v2_pb2 as _pb2
from .proto.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceServicer, add_GRPCInferenceServiceServicer_to_server
from .status import code_for, message_of

pb: Any = _pb2  # generated, untyped
log = logging.getLogger("graph_router.grpc")
SERVICE = "inference.GRPCInferenceService"
INFER_PATH = f"/{SERVICE}/ModelInfer"
ROUTE_METADATA = "x-graph-route"
#: gRPC/HTTP-2 transport metadata, never propagated to steps as headers.
_TRANSPORT = frozenset({"content-type", "te", "user-agent", "grpc-accept-encoding", "grpc-encoding", "grpc-timeout",
                        "accept-encoding"})
#: The router answers a deadline itself (with the node and step that were running) this much before
#: grpc-core cancels the call, so the access log, metrics and trace see it.
DEADLINE_MARGIN = 0.01


@dataclass(frozen=True, slots=True)
class GrpcLimits:
    """Message size limits (bytes): above them grpc answers RESOURCE_EXHAUSTED."""

    max_receive_bytes: int = 10 * 1024 * 1024
    max_send_bytes: int = 64 * 1024 * 1024


def headers_of(context: Any) -> list[tuple[str, str]]:
    """Invocation metadata as the header list graphs see (binary ``-bin`` entries and transport ones left out)."""
    return [(k, v) for k, v in (context.invocation_metadata() or ())
            if isinstance(v, str) and not k.endswith("-bin") and not k.startswith(":") and k not in _TRANSPORT]


class InferenceServicer(GRPCInferenceServiceServicer):
    """Open Inference Protocol v2 over gRPC, answered by a :class:`RouterApp`."""

    def __init__(self, app: RouterApp) -> None:
        self.app = app

    def _ready(self) -> bool:
        return self.app.health.ready and not self.app.health.draining

    async def ServerLive(self, request: Any, context: Any) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=self._ready())

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        return pb.ServerMetadataResponse(name="graph-router", version=__version__, extensions=[])

    async def _graph(self, name: str, context: Any) -> str:
        router = self.app.router
        resolved = router.default_graph or name
        if not resolved:
            known = ", ".join(sorted(router.graphs)) or "none"
            await context.abort(grpc.StatusCode.NOT_FOUND,
                                f"several graphs are loaded; set model_name to one of: {known}")
        return resolved

    async def ModelReady(self, request: Any, context: Any) -> Any:
        name = await self._graph(request.name, context)
        if name not in self.app.router.graphs:
            await context.abort(grpc.StatusCode.NOT_FOUND, self.app.router.unknown_graph_message(name))
        return pb.ModelReadyResponse(ready=self._ready())

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        await self._check_auth(context)
        name = await self._graph(request.name, context)
        if name not in self.app.router.graphs:
            await context.abort(grpc.StatusCode.NOT_FOUND, self.app.router.unknown_graph_message(name))
        # a graph's tensors are its models' business: none are declared here
        return pb.ModelMetadataResponse(name=name, versions=[], platform="graph-router")

    async def _check_auth(self, context: Any) -> None:
        req = HttpRequest("POST", INFER_PATH, headers_of(context), b"", "2", "")
        denied = self.app.check_auth(req)
        if denied is not None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, message_of(denied.body))

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        await self._check_auth(context)  # before looking at the message, as over HTTP
        try:
            body = request_to_json(request)
        except ConversionError as exc:
            # refused before any graph ran: one access-log line and the refused count, as over HTTP
            self.app.refused(400, "bad_message", "POST", INFER_PATH, context.peer() or "",
                             graph=request.model_name)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        name = await self._graph(request.model_name, context)
        remaining = context.time_remaining()
        deadline = None
        if remaining is not None:
            deadline = asyncio.get_running_loop().time() + max(0.0, remaining - DEADLINE_MARGIN)
        req = HttpRequest("POST", INFER_PATH, headers_of(context), body, "2", context.peer() or "")
        resp = await self.app.run_graph(req, name, deadline=deadline)
        route = next((v for k, v in resp.headers if k.lower() == ROUTE_METADATA), None)
        if route:
            context.set_trailing_metadata(((ROUTE_METADATA, route),))
        if 200 <= resp.status <= 299:
            try:
                return response_from_json(resp.body, model=request.model_name or name,
                                          raw=bool(request.raw_input_contents))
            except ConversionError as exc:
                await context.abort(grpc.StatusCode.INTERNAL, str(exc))
        error = resp.error
        await context.abort(code_for(resp.status, error), message_of(resp.body))


class GrpcFront:
    """A running gRPC server: the inference service, health and reflection."""

    def __init__(self, server: grpc.aio.Server, port: int, health_servicer: Any) -> None:
        self.server = server
        self.port = port
        self._health = health_servicer

    async def set_serving(self, serving: bool) -> None:
        """Health status of the server ("") and the inference service (drain turns them NOT_SERVING)."""
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE):
            await self._health.set(name, status)

    async def stop(self, grace: float | None) -> None:
        """Stop accepting; calls in flight get ``grace`` seconds to finish, then are cancelled."""
        await self.set_serving(False)
        await self.server.stop(grace)


def reflection_pool() -> Any:
    """Our messages live in a pool of their own (see ``proto/generate.py``): reflection gets one holding
    them, the health service's and its own."""
    pool = descriptor_pool.DescriptorPool()
    for file in (pb.DESCRIPTOR, health_pb2.DESCRIPTOR, reflection_pb2.DESCRIPTOR):
        pool.AddSerializedFile(file.serialized_pb)
    return pool


async def start_grpc(app: RouterApp, *, host: str, port: int, limits: GrpcLimits | None = None,
                     reuse_port: bool = True) -> GrpcFront:
    """Serve ``app`` over gRPC on ``host:port`` (0: an ephemeral port). Raises OSError if it cannot bind."""
    limits = limits or GrpcLimits()
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", limits.max_receive_bytes),
        ("grpc.max_send_message_length", limits.max_send_bytes),
        ("grpc.so_reuseport", 1 if reuse_port else 0),
    ])
    add_GRPCInferenceServiceServicer_to_server(InferenceServicer(app), server)  # type: ignore[no-untyped-call]
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = (SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME)
    reflection.enable_server_reflection(names, server, pool=reflection_pool())
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:  # grpc's way of saying the port is taken or the address is not ours
        bound = 0
    if bound == 0:
        raise OSError(f"cannot listen on {address} (in use, or not an address of this host)")
    await server.start()
    front = GrpcFront(server, bound, health_servicer)
    await front.set_serving(app.health.ready)
    return front
