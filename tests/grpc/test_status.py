"""The gRPC column of the failure matrix: each router error and HTTP status -> its gRPC code, and back."""

from __future__ import annotations

import pytest

from graph_router.errors import (
    AggregationError,
    BackendConnectError,
    BackendDisconnected,
    BackendError,
    BackendProtocolError,
    BackendResponseTooLarge,
    BackendTimeout,
    GraphNotFound,
    GraphRouterError,
    GraphTimeout,
    GrpcMessageError,
    NoRouteMatched,
    Overloaded,
    RequestError,
    RequestTooLarge,
    StepInputError,
    StepTimeout,
    Unauthorized,
)
from graph_router.grpc.status import code_for, message_of, status_for

from .fixtures import grpc

C = grpc.StatusCode


@pytest.mark.parametrize(("error", "code"), [
    (RequestError("x"), C.INVALID_ARGUMENT),
    (GrpcMessageError("x"), C.INVALID_ARGUMENT),
    (Unauthorized("x"), C.UNAUTHENTICATED),
    (GraphNotFound("x"), C.NOT_FOUND),
    (NoRouteMatched(), C.NOT_FOUND),
    (RequestTooLarge("x"), C.RESOURCE_EXHAUSTED),
    (StepInputError("x"), C.INTERNAL),
    (AggregationError("x"), C.INTERNAL),
    (GraphRouterError("invalid response"), C.INTERNAL),
    (BackendError("x"), C.INTERNAL),
    (BackendConnectError("x"), C.UNAVAILABLE),
    (BackendConnectError("x", refused=False), C.UNAVAILABLE),
    (BackendDisconnected("x", nothing_received=True), C.UNAVAILABLE),
    (BackendProtocolError("x"), C.UNAVAILABLE),
    (Overloaded("x"), C.UNAVAILABLE),
    (BackendTimeout("x"), C.DEADLINE_EXCEEDED),
    (GraphTimeout("x"), C.DEADLINE_EXCEEDED),
    (StepTimeout("x"), C.DEADLINE_EXCEEDED),
    (BackendResponseTooLarge("x"), C.RESOURCE_EXHAUSTED),
])
def test_router_errors(error: GraphRouterError, code: object) -> None:
    assert code_for(error.status, error) == code


def test_nested_switch_is_internal() -> None:
    err = NoRouteMatched()
    err.status = 500  # what the engine sets for a nested node
    assert code_for(err.status, err) == C.INTERNAL


@pytest.mark.parametrize(("status", "code"), [
    (400, C.INVALID_ARGUMENT), (401, C.UNAUTHENTICATED), (403, C.PERMISSION_DENIED), (404, C.NOT_FOUND),
    (409, C.ABORTED), (413, C.RESOURCE_EXHAUSTED), (422, C.INVALID_ARGUMENT), (429, C.RESOURCE_EXHAUSTED),
    (500, C.INTERNAL), (501, C.UNIMPLEMENTED), (502, C.UNAVAILABLE), (503, C.UNAVAILABLE),
    (504, C.DEADLINE_EXCEEDED), (507, C.INTERNAL),
])
def test_a_backends_status_passed_through(status: int, code: object) -> None:
    assert code_for(status) == code


def test_codes_back_to_statuses() -> None:
    assert [status_for(c) for c in (C.INVALID_ARGUMENT, C.NOT_FOUND, C.UNAVAILABLE, C.DEADLINE_EXCEEDED,
                                    C.INTERNAL, C.UNKNOWN, C.UNAUTHENTICATED)] == [400, 404, 503, 504, 500, 500, 401]


def test_message_of() -> None:
    assert message_of(b'{"error": "Failed to process request", "cause": "boom"}') == "boom"
    assert message_of(b'{"error": "Model with name x does not exist."}') == "Model with name x does not exist."
    assert message_of(b'{"detail": [1]}') == '{"detail": [1]}'
    assert message_of(b"plain text\n") == "plain text"
    assert message_of(b"") == "(empty body)"
