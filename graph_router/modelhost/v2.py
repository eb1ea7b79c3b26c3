"""Open Inference Protocol v2 models for chaining: a scaler and a classifier over iris rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .iris import STD_BIAS, STD_WEIGHTS, linear_scores, standardize
from .model import InferRequest, InvalidInput, Model, Tensor, TensorSpec, argmax, softmax


def _iris_rows(tensor: Tensor) -> list[list[float]]:
    if len(tensor.shape) != 2 or tensor.shape[1] != 4 or tensor.datatype not in ("FP32", "FP64"):
        raise InvalidInput(
            f"input {tensor.name!r}: expected FP32 with shape [N, 4], got {tensor.datatype} {list(tensor.shape)}"
        )
    return [[float(v) for v in row] for row in tensor.rows()]


class V2Scaler(Model):
    """``features`` FP32 [N, 4] (raw iris cm) -> ``scaled`` FP32 [N, 4] (standardised, 4 decimals)."""

    name = "v2-scaler"
    inputs = (TensorSpec("features", "FP32", (-1, 4)),)
    outputs = (TensorSpec("scaled", "FP32", (-1, 4)),)

    def infer(self, request: InferRequest) -> Sequence[Tensor]:
        rows = _iris_rows(request.input("features"))
        data = tuple(v for row in rows for v in standardize(row))
        return [Tensor("scaled", "FP32", (len(rows), 4), data)]

    def response_parameters(self, request: InferRequest) -> Mapping[str, Any]:
        """The request's parameters, passed on (so a chain keeps them), plus what was done."""
        return {**request.parameters, "scaler": "standard"}


class V2Classifier(Model):
    """``scaled`` FP32 [N, 4] -> ``label`` INT64 [N] and ``probabilities`` FP32 [N, 3]."""

    name = "v2-classifier"
    inputs = (TensorSpec("scaled", "FP32", (-1, 4)),)
    outputs = (TensorSpec("label", "INT64", (-1,)), TensorSpec("probabilities", "FP32", (-1, 3)))

    def infer(self, request: InferRequest) -> Sequence[Tensor]:
        rows = _iris_rows(request.input("scaled"))
        scores = [linear_scores(row, STD_WEIGHTS, STD_BIAS) for row in rows]
        labels = tuple(argmax(s) for s in scores)
        probabilities = tuple(p for s in scores for p in softmax(s))
        return [
            Tensor("label", "INT64", (len(rows),), labels),
            Tensor("probabilities", "FP32", (len(rows), 3), probabilities),
        ]
