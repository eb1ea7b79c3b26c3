"""Regenerate ``grpc_predict_v2_pb2.py`` and ``grpc_predict_v2_pb2_grpc.py`` from the ``.proto`` beside them.

Run ``python -m graph_router.grpc.proto.generate`` (needs ``grpcio-tools``, in the ``test`` extra). The
messages live in a descriptor pool of their own, not protobuf's default one: KServe's and Triton's
Python clients register the same ``inference.*`` names from their own files, and one process may
hold all three.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROTO = "graph_router/grpc/proto/grpc_predict_v2.proto"
ROOT = Path(__file__).resolve().parents[3]
OUTPUTS = ("grpc_predict_v2_pb2.py", "grpc_predict_v2_pb2_grpc.py")
_DEFAULT_POOL = "_descriptor_pool.Default().AddSerializedFile("
_OWN_POOL = "_descriptor_pool.DescriptorPool().AddSerializedFile("


def generate(out_dir: Path) -> list[Path]:
    """Write the generated modules under ``out_dir`` (same relative path as in the project)."""
    from grpc_tools import protoc

    args = ["protoc", f"-I{ROOT}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", str(ROOT / PROTO)]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {PROTO}")
    where = out_dir / Path(PROTO).parent
    paths = [where / name for name in OUTPUTS]
    pb2 = paths[0]
    text = pb2.read_text()
    if _DEFAULT_POOL not in text:
        raise RuntimeError(f"{pb2}: the generated code no longer registers with {_DEFAULT_POOL!r}")
    pb2.write_text(text.replace(_DEFAULT_POOL, _OWN_POOL))
    return paths


def main() -> int:
    for path in generate(ROOT):
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
