"""OIP v2 JSON <-> protobuf: typed and raw contents for every datatype, parameters, and clear errors."""

from __future__ import annotations

import struct
from typing import Any

import orjson
import pytest

from graph_router.grpc.convert import (
    ConversionError,
    decode_raw,
    encode_raw,
    request_from_json,
    request_to_json,
    response_from_json,
    response_to_json,
)
from graph_router.grpc.proto import grpc_predict_v2_pb2 as pb

# values exact in each datatype
SAMPLES: dict[str, list[Any]] = {
    "BOOL": [True, False, True],
    "UINT8": [0, 7, 255],
    "UINT16": [0, 65535, 3],
    "UINT32": [0, 2**32 - 1, 5],
    "UINT64": [0, 2**64 - 1, 9],
    "INT8": [-128, 0, 127],
    "INT16": [-32768, 1, 32767],
    "INT32": [-(2**31), 0, 2**31 - 1],
    "INT64": [-(2**63), 2**53 + 1, 2**63 - 1],
    "FP32": [1.5, -0.25, 3.4028234663852886e38],
    "FP64": [0.1, -1e-300, 1.7976931348623157e308],
    "BYTES": ["hello", "", "ünïcode"],
    "FP16": [1.5, -2.0, 65504.0],
    "BF16": [1.5, -2.0, 3.0],
}


def body(datatype: str, data: Any, shape: list[int] | None = None, **extra: Any) -> bytes:
    tensor = {"name": "t", "shape": shape or [1, 3], "datatype": datatype, "data": data}
    return orjson.dumps({"inputs": [tensor], **extra})


@pytest.mark.parametrize("datatype", list(SAMPLES))
def test_request_round_trip_is_exact(datatype: str) -> None:
    """JSON -> ModelInferRequest (typed or raw) -> bytes on the wire -> ModelInferRequest -> the same JSON."""
    msg = request_from_json(body(datatype, SAMPLES[datatype]), "m")
    wire = pb.ModelInferRequest.FromString(msg.SerializeToString())
    assert wire.model_name == "m"
    if datatype in ("FP16", "BF16"):
        assert len(wire.raw_input_contents) == 1 and not wire.inputs[0].HasField("contents")
    else:
        assert not wire.raw_input_contents
    back = orjson.loads(request_to_json(wire))
    assert back == {"inputs": [{"name": "t", "shape": [1, 3], "datatype": datatype, "data": SAMPLES[datatype]}]}


@pytest.mark.parametrize("datatype", list(SAMPLES))
def test_raw_contents_round_trip_is_exact(datatype: str) -> None:
    raw = encode_raw(SAMPLES[datatype], datatype, "t")
    assert decode_raw(raw, datatype, 3, "t") == SAMPLES[datatype]


def test_raw_layout_is_little_endian_and_bytes_are_length_prefixed() -> None:
    assert encode_raw([1, 2], "INT32", "t") == b"\x01\x00\x00\x00\x02\x00\x00\x00"
    assert encode_raw([1.0], "FP32", "t") == struct.pack("<f", 1.0)
    assert encode_raw(["ab", ""], "BYTES", "t") == b"\x02\x00\x00\x00ab\x00\x00\x00\x00"


def test_nested_data_is_flattened_row_major() -> None:
    msg = request_from_json(body("INT64", [[1, 2, 3], [4, 5, 6]], [2, 3]), "m")
    assert list(msg.inputs[0].contents.int64_contents) == [1, 2, 3, 4, 5, 6]
    assert list(msg.inputs[0].shape) == [2, 3]


def test_request_fields_and_parameters_carry_over() -> None:
    raw = body("FP32", [1.0, 2.0, 3.0], id="abc",
               parameters={"flag": True, "n": -3, "big": 2**64 - 1, "f": 0.5, "s": "x"},
               outputs=[{"name": "y", "parameters": {"binary_data": False}}])
    msg = request_from_json(raw, "m", "2")
    assert (msg.id, msg.model_version) == ("abc", "2")
    assert msg.parameters["flag"].bool_param is True
    assert msg.parameters["n"].int64_param == -3
    assert msg.parameters["big"].uint64_param == 2**64 - 1
    assert msg.parameters["f"].double_param == 0.5
    assert msg.parameters["s"].string_param == "x"
    assert msg.outputs[0].name == "y" and msg.outputs[0].parameters["binary_data"].bool_param is False
    back = orjson.loads(request_to_json(msg))
    assert back["id"] == "abc"
    assert back["parameters"] == {"flag": True, "n": -3, "big": 2**64 - 1, "f": 0.5, "s": "x"}
    assert back["outputs"] == [{"name": "y", "parameters": {"binary_data": False}}]


def test_response_round_trip_typed_and_raw() -> None:
    answer = {"model_name": "m", "id": "r1", "parameters": {"unit": "cm"},
              "outputs": [{"name": "y", "shape": [2], "datatype": "FP32", "data": [0.5, 1.5],
                           "parameters": {"kind": "score"}},
                          {"name": "label", "shape": [2], "datatype": "BYTES", "data": ["cat", "dog"]}]}
    for raw in (False, True):
        msg = response_from_json(orjson.dumps(answer), model="graph", raw=raw)
        assert len(msg.raw_output_contents) == (2 if raw else 0)
        assert orjson.loads(response_to_json(pb.ModelInferResponse.FromString(msg.SerializeToString()))) == answer


def test_fp32_values_are_fp32() -> None:
    """JSON 0.1 sent as FP32 comes back as the FP32 nearest to 0.1 (what any gRPC model would see)."""
    msg = request_from_json(body("FP32", [0.1, 0.2, 0.3]), "m")
    back = orjson.loads(request_to_json(msg))["inputs"][0]["data"]
    assert back == [struct.unpack("<f", struct.pack("<f", v))[0] for v in (0.1, 0.2, 0.3)]


@pytest.mark.parametrize(("raw", "message"), [
    (b"not json", "the step's input is not JSON"),
    (b"[1, 2]", "the step's input is list, not an Open Inference Protocol v2 JSON object"),
    (b'{"instances": [1]}', "the step's input has no 'inputs' array (got null)"),
    (body("FP32", [1, 2]), "inputs[0]: shape [1, 3] needs 3 elements; data holds 2"),
    (body("FLOAT", [1, 2, 3]), "inputs[0].datatype: 'FLOAT' is not an Open Inference Protocol datatype"),
    (body("FP32", ["a", "b", "c"]), "inputs[0].data: not valid FP32 values"),
    (body("INT8", [1, 2, 300], ), "inputs[0].data: not valid INT8 values"),
    (body("BYTES", [1, 2, 3]), "inputs[0].data: BYTES elements must be strings, got int"),
    (body("FP32", [1, 2, 3], shape=[1, -3]), "inputs[0].shape: expected a list of non-negative integers"),
    (body("FP32", [1, 2, 3], parameters={"p": [1]}), "request.parameters.p: gRPC parameters are bool, integer"),
])
def test_bad_json_says_what_and_where(raw: bytes, message: str) -> None:
    with pytest.raises(ConversionError) as info:
        request_from_json(raw, "m")
    assert message in str(info.value)


def test_bad_protobuf_says_what_and_where() -> None:
    req = pb.ModelInferRequest(model_name="m")
    req.inputs.add(name="a", datatype="FP32", shape=[2]).contents.fp32_contents.append(1.0)
    with pytest.raises(ConversionError, match=r"inputs\[0\]: shape \[2\] needs 2 elements; the contents hold 1"):
        request_to_json(req)
    req = pb.ModelInferRequest(model_name="m")
    req.inputs.add(name="a", datatype="INT32", shape=[2])
    req.raw_input_contents.append(b"\x00" * 7)
    with pytest.raises(ConversionError, match=r"raw contents hold 7 bytes; shape and datatype INT32 need 8"):
        request_to_json(req)
    req.raw_input_contents.append(b"")
    with pytest.raises(ConversionError, match="raw_input_contents holds 2 entries for 1 inputs"):
        request_to_json(req)
    req = pb.ModelInferRequest(model_name="m")
    req.inputs.add(name="b", datatype="BYTES", shape=[1])
    req.raw_input_contents.append(b"\x05\x00\x00\x00ab")
    with pytest.raises(ConversionError, match="raw BYTES element of 5 bytes runs past the end"):
        request_to_json(req)
    req = pb.ModelInferRequest(model_name="m")
    req.inputs.add(name="b", datatype="BYTES", shape=[1]).contents.bytes_contents.append(b"\xff\xfe")
    with pytest.raises(ConversionError, match="a BYTES element is not UTF-8 text"):
        request_to_json(req)


def test_a_graph_answer_that_is_not_v2_is_explained() -> None:
    with pytest.raises(ConversionError, match=r"no 'outputs' array \(keys: predictions\)"):
        response_from_json(b'{"predictions": [1]}', model="g", raw=False)
