"""The model contract the host serves: KServe v1 ``predict`` and Open Inference Protocol v2 ``infer``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

#: v2 datatypes the host accepts, with the Python type each element must have.
DATATYPES: dict[str, tuple[type, ...]] = {
    "BOOL": (bool,),
    "INT8": (int,),
    "INT16": (int,),
    "INT32": (int,),
    "INT64": (int,),
    "UINT8": (int,),
    "UINT16": (int,),
    "UINT32": (int,),
    "UINT64": (int,),
    "FP16": (int, float),
    "FP32": (int, float),
    "FP64": (int, float),
    "BYTES": (str,),
}


class InvalidInput(ValueError):
    """The request is malformed for this model: answered 400 ``{"error": reason}`` (as KServe)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """A v2 input or output as listed in the model metadata (``-1`` = any size)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True, slots=True)
class Tensor:
    """A v2 tensor: ``data`` is flat, row-major, ``len(data) == prod(shape)``."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: tuple[Any, ...]
    parameters: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, obj: Any, where: str) -> Tensor:
        """Parse and check one entry of a v2 ``inputs`` list."""
        if not isinstance(obj, dict):
            raise InvalidInput(f"{where}: expected an object")
        name, datatype, shape = obj.get("name"), obj.get("datatype"), obj.get("shape")
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"{where}: missing 'name'")
        if datatype not in DATATYPES:
            raise InvalidInput(f"{where} ({name}): unsupported datatype {datatype!r}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise InvalidInput(f"{where} ({name}): 'shape' must be a list of non-negative integers")
        data = _flatten(obj.get("data"), f"{where} ({name})")
        if len(data) != math.prod(shape):
            raise InvalidInput(f"{where} ({name}): shape {shape} needs {math.prod(shape)} elements, got {len(data)}")
        kinds = DATATYPES[datatype]
        for value in data:
            # bool is an int subclass: keep BOOL and numeric types apart.
            if not isinstance(value, kinds) or (isinstance(value, bool) and datatype != "BOOL"):
                raise InvalidInput(f"{where} ({name}): element {value!r} is not {datatype}")
        params = obj.get("parameters") or {}
        return cls(name, datatype, tuple(shape), tuple(data), params if isinstance(params, dict) else {})

    def rows(self) -> list[list[Any]]:
        """The data as a list of rows (a 2-D view over the last dimension)."""
        if len(self.shape) < 2:
            return [list(self.data)]
        width = self.shape[-1]
        return [list(self.data[i : i + width]) for i in range(0, len(self.data), width)]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "shape": list(self.shape),
            "datatype": self.datatype,
            "data": list(self.data),
        }
        if self.parameters:
            out["parameters"] = dict(self.parameters)
        return out


def _flatten(data: Any, where: str) -> list[Any]:
    if not isinstance(data, list):
        raise InvalidInput(f"{where}: 'data' must be a list")
    flat: list[Any] = []
    stack: list[Any] = [iter(data)]
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
        elif isinstance(item, list):
            stack.append(iter(item))
        else:
            flat.append(item)
    return flat


_END = object()


@dataclass(frozen=True, slots=True)
class InferRequest:
    """A parsed v2 inference request."""

    id: str | None
    inputs: tuple[Tensor, ...]
    parameters: Mapping[str, Any]

    def input(self, name: str) -> Tensor:
        """The input called ``name``, or the only input whatever its name (chained models rename)."""
        for tensor in self.inputs:
            if tensor.name == name:
                return tensor
        if len(self.inputs) == 1:
            return self.inputs[0]
        raise InvalidInput(f"missing input tensor {name!r}")


class Model:
    """A model the host can serve. Subclass and override ``predict`` (v1) and/or ``infer`` (v2).

    ``predict`` gets the ``instances`` list and the request's ``parameters`` object and returns
    the ``predictions`` list; ``respond`` may add other top-level fields. ``infer`` gets an
    :class:`InferRequest` and returns output tensors. Raise :class:`InvalidInput` for bad input.
    """

    #: The served name; ``Model(name=...)`` overrides it.
    name: ClassVar[str] = "model"
    #: v2 metadata.
    inputs: ClassVar[tuple[TensorSpec, ...]] = ()
    outputs: ClassVar[tuple[TensorSpec, ...]] = ()
    platform: ClassVar[str] = "graph-router-modelhost"
    #: Also accept ``{"predictions": [...]}`` as the v1 input (a model fed another's answer as is).
    accepts_predictions: ClassVar[bool] = False

    def __init__(self, name: str | None = None) -> None:
        self.served_name = name or type(self).name
        self.ready = True

    @property
    def supports_v1(self) -> bool:
        return type(self).predict is not Model.predict

    @property
    def supports_v2(self) -> bool:
        return type(self).infer is not Model.infer

    def predict(self, instances: list[Any], parameters: Mapping[str, Any]) -> list[Any]:
        raise InvalidInput(f"Model {self.served_name} does not support the v1 protocol")

    def respond(self, predictions: list[Any], body: Mapping[str, Any]) -> dict[str, Any]:
        """The v1 response body; override to add fields next to ``predictions``."""
        return {"predictions": predictions}

    def infer(self, request: InferRequest) -> Sequence[Tensor]:
        raise InvalidInput(f"Model {self.served_name} does not support the v2 protocol")

    def response_parameters(self, request: InferRequest) -> Mapping[str, Any]:
        """``parameters`` of the v2 response (none by default)."""
        return {}

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.served_name,
            "versions": ["1"],
            "platform": self.platform,
            "inputs": [spec.to_json() for spec in self.inputs],
            "outputs": [spec.to_json() for spec in self.outputs],
        }


# --- helpers the example models share ----------------------------------------------------------


def number_rows(instances: list[Any], width: int) -> list[list[float]]:
    """Check that every instance is a list of ``width`` numbers."""
    rows: list[list[float]] = []
    for i, row in enumerate(instances):
        if (
            not isinstance(row, list)
            or len(row) != width
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in row)
        ):
            raise InvalidInput(f"instances[{i}]: expected a list of {width} numbers, got {row!r}")
        rows.append([float(v) for v in row])
    return rows


def softmax(scores: Sequence[float], digits: int = 4) -> list[float]:
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [round(e / total, digits) for e in exps]


def argmax(scores: Sequence[float]) -> int:
    """Index of the largest score; ties go to the lowest index (stable, deterministic)."""
    best = 0
    for i, s in enumerate(scores):
        if s > scores[best]:
            best = i
    return best


def flag(parameters: Mapping[str, Any], key: str) -> bool:
    value = parameters.get(key, False)
    if not isinstance(value, bool):
        raise InvalidInput(f'parameter "{key}" must be true or false')
    return value
