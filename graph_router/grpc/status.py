"""HTTP statuses and router errors <-> gRPC status codes, as KServe's model server maps them.

KServe's gRPC servicer aborts with INVALID_ARGUMENT for invalid input, NOT_FOUND for an unknown
model, UNAVAILABLE when not ready, UNIMPLEMENTED, and INTERNAL otherwise; gRPC's own HTTP mapping
covers the rest. The message is the envelope's ``cause``.
"""

from __future__ import annotations

from typing import Any

import grpc
import orjson

from ..errors import (
    BackendConnectError,
    BackendDisconnected,
    BackendResponseTooLarge,
    BackendTimeout,
    GraphRouterError,
    GraphTimeout,
    Overloaded,
)

Code: Any = grpc.StatusCode

#: HTTP status of a graph's answer -> gRPC code (anything else: 4xx INVALID_ARGUMENT... see ``code_for``)
BY_STATUS: dict[int, Any] = {
    400: Code.INVALID_ARGUMENT,
    401: Code.UNAUTHENTICATED,
    403: Code.PERMISSION_DENIED,
    404: Code.NOT_FOUND,
    408: Code.DEADLINE_EXCEEDED,
    409: Code.ABORTED,
    412: Code.FAILED_PRECONDITION,
    413: Code.RESOURCE_EXHAUSTED,
    429: Code.RESOURCE_EXHAUSTED,
    499: Code.CANCELLED,
    500: Code.INTERNAL,
    501: Code.UNIMPLEMENTED,
    502: Code.UNAVAILABLE,
    503: Code.UNAVAILABLE,
    504: Code.DEADLINE_EXCEEDED,
}

#: gRPC code a step answered -> the HTTP status the graph sees (conditions, KServe's pass-through)
TO_STATUS: dict[Any, int] = {
    Code.INVALID_ARGUMENT: 400,
    Code.OUT_OF_RANGE: 400,
    Code.FAILED_PRECONDITION: 400,
    Code.UNAUTHENTICATED: 401,
    Code.PERMISSION_DENIED: 403,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.ABORTED: 409,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.CANCELLED: 499,
    Code.UNIMPLEMENTED: 501,
    Code.UNAVAILABLE: 503,
    Code.DEADLINE_EXCEEDED: 504,
}


def code_for(status: int, error: GraphRouterError | None = None) -> Any:
    """The gRPC code for a graph's answer: its error class first (unreachable is UNAVAILABLE even
    though KServe's HTTP router answers 500), then the HTTP status."""
    if isinstance(error, BackendConnectError | BackendDisconnected | Overloaded):
        return Code.UNAVAILABLE
    if isinstance(error, BackendTimeout | GraphTimeout):
        return Code.DEADLINE_EXCEEDED
    if isinstance(error, BackendResponseTooLarge):
        return Code.RESOURCE_EXHAUSTED
    code = BY_STATUS.get(status)
    if code is not None:
        return code
    if 400 <= status < 500:
        return Code.INVALID_ARGUMENT
    return Code.INTERNAL if status >= 500 else Code.UNKNOWN


def status_for(code: Any) -> int:
    return TO_STATUS.get(code, 500)


def message_of(body: bytes) -> str:
    """The text for a gRPC status: the envelope's ``cause``, a model server's ``error``, or the body."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict):
        for key in ("cause", "error", "detail"):
            if isinstance(doc.get(key), str):
                return str(doc[key])
    text = body.decode(errors="replace").strip()
    return text[:1000] if text else "(empty body)"
