"""The gRPC tests need the grpc extra; without it this directory is not collected (nothing errors)."""

from __future__ import annotations

import importlib.util


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


if all(_installed(m) for m in ("grpc", "grpc_health", "grpc_reflection", "google.protobuf")):
    from .fixtures import grpc_front, grpc_models  # noqa: F401  (the fixtures)
else:
    collect_ignore_glob = ["test_*.py"]
