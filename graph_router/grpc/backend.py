"""The gRPC step client: a ``grpc://HOST:PORT/MODEL`` (``grpcs://`` with TLS) step calls ``ModelInfer``.

The step's input (v2 JSON, as for an HTTP step) becomes a ``ModelInferRequest``; the answer becomes
v2 JSON again, so conditions, ``data`` selections and ``mapOutputsToInputs`` work unchanged. One
channel (HTTP/2 connection) per target, shared by every step and graph that names it.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote, urlsplit

import grpc
import orjson

from ..backend import BackendRequest, BackendResponse, Headers, redact_url
from ..errors import (
    BackendConnectError,
    BackendDisconnected,
    BackendError,
    BackendResponseTooLarge,
    BackendTimeout,
    GrpcMessageError,
)
from .convert import ConversionError, request_from_json, response_to_json
from .proto.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from .status import status_for

log = logging.getLogger("graph_router.grpc")
JSON_CT = ("content-type", "application/json")
#: Headers that are HTTP/1.1 or transport business, never gRPC metadata.
_NOT_METADATA = frozenset({"content-type", "content-length", "host", "connection", "te", "transfer-encoding",
                           "keep-alive", "upgrade", "user-agent", "accept-encoding", "grpc-timeout"})
#: What a channel failing to connect says (grpc-core's wording); anything else UNAVAILABLE is the server's.
_CONNECT_FAILURES = ("failed to connect", "connection refused", "connect failed", "dns resolution failed",
                     "name resolution", "no address", "connections to all backends failing")


def parse_grpc_url(url: str) -> tuple[str, bool, str, str]:
    """``grpc://HOST:PORT/MODEL[/VERSION]`` -> (target, tls, model, version). Raises ValueError."""
    parts = urlsplit(url)
    tls = parts.scheme.lower() == "grpcs"
    if parts.scheme.lower() not in ("grpc", "grpcs"):
        raise ValueError(f"{redact_url(url)}: not a grpc:// or grpcs:// URL")
    if parts.username or parts.password:
        raise ValueError(f"{redact_url(url)}: credentials in backend URLs are not supported "
                         "(use PROPAGATE_HEADERS to forward an authorization header)")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{url}: the port is not a number") from None
    if not parts.hostname:
        raise ValueError(f"{url}: no host; expected grpc://HOST:PORT/MODEL")
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if not segments or len(segments) > 2:
        raise ValueError(f"{url}: expected grpc://HOST:PORT/MODEL (or /MODEL/VERSION): the path names the model "
                         "ModelInfer runs")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    target = f"{host}:{port or (443 if tls else 80)}"
    return target, tls, segments[0], segments[1] if len(segments) > 1 else ""


def metadata_of(headers: Headers) -> list[tuple[str, str]]:
    """Propagated headers as gRPC metadata (lower-case keys; transport headers dropped)."""
    out = []
    for k, v in headers:
        lk = k.lower()
        if lk in _NOT_METADATA or lk.startswith((":", "grpc-")):
            continue
        out.append((lk, v))
    return out


class GrpcBackend:
    """One ``grpc://`` step target. Implements :class:`graph_router.backend.Backend`."""

    __slots__ = ("_call", "_factory", "model", "target", "url", "version")

    def __init__(self, url: str, factory: GrpcBackendFactory) -> None:
        _, _, self.model, self.version = parse_grpc_url(url)
        self.url = url
        self.target = redact_url(url)
        self._factory = factory
        self._call: Any = None

    async def call(self, request: BackendRequest) -> BackendResponse:
        try:
            msg = request_from_json(request.body, self.model, self.version)
        except ConversionError as exc:
            raise GrpcMessageError(f"cannot send to {self.target}: {exc}") from None
        if self._call is None:  # the channel is made on first use, inside the serving event loop
            stub = GRPCInferenceServiceStub(self._factory.channel(self.url))  # type: ignore[no-untyped-call]
            self._call = stub.ModelInfer
        try:
            resp = await self._call(msg, timeout=request.timeout, metadata=metadata_of(request.headers))
        except grpc.aio.AioRpcError as exc:
            return self._failed(exc)
        try:
            body = response_to_json(resp)
        except ConversionError as exc:
            raise BackendError(f"the answer of {self.target} cannot be converted to v2 JSON: {exc}") from None
        return BackendResponse(200, body, [JSON_CT])

    def _failed(self, exc: grpc.aio.AioRpcError) -> BackendResponse:
        code, details = exc.code(), exc.details() or ""
        where = f"ModelInfer {self.target}"
        if code == grpc.StatusCode.UNAVAILABLE and any(s in details.lower() for s in _CONNECT_FAILURES):
            refused = "refused" in details.lower()
            raise BackendConnectError(f"{where}: {details}", refused=refused) from None
        if code == grpc.StatusCode.UNAVAILABLE and "socket closed" in details.lower():
            raise BackendDisconnected(f"{where}: {details}", nothing_received=False) from None
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            raise BackendTimeout(f"{where}: client timeout exceeded ({details})") from None
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details.lower():
            raise BackendResponseTooLarge(f"{where}: {details}") from None
        # the model answered with an error status: the graph sees it as KServe's model server's JSON
        body = orjson.dumps({"error": details, "grpc_code": code.name})
        return BackendResponse(status_for(code), body, [JSON_CT])

    async def aclose(self) -> None:
        return None


class GrpcBackendFactory:
    """Channels per (target, TLS), shared by every step naming them; closes them all."""

    def __init__(self, *, max_message_bytes: int = 64 * 1024 * 1024) -> None:
        self._channels: dict[tuple[str, bool], grpc.aio.Channel] = {}
        self._backends: dict[str, GrpcBackend] = {}
        self._options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            # a backend scaled to zero comes back quickly: do not wait out grpc's 1-120 s reconnect backoff
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
            ("grpc.enable_retries", 0),
            # grpc-core shares connections (and their reconnect backoff) process-wide by default: a
            # router's channels keep their own, so another client's failures never fail our calls
            ("grpc.use_local_subchannel_pool", 1),
        ]

    def get(self, url: str) -> GrpcBackend:
        """The backend for ``url``; raises ValueError (a load-time problem) for a URL it cannot call."""
        backend = self._backends.get(url)
        if backend is None:
            backend = self._backends[url] = GrpcBackend(url, self)
        return backend

    def channel(self, url: str) -> grpc.aio.Channel:
        target, tls, _, _ = parse_grpc_url(url)
        channel = self._channels.get((target, tls))
        if channel is None:
            if tls:
                channel = grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(), options=self._options)
            else:
                channel = grpc.aio.insecure_channel(target, options=self._options)
            self._channels[(target, tls)] = channel
        return channel

    __call__ = get

    async def aclose(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        self._backends.clear()
        for ch in channels:
            await ch.close()
