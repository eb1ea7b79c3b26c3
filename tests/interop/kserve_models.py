"""Real ``kserve.Model`` backends for the interop tests, served by ``kserve.ModelServer``.

Run as ``python -m tests.interop.kserve_models PORT``: serves every model below over REST on
127.0.0.1:PORT (gRPC off). The models compute small deterministic things with values exact in FP32,
and every model records what it received, readable through the ``recorder`` model.

The port is positional on purpose: ``kserve.model_server`` parses ``sys.argv`` with its own argparse
at import time (prefix matching included), so an option of ours could be taken for one of its own.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import numpy as np
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer, model_server  # type: ignore[import-untyped]
from kserve.errors import InvalidInput  # type: ignore[import-untyped]
from kserve.protocol.rest.server import RESTServer  # type: ignore[import-untyped]
from kserve.utils.utils import generate_uuid  # type: ignore[import-untyped]

#: model name -> what it received, in order (v1: the decoded body; v2: the request as its parts)
SEEN: dict[str, list[dict[str, Any]]] = {}
#: request headers worth asserting (everything else is the HTTP client's business)
RECORDED_HEADERS = ("content-type", "x-request-id", "x-tenant")


def record(name: str, payload: Any, headers: dict[str, str] | None) -> None:
    picked = {k: v for k, v in (headers or {}).items() if k.lower() in RECORDED_HEADERS}
    if isinstance(payload, bytes):  # a content type the decoder does not take for JSON
        payload = {"undecoded": payload.decode(errors="replace")}
    SEEN.setdefault(name, []).append({"body": payload, "headers": picked})


def v2_parts(req: InferRequest) -> dict[str, Any]:
    """The request as the model received it, in wire field names."""
    return {
        "id": req.id,
        "parameters": _params(req.parameters),
        "inputs": [
            {
                "name": i.name,
                "shape": list(i.shape),
                "datatype": i.datatype,
                "data": list(i.data),
                "parameters": _params(i.parameters),
            }
            for i in req.inputs
        ],
    }


def _params(p: Any) -> dict[str, Any] | None:
    if p is None:
        return None
    # the REST decoder keeps a pydantic Parameters model; its extra fields are the parameters
    if hasattr(p, "model_dump"):
        dumped: dict[str, Any] = p.model_dump()
        return dumped
    return dict(p)


def _numbers(payload: Any, model: str) -> list[float]:
    instances = payload.get("instances") if isinstance(payload, dict) else None
    if not isinstance(instances, list) or not all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in instances
    ):
        raise InvalidInput(f"{model}: expected 'instances' to be a list of numbers")
    return instances


# --- v1 models -------------------------------------------------------------------------------


class Multiplier(Model):  # type: ignore[misc]  # kserve is untyped
    """v1: ``{"instances": [x...]}`` -> ``{"predictions": [factor * x...]}``."""

    def __init__(self, name: str, factor: float) -> None:
        super().__init__(name)
        self.factor = factor
        self.ready = True

    async def predict(self, payload: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
        record(self.name, payload, headers)
        return {"predictions": [self.factor * x for x in _numbers(payload, self.name)]}


class Thresholder(Model):  # type: ignore[misc]
    """v1 classifier: each number -> ``{"label": "high"|"low", "score": x}`` (threshold 10)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.ready = True

    async def predict(self, payload: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
        record(self.name, payload, headers)
        return {
            "predictions": [{"label": "high" if x > 10 else "low", "score": x} for x in _numbers(payload, self.name)]
        }


class Sleeper(Model):  # type: ignore[misc]
    """v1: ``{"instances": [seconds]}`` -> waits that long (at most 3 s), then answers the same body."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.ready = True

    async def predict(self, payload: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
        record(self.name, payload, headers)
        seconds = _numbers(payload, self.name)
        await asyncio.sleep(min(3.0, max(seconds, default=0.0)))
        return {"predictions": seconds}


class Recorder(Model):  # type: ignore[misc]
    """v1: ``{"instances": [model]}`` -> what that model received; ``{"clear": true}`` forgets all."""

    def __init__(self) -> None:
        super().__init__("recorder")
        self.ready = True

    async def predict(self, payload: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
        if payload.get("clear"):
            SEEN.clear()
            return {"predictions": []}
        return {"predictions": [SEEN.get(name, []) for name in payload["instances"]]}


# --- v2 models -------------------------------------------------------------------------------


class Scaler(Model):  # type: ignore[misc]
    """v2: input ``raw`` (FP32 [n, k]) -> output ``features`` = raw * factor, same shape.

    The response keeps the request id and adds response-level and tensor-level parameters, so a
    chained step can show they were carried over.
    """

    def __init__(self, name: str, factor: float) -> None:
        super().__init__(name)
        self.factor = factor
        self.ready = True

    async def predict(self, payload: InferRequest, headers: dict[str, str] | None = None) -> InferResponse:
        record(self.name, v2_parts(payload), headers)
        raw = payload.get_input_by_name("raw")
        if raw is None:
            raise InvalidInput(f"{self.name}: expected an input named 'raw'")
        features = (raw.as_numpy().astype(np.float32) * np.float32(self.factor)).astype(np.float32)
        out = InferOutput("features", list(features.shape), "FP32", parameters={"unit": "scaled"})
        out.set_data_from_numpy(features, binary_data=False)
        return InferResponse(
            response_id=payload.id or generate_uuid(),
            model_name=self.name,
            infer_outputs=[out],
            parameters={"scaled_by": str(self.factor)},
        )


class RowClassifier(Model):  # type: ignore[misc]
    """v2: input ``features`` (FP32 [n, k]) -> ``label`` (INT64 [n], 1 if row sum > 10) and ``total`` (FP32 [n])."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.ready = True

    async def predict(self, payload: InferRequest, headers: dict[str, str] | None = None) -> InferResponse:
        record(self.name, v2_parts(payload), headers)
        feats = payload.get_input_by_name("features")
        if feats is None:
            raise InvalidInput(f"{self.name}: expected an input named 'features'")
        totals = feats.as_numpy().astype(np.float32).sum(axis=1).astype(np.float32)
        labels = (totals > 10).astype(np.int64)
        label = InferOutput("label", list(labels.shape), "INT64")
        label.set_data_from_numpy(labels, binary_data=False)
        total = InferOutput("total", list(totals.shape), "FP32")
        total.set_data_from_numpy(totals, binary_data=False)
        return InferResponse(
            response_id=payload.id or generate_uuid(), model_name=self.name, infer_outputs=[label, total]
        )


class Echo(Model):  # type: ignore[misc]
    """v2: every input back as an output of the same name, shape, datatype and data (any datatype)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.ready = True

    async def predict(self, payload: InferRequest, headers: dict[str, str] | None = None) -> InferResponse:
        record(self.name, v2_parts(payload), headers)
        outputs = [InferOutput(i.name, list(i.shape), i.datatype, data=list(i.data)) for i in payload.inputs]
        return InferResponse(response_id=payload.id or generate_uuid(), model_name=self.name, infer_outputs=outputs)


# --- serving ---------------------------------------------------------------------------------


class LoopbackRESTServer(RESTServer):  # type: ignore[misc]
    """KServe's REST server hard-codes host 0.0.0.0; tests must only listen on 127.0.0.1."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config.host = "127.0.0.1"


def models() -> list[Model]:
    return [
        Multiplier("doubler", 2),
        Multiplier("tripler", 3),
        Thresholder("thresholder"),
        Sleeper("sleeper"),
        Recorder(),
        Scaler("scaler", 0.5),
        Scaler("scaler2", 1.5),
        RowClassifier("classifier"),
        Echo("echo"),
    ]


def main(argv: list[str]) -> None:
    port = int(argv[1])
    model_server.RESTServer = LoopbackRESTServer  # ModelServer.start looks the class up here
    ModelServer(http_port=port, enable_grpc=False, workers=1, enable_latency_logging=False).start(models())


if __name__ == "__main__":
    main(sys.argv)
