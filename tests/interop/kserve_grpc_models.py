"""The interop models (``tests/interop/kserve_models.py``) served by the real ``kserve.ModelServer`` over REST
and gRPC: ``python -m tests.interop.kserve_grpc_models HTTP_PORT GRPC_PORT``, both on 127.0.0.1.

KServe's gRPC server listens on ``[::]`` unconditionally; tests must only listen on loopback, so its
``add_insecure_port`` is pointed at 127.0.0.1 (nothing else of KServe's server changes).
"""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any

from grpc import aio  # type: ignore[import-untyped]
from kserve import ModelServer, model_server  # type: ignore[import-untyped]
from kserve.protocol.grpc import server as grpc_server  # type: ignore[import-untyped]

from .kserve_models import LoopbackRESTServer, models


def loopback_server(*args: Any, **kwargs: Any) -> Any:
    server = aio.server(*args, **kwargs)
    add = server.add_insecure_port
    server.add_insecure_port = lambda address: add(address.replace("[::]", "127.0.0.1"))
    return server


def main(argv: list[str]) -> None:
    http_port, grpc_port = int(argv[1]), int(argv[2])
    model_server.RESTServer = LoopbackRESTServer
    grpc_server.aio = SimpleNamespace(server=loopback_server)
    ModelServer(http_port=http_port, grpc_port=grpc_port, enable_grpc=True, workers=1,
                enable_latency_logging=False).start(models())


if __name__ == "__main__":
    main(sys.argv)
