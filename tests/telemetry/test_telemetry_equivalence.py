"""The span pipeline's two destinations get the same spans: OTLP bytes and an OpenTelemetry SDK processor.

Each scenario runs twice against the same real backends, once with spans written as OTLP (decoded with
the official protobuf classes) and once handed to an SDK span processor as ``ReadableSpan`` objects; the
spans are compared whole (name, kind, parent, attributes, status, events, trace state), ids and times aside.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from graph_router import GraphRouter
from graph_router.loader import load_graph_text

from ..conftest import StartApp
from ..support.backends import serve_handler
from ..support.ports import refused_port
from .otlp_decode import DecodedSpan, in_memory_telemetry

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING = {"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01", "tracestate": "vendor=abc,other=1"}


class Backend:
    """Answers scripted statuses (then 200) after an optional delay; the script restarts per run."""

    def __init__(self, script: list[int], delay: float = 0.0) -> None:
        self.script, self.delay = script, delay
        self.left: list[int] = []
        self.url = ""

    def reset(self) -> None:
        self.left = list(self.script)

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        if self.delay:
            await asyncio.sleep(self.delay)
        status = self.left.pop(0) if self.left else 200
        return web.json_response({"from": self.url[-30:], "status": status}, status=status)


def normalize(spans: list[Any]) -> list[tuple[Any, ...]]:
    """Spans as comparable tuples: the parent by name, retry delays (random jitter) left out."""
    names = {s.context.span_id: s.name for s in spans}
    out = []
    for s in spans:
        parent = names.get(s.parent.span_id, "<remote>") if s.parent is not None else None
        events = tuple((e.name, tuple(sorted((k, v) for k, v in (e.attributes or {}).items()
                                             if k != "graph_router.retry.delay_s"))) for e in s.events)
        if isinstance(s, DecodedSpan):
            trace_state = s.trace_state
        else:  # the SDK's span: its context's TraceState
            trace_state = s.context.trace_state.to_header() if s.context.trace_state else ""
        out.append((s.name, s.kind.name, parent, tuple(sorted((s.attributes or {}).items())),
                    s.status.status_code.name, s.status.description, events, trace_state))
    return sorted(out, key=repr)


GRAPH = """\
apiVersion: serving.kserve.io/v1alpha1
kind: InferenceGraph
metadata: {name: eq}
spec:
  nodes:
    root:
      routerType: Sequence
      steps:
        - {name: first, serviceName: a, retry: {maxRetries: 2, initialDelayMs: 1, maxDelayMs: 2}}
        - {name: pick, nodeName: chooser, data: $response}
        - {name: both, nodeName: fan}
    chooser:
      routerType: Switch
      steps:
        - {name: hit, serviceName: b, condition: status}
    fan:
      routerType: Ensemble
      steps:
        - {name: l, serviceName: b}
        - {name: r, serviceName: c}
"""

FAILING = """\
apiVersion: serving.kserve.io/v1alpha1
kind: InferenceGraph
metadata: {name: fails}
spec:
  nodes:
    root:
      routerType: Sequence
      steps:
        - {name: ok, serviceName: a}
        - {name: down, serviceName: down}
"""

MISS = """\
apiVersion: serving.kserve.io/v1alpha1
kind: InferenceGraph
metadata: {name: miss}
spec:
  nodes:
    root:
      routerType: Switch
      steps:
        - {name: never, serviceName: a, condition: nothing}
"""

SLOW = """\
apiVersion: serving.kserve.io/v1alpha1
kind: InferenceGraph
metadata: {name: slow}
spec:
  routerTimeouts: {serverRead: 1, serverWrite: 1, serviceClient: 1}
  nodes:
    root:
      routerType: Sequence
      steps:
        - {name: s, serviceName: slow, timeout: 0.1}
"""

SCENARIOS = {
    "retries, Switch and Ensemble": (GRAPH, {"a": [503]}, True),
    "a refused connection": (FAILING, {}, False),
    "a Switch that matches nothing": (MISS, {}, False),
    "a step timeout": (SLOW, {}, False),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_sdk_processor_and_otlp_export_get_the_same_spans(scenario: str, app_server: StartApp,
                                                                 aiohttp_server: Any) -> None:
    yaml_text, scripts, with_context = SCENARIOS[scenario]
    backends = {name: Backend(scripts.get(name, [])) for name in ("a", "b", "c")}
    backends["slow"] = Backend([], delay=0.5)
    services: dict[str, Any] = {}
    for name, b in backends.items():
        b.url = services[name] = await serve_handler(aiohttp_server, b.handle) + f"/v1/models/{name}:predict"
    services["down"] = f"http://127.0.0.1:{refused_port()}/v1/models/down:predict"

    results = []
    for kind in ("sdk", "otlp"):
        for b in backends.values():
            b.reset()
        exporter, tel = in_memory_telemetry(kind)
        router = GraphRouter(load_graph_text(yaml_text), services=services, hooks=tel.hooks, default_retry=False)
        url = await app_server(router, telemetry=tel)
        async with aiohttp.ClientSession() as s, s.post(url, json={"x": 1},
                                                        headers=INCOMING if with_context else {}) as r:
            results.append((r.status, await r.read(), normalize(list(exporter.get_finished_spans()))))
        tel.shutdown()

    (sdk_status, sdk_body, sdk_spans), (status, body, spans) = results
    assert (status, body) == (sdk_status, sdk_body)
    assert len(spans) >= 2  # SERVER and root node at least
    assert spans == sdk_spans
