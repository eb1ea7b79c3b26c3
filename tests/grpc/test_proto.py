"""The checked-in generated modules match the .proto, and the .proto matches the published protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from graph_router.grpc.proto import generate
from graph_router.grpc.proto import grpc_predict_v2_pb2 as pb


def test_generated_modules_match_the_proto(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools", reason="regenerating needs grpcio-tools (the test extra)")
    for fresh in generate.generate(tmp_path):
        checked_in = generate.ROOT / fresh.relative_to(tmp_path)
        assert fresh.read_text() == checked_in.read_text(), (
            f"{checked_in.relative_to(generate.ROOT)} is stale: run python -m graph_router.grpc.proto.generate")


def _fields(desc: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in desc.fields:
        kind = f.message_type.full_name if f.message_type is not None else f.type
        out[f.name] = (f.number, f.type, kind, f.is_repeated)
    for nested in desc.nested_types:
        out[nested.name] = _fields(nested)
    return out


def test_messages_match_kserves_published_definition() -> None:
    """Every message of KServe's grpc_predict_v2.proto that we define has the same fields and numbers.

    (KServe's InferParameter stops at string_param = 3; Triton's and the protocol's add
    double_param = 4 and uint64_param = 5, which we carry.)"""
    import sys

    saved = sys.argv
    sys.argv = saved[:1]  # kserve parses sys.argv on import (see tests/interop/conftest.py)
    try:
        kpb = pytest.importorskip("kserve.protocol.grpc.grpc_predict_v2_pb2",
                                  reason="needs the interop extra (kserve)")
    finally:
        sys.argv = saved
    ours = pb.DESCRIPTOR.message_types_by_name
    theirs = kpb.DESCRIPTOR.message_types_by_name
    for name, desc in ours.items():
        assert name in theirs, name
        mine, published = _fields(desc), _fields(theirs[name])
        if name == "InferParameter":
            assert {k: mine[k] for k in published} == published
            assert (mine["double_param"][0], mine["uint64_param"][0]) == (4, 5)
        else:
            assert mine == published, name
    service = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    published_service = kpb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    for method in service.methods:
        other = published_service.methods_by_name[method.name]
        assert (method.input_type.full_name, method.output_type.full_name) == (
            other.input_type.full_name, other.output_type.full_name)
    assert pb.DESCRIPTOR.package == "inference"
