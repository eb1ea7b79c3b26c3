"""What a model host receives and answers, shared by its HTTP and gRPC endpoints."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from multidict import CIMultiDictProxy

from .model import InferRequest, InvalidInput, Model, Tensor

Protocol = Literal["v1", "v2"]


@dataclass(frozen=True, slots=True)
class Received:
    """One inference request a model received (tests assert on these)."""

    model: str
    protocol: Protocol
    #: Case-insensitive, as received.
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def v2_answer(model: Model, body: Any) -> dict[str, Any]:
    """A v2 model's answer to a decoded request body (over HTTP or gRPC). Raises InvalidInput."""
    parsed = parse_infer_request(body)
    outputs = model.infer(parsed)
    answer: dict[str, Any] = {
        "model_name": model.served_name,
        "model_version": "1",
        # KServe makes up an id when the request has none.
        "id": parsed.id if parsed.id is not None else str(uuid.uuid4()),
        "outputs": [t.to_json() for t in outputs],
    }
    parameters = model.response_parameters(parsed)
    if parameters:
        answer["parameters"] = dict(parameters)
    return answer


def parse_infer_request(body: Any) -> InferRequest:
    """Check a v2 request body: ``{"id"?, "inputs": [tensor, ...], "parameters"?}``."""
    if not isinstance(body, dict):
        raise InvalidInput("Expected the request to be a JSON object")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput('Expected "inputs" to be a non-empty list')
    tensors = tuple(Tensor.from_json(obj, f"inputs[{i}]") for i, obj in enumerate(inputs))
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput('Expected "id" to be a string')
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidInput('Expected "parameters" to be an object')
    return InferRequest(request_id, tensors, parameters)
