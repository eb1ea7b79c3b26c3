"""Metrics, traces and the access log see gRPC calls as they see HTTP requests."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import orjson
import pytest

from graph_router.accesslog import AccessLog
from graph_router.api import GraphRouter
from graph_router.telemetry import Telemetry

from ..telemetry.otlp_decode import in_memory_telemetry
from ..telemetry.test_telemetry_metrics import get, scrape
from .fixtures import GrpcModels, StartFront, fp32_request
from .test_grpc_front import error_of, seq

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


async def test_metrics_count_grpc_calls(grpc_front: StartFront, grpc_models: GrpcModels) -> None:
    tel = Telemetry()
    router = GraphRouter.from_spec(seq({"name": "s", "serviceUrl": grpc_models.url("double")}), hooks=tel.hooks)
    front = await grpc_front(router, telemetry=tel)
    for _ in range(3):
        await front.stub.ModelInfer(fp32_request("graph", [1.0]))
    grpc_models.models["double"] = grpc_models.models["bad"]
    await error_of(front.stub.ModelInfer(fp32_request("graph", [1.0])))
    m = await scrape(front.http)
    assert get(m, "graph_router_requests_total", graph="graph", status="200") == 3
    assert get(m, "graph_router_requests_total", graph="graph", status="400") == 1
    assert get(m, "graph_router_requests_in_flight", graph="graph") == 0


async def test_a_cancelled_call_is_counted_and_logged_not_leaked(grpc_front: StartFront,
                                                                 grpc_models: GrpcModels) -> None:
    tel, stream = Telemetry(), io.StringIO()
    log = AccessLog(stream)
    router = GraphRouter.from_spec(seq({"serviceUrl": grpc_models.url("slow")}), hooks=tel.hooks)
    front = await grpc_front(router, telemetry=tel, access_log=log)
    call = front.stub.ModelInfer(fp32_request("graph", [1.0]))
    for _ in range(100):
        if "slow" in grpc_models.seen:
            break
        await asyncio.sleep(0.02)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    for _ in range(100):
        m = await scrape(front.http)
        if get(m, "graph_router_requests_total", graph="graph", status="499") == 1:
            break
        await asyncio.sleep(0.02)
    assert get(m, "graph_router_requests_in_flight", graph="graph") == 0
    assert get(m, "graph_router_requests_total", graph="graph", status="499") == 1
    log.close()
    assert orjson.loads(stream.getvalue())["status"] == 499


async def test_a_grpc_call_continues_the_callers_trace(grpc_front: StartFront, grpc_models: GrpcModels) -> None:
    exporter, tel = in_memory_telemetry("otlp")
    router = GraphRouter.from_spec(seq({"name": "s", "serviceUrl": grpc_models.url("echo")}), hooks=tel.hooks)
    front = await grpc_front(router, telemetry=tel)
    md = (("traceparent", f"00-{TRACE}-{PARENT}-01"),)
    await front.stub.ModelInfer(fp32_request("graph", [1.0]), metadata=md)
    await tel.aclose()
    spans: list[Any] = list(exporter.get_finished_spans())
    server = [s for s in spans if s.parent is not None and f"{s.parent.span_id:016x}" == PARENT]
    assert len(server) == 1 and f"{server[0].context.trace_id:032x}" == TRACE
    # the step's call carried the trace on to the gRPC model, as metadata
    sent = grpc_models.seen["echo"][0].metadata["traceparent"]
    assert sent.startswith(f"00-{TRACE}-") and PARENT not in sent
