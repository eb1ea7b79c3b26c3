"""Open Inference Protocol v2: the JSON form <-> the gRPC messages, following the protocol's mapping.

Tensors travel either as typed ``contents`` (``fp32_contents`` for FP32, ...) or, for every input
of a message at once, as ``raw_input_contents`` / ``raw_output_contents``: little-endian, row-major,
each BYTES element prefixed by its length (4-byte little-endian). The JSON form carries flat
``data`` with the ``shape``; nested JSON arrays are flattened row-major. FP16 and BF16 have no
typed field: a message holding one uses raw contents for all of its tensors.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from .proto import grpc_predict_v2_pb2 as _pb2

pb: Any = _pb2  # generated, untyped


class ConversionError(ValueError):
    """A message cannot be converted: says what, where, and how to fix it."""


@dataclass(frozen=True, slots=True)
class DataType:
    #: the typed ``InferTensorContents`` field, None for raw-only types
    field: str | None
    #: ``struct`` code of one element, None for BYTES and BF16
    code: str | None
    size: int


DATATYPES: dict[str, DataType] = {
    "BOOL": DataType("bool_contents", "?", 1),
    "UINT8": DataType("uint_contents", "B", 1),
    "UINT16": DataType("uint_contents", "H", 2),
    "UINT32": DataType("uint_contents", "I", 4),
    "UINT64": DataType("uint64_contents", "Q", 8),
    "INT8": DataType("int_contents", "b", 1),
    "INT16": DataType("int_contents", "h", 2),
    "INT32": DataType("int_contents", "i", 4),
    "INT64": DataType("int64_contents", "q", 8),
    "FP16": DataType(None, "e", 2),
    "BF16": DataType(None, None, 2),
    "FP32": DataType("fp32_contents", "f", 4),
    "FP64": DataType("fp64_contents", "d", 8),
    "BYTES": DataType("bytes_contents", None, 0),
}
_KNOWN = ", ".join(DATATYPES)
#: integer types narrower than their typed field (int32 / uint32): their range is checked
_NARROW = {"INT8": (-128, 127), "INT16": (-32768, 32767), "UINT8": (0, 255), "UINT16": (0, 65535)}
_INT64_MAX = 2**63 - 1


def _datatype(name: Any, where: str) -> DataType:
    dt = DATATYPES.get(name) if isinstance(name, str) else None
    if dt is None:
        raise ConversionError(f"{where}.datatype: {name!r} is not an Open Inference Protocol datatype; "
                              f"use one of {_KNOWN}")
    return dt


# --- raw contents ----------------------------------------------------------------------------


def decode_raw(raw: bytes, datatype: str, count: int, where: str) -> list[Any]:
    """The elements of one tensor's raw contents."""
    dt = _datatype(datatype, where)
    if datatype == "BYTES":
        return _decode_bytes(raw, where)
    if len(raw) != count * dt.size:
        raise ConversionError(f"{where}: raw contents hold {len(raw)} bytes; shape and datatype {datatype} "
                              f"need {count * dt.size}")
    if dt.code is None:  # BF16: the top half of an FP32
        halves = struct.unpack(f"<{count}H", raw)
        return list(struct.unpack(f"<{count}f", struct.pack(f"<{count}I", *(h << 16 for h in halves))))
    return list(struct.unpack(f"<{count}{dt.code}", raw))


def _decode_bytes(raw: bytes, where: str) -> list[Any]:
    out: list[Any] = []
    pos, end = 0, len(raw)
    while pos < end:
        if pos + 4 > end:
            raise ConversionError(f"{where}: raw BYTES contents end inside an element's 4-byte length prefix")
        (n,) = struct.unpack_from("<I", raw, pos)
        pos += 4
        if pos + n > end:
            raise ConversionError(f"{where}: raw BYTES element of {n} bytes runs past the end of the contents")
        out.append(_text(raw[pos:pos + n], where))
        pos += n
    return out


def encode_raw(values: list[Any], datatype: str, where: str) -> bytes:
    """One tensor's elements as raw contents."""
    dt = _datatype(datatype, where)
    try:
        if datatype == "BYTES":
            parts = [_bytes(v, where) for v in values]
            return b"".join(struct.pack("<I", len(p)) + p for p in parts)
        if dt.code is None:  # BF16: round an FP32 to its top half (nearest, ties to even)
            bits = struct.unpack(f"<{len(values)}I", struct.pack(f"<{len(values)}f", *values))
            return struct.pack(f"<{len(values)}H", *(((b + 0x7FFF + ((b >> 16) & 1)) >> 16) & 0xFFFF for b in bits))
        return struct.pack(f"<{len(values)}{dt.code}", *values)
    except (struct.error, TypeError, OverflowError) as exc:
        raise ConversionError(f"{where}.data: not valid {datatype} values ({exc})") from None


def _text(b: bytes, where: str) -> str:
    try:
        return b.decode()
    except UnicodeDecodeError:
        raise ConversionError(f"{where}: a BYTES element is not UTF-8 text, so it has no v2 JSON form; "
                              "send text, or base64-encode binary data") from None


def _bytes(v: Any, where: str) -> bytes:
    if isinstance(v, str):
        return v.encode()
    if isinstance(v, bytes):
        return v
    raise ConversionError(f"{where}.data: BYTES elements must be strings, got {type(v).__name__}")


# --- parameters ------------------------------------------------------------------------------


def params_to_json(params: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, p in params.items():
        which = p.WhichOneof("parameter_choice")
        if which is not None:
            out[key] = getattr(p, which)
    return out


def params_from_json(params: Any, target: Any, where: str) -> None:
    """Copy a JSON ``parameters`` object into a protobuf parameters map."""
    if params is None:
        return
    if not isinstance(params, dict):
        raise ConversionError(f"{where}.parameters: expected an object, got {_kind(params)}")
    for key, v in params.items():
        p = target[key]
        if isinstance(v, bool):
            p.bool_param = v
        elif isinstance(v, int):
            if v > _INT64_MAX:
                p.uint64_param = v
            else:
                p.int64_param = v
        elif isinstance(v, float):
            p.double_param = v
        elif isinstance(v, str):
            p.string_param = v
        else:
            raise ConversionError(f"{where}.parameters.{key}: gRPC parameters are bool, integer, number or string; "
                                  f"got {_kind(v)}")


# --- tensors ---------------------------------------------------------------------------------


def _count(shape: Iterable[int]) -> int:
    return math.prod(shape)


def tensor_to_json(t: Any, raw: bytes | None, where: str) -> dict[str, Any]:
    """An ``InferInputTensor`` / ``InferOutputTensor`` (and its raw contents, if any) as v2 JSON."""
    shape = list(t.shape)
    dt = _datatype(t.datatype, where)
    if raw is not None:
        data = decode_raw(raw, t.datatype, _count(shape), where)
    elif dt.field is None:
        raise ConversionError(f"{where}: {t.datatype} has no typed contents; send it in raw contents")
    else:
        values = getattr(t.contents, dt.field)
        data = [_text(v, where) for v in values] if t.datatype == "BYTES" else list(values)
        if len(data) != _count(shape):
            raise ConversionError(f"{where}: shape {shape} needs {_count(shape)} elements; the contents hold "
                                  f"{len(data)}")
    out: dict[str, Any] = {"name": t.name, "shape": shape, "datatype": t.datatype, "data": data}
    if t.parameters:
        out["parameters"] = params_to_json(t.parameters)
    return out


def tensor_from_json(obj: Any, t: Any, where: str, *, raw: bool) -> bytes | None:
    """Fill protobuf tensor ``t`` from a v2 JSON tensor; returns its raw contents when ``raw``."""
    if not isinstance(obj, dict):
        raise ConversionError(f"{where}: expected a tensor object, got {_kind(obj)}")
    name, datatype, shape = obj.get("name"), obj.get("datatype"), obj.get("shape")
    if not isinstance(name, str):
        raise ConversionError(f"{where}.name: expected a string")
    dt = _datatype(datatype, where)
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise ConversionError(f"{where}.shape: expected a list of non-negative integers, got {shape!r}")
    data = _flatten(obj.get("data"), where)
    if len(data) != _count(shape):
        raise ConversionError(f"{where}: shape {shape} needs {_count(shape)} elements; data holds {len(data)}")
    t.name = name
    t.datatype = datatype
    t.shape.extend(shape)
    params_from_json(obj.get("parameters"), t.parameters, where)
    if raw:
        return encode_raw(data, str(datatype), where)
    assert dt.field is not None
    try:
        bounds = _NARROW.get(str(datatype))
        if bounds is not None and not all(bounds[0] <= v <= bounds[1] for v in data):
            raise ValueError(f"outside {bounds[0]}..{bounds[1]}")
        getattr(t.contents, dt.field).extend([_bytes(v, where) for v in data] if datatype == "BYTES" else data)
    except (TypeError, ValueError) as exc:
        raise ConversionError(f"{where}.data: not valid {datatype} values ({exc})") from None
    return None


def _flatten(data: Any, where: str) -> list[Any]:
    if not isinstance(data, list):
        raise ConversionError(f"{where}.data: expected an array, got {_kind(data)}")
    if not any(isinstance(x, list) for x in data):
        return data
    out: list[Any] = []
    stack = [iter(data)]
    while stack:  # iterative: a deeply nested array must not exhaust the Python stack
        for x in stack[-1]:
            if isinstance(x, list):
                stack.append(iter(x))
                break
            out.append(x)
        else:
            stack.pop()
    return out


def _needs_raw(tensors: list[Any]) -> bool:
    return any(isinstance(t, dict) and t.get("datatype") in ("FP16", "BF16") for t in tensors)


def _kind(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def _load(body: bytes, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ConversionError(f"the {what} is not JSON ({exc}); a gRPC step takes an Open Inference Protocol v2 "
                              "JSON body") from None
    if not isinstance(value, dict):
        raise ConversionError(f"the {what} is {_kind(value)}, not an Open Inference Protocol v2 JSON object")
    return value


# --- messages --------------------------------------------------------------------------------


def request_to_json(req: Any) -> bytes:
    """A ``ModelInferRequest`` as the v2 JSON body a graph sees."""
    raw = list(req.raw_input_contents)
    if raw and len(raw) != len(req.inputs):
        raise ConversionError(f"raw_input_contents holds {len(raw)} entries for {len(req.inputs)} inputs; "
                              "send one per input, in order, or use typed contents")
    inputs = []
    for i, t in enumerate(req.inputs):
        if raw and t.HasField("contents"):
            raise ConversionError(f"inputs[{i}] ({t.name}): contents must not be set when raw_input_contents is used")
        inputs.append(tensor_to_json(t, raw[i] if raw else None, f"inputs[{i}]"))
    out: dict[str, Any] = {}
    if req.id:
        out["id"] = req.id
    if req.parameters:
        out["parameters"] = params_to_json(req.parameters)
    out["inputs"] = inputs
    if req.outputs:
        outs = []
        for o in req.outputs:
            entry: dict[str, Any] = {"name": o.name}
            if o.parameters:
                entry["parameters"] = params_to_json(o.parameters)
            outs.append(entry)
        out["outputs"] = outs
    return orjson.dumps(out)


def request_from_json(body: bytes, model: str, version: str = "") -> Any:
    """A v2 JSON request body as a ``ModelInferRequest`` for ``model``."""
    doc = _load(body, "step's input")
    inputs = doc.get("inputs")
    if not isinstance(inputs, list):
        raise ConversionError(f"the step's input has no 'inputs' array (got {_kind(inputs)}); a gRPC step takes an "
                              "Open Inference Protocol v2 request")
    req = pb.ModelInferRequest(model_name=model, model_version=version)
    if isinstance(doc.get("id"), str):
        req.id = doc["id"]
    params_from_json(doc.get("parameters"), req.parameters, "request")
    raw = _needs_raw(inputs)
    for i, obj in enumerate(inputs):
        contents = tensor_from_json(obj, req.inputs.add(), f"inputs[{i}]", raw=raw)
        if contents is not None:
            req.raw_input_contents.append(contents)
    outputs = doc.get("outputs")
    if isinstance(outputs, list):
        for i, o in enumerate(outputs):
            if not isinstance(o, dict) or not isinstance(o.get("name"), str):
                raise ConversionError(f"outputs[{i}]: expected an object with a 'name'")
            ro = req.outputs.add(name=o["name"])
            params_from_json(o.get("parameters"), ro.parameters, f"outputs[{i}]")
    return req


def response_to_json(resp: Any) -> bytes:
    """A ``ModelInferResponse`` as the v2 JSON a graph's conditions and selections see."""
    raw = list(resp.raw_output_contents)
    if raw and len(raw) != len(resp.outputs):
        raise ConversionError(f"raw_output_contents holds {len(raw)} entries for {len(resp.outputs)} outputs")
    out: dict[str, Any] = {"model_name": resp.model_name}
    if resp.model_version:
        out["model_version"] = resp.model_version
    if resp.id:
        out["id"] = resp.id
    if resp.parameters:
        out["parameters"] = params_to_json(resp.parameters)
    out["outputs"] = [tensor_to_json(t, raw[i] if raw else None, f"outputs[{i}]")
                      for i, t in enumerate(resp.outputs)]
    return orjson.dumps(out)


def response_from_json(body: bytes, *, model: str, raw: bool) -> Any:
    """A graph's v2 JSON answer as a ``ModelInferResponse`` (raw output contents when ``raw``)."""
    doc = _load(body, "graph's answer")
    outputs = doc.get("outputs")
    if not isinstance(outputs, list):
        keys = ", ".join(sorted(doc)) or "none"
        raise ConversionError(f"the graph's answer has no 'outputs' array (keys: {keys}), so it is not an Open "
                              "Inference Protocol v2 response; end the graph with a v2 model to serve it over gRPC")
    resp = pb.ModelInferResponse(model_name=str(doc.get("model_name") or model))
    if isinstance(doc.get("model_version"), str):
        resp.model_version = doc["model_version"]
    if isinstance(doc.get("id"), str):
        resp.id = doc["id"]
    params_from_json(doc.get("parameters"), resp.parameters, "response")
    raw = raw or _needs_raw(outputs)
    for i, obj in enumerate(outputs):
        contents = tensor_from_json(obj, resp.outputs.add(), f"outputs[{i}]", raw=raw)
        if contents is not None:
            resp.raw_output_contents.append(contents)
    return resp
