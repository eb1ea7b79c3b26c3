"""Traces over real HTTP: span tree, attributes and the traceparent each backend received."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from graph_router import GraphRouter
from graph_router.loader import load_graph_text
from graph_router.telemetry import Telemetry, TelemetrySettings, TraceIdFilter, build_telemetry, sdk_tracer

from ..conftest import StartApp
from ..support.backends import serve_handler
from ..support.graphs import graph
from ..support.ports import refused_port
from .otlp_decode import DecodedSpan, MemoryExporter, in_memory_telemetry
from .test_telemetry_metrics import SWITCH

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
INCOMING = f"00-{TRACE}-{PARENT}-01"
SECRET = "Bearer s3cr3t-token"


@dataclass
class TraceBackend:
    """A real backend recording every ``traceparent`` it got (all values, to catch duplicates)."""

    url: str = ""
    traceparents: list[list[str]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    answer: dict[str, Any] = field(default_factory=lambda: {"ok": True})

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.traceparents.append(request.headers.getall("traceparent", []))
        status = self.statuses.pop(0) if self.statuses else 200
        return web.json_response(self.answer, status=status)

    def parents(self) -> list[tuple[str, str]]:
        """(trace id, parent span id) of every request, checking each carried exactly one traceparent."""
        out = []
        for values in self.traceparents:
            assert len(values) == 1, values
            version, trace, parent, flags = values[0].split("-")
            assert version == "00" and int(flags, 16) & 1  # sampled (0x02, W3C level 2 "random", may be set)
            out.append((trace, parent))
        return out


Span = ReadableSpan | DecodedSpan


@dataclass
class Rig:
    exporter: InMemorySpanExporter | MemoryExporter
    tel: Telemetry
    url: str = ""

    def spans(self) -> list[Span]:
        return list(self.exporter.get_finished_spans())

    def one(self, name: str) -> Span:
        found = [s for s in self.spans() if s.name == name]
        assert len(found) == 1, [s.name for s in self.spans()]
        return found[0]

    def named(self, name: str) -> list[Span]:
        return sorted((s for s in self.spans() if s.name == name), key=lambda s: s.start_time or 0)


Start = Callable[..., Awaitable[Rig]]
MakeBackend = Callable[..., Awaitable[TraceBackend]]


@pytest.fixture
async def backend(aiohttp_server: Any) -> MakeBackend:
    async def make(answer: dict[str, Any] | None = None) -> TraceBackend:
        b = TraceBackend(answer=answer or {"ok": True})
        b.url = await serve_handler(aiohttp_server, b.handle) + "/v1/models/m:predict"
        return b

    return make


@pytest.fixture(params=["sdk", "otlp"])
def start(app_server: StartApp, request: pytest.FixtureRequest) -> Start:
    """The real router and server in-process, with a Telemetry exporting to memory.

    Twice: spans handed to an OpenTelemetry SDK span processor, and spans written as OTLP (decoded with
    the official protobuf classes): both must show the same spans.
    """

    async def go(yaml_text: str, services: dict[str, Any], **router_kw: Any) -> Rig:
        exporter, tel = in_memory_telemetry(request.param)
        router = GraphRouter(load_graph_text(yaml_text), services=services, hooks=tel.hooks, **router_kw)
        return Rig(exporter, tel, await app_server(router, telemetry=tel))

    return go


async def post(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.post(url, json=body, headers=headers or {}) as r:
        return r.status, await r.json(content_type=None)


def sid(span: Span) -> str:
    assert span.context is not None
    return f"{span.context.span_id:016x}"


def parent_of(span: Span) -> str | None:
    return f"{span.parent.span_id:016x}" if span.parent is not None else None


SEQUENCE = graph("seq", """\
    root:
      routerType: Sequence
      steps:
        - {name: first, serviceName: a, retry: {maxRetries: 2, initialDelayMs: 1, maxDelayMs: 2}}
        - {name: second, serviceName: b, data: $response}
""")


async def test_sequence_span_tree_attributes_and_traceparent(start: Start, backend: MakeBackend) -> None:
    a, b = await backend(), await backend({"done": 1})
    a.statuses = [503]  # first attempt fails, the retry succeeds
    rig = await start(SEQUENCE, {"a": a.url, "b": b.url}, propagate_headers=["traceparent", "authorization"])
    status, body = await post(rig.url, {"x": 1}, {"traceparent": INCOMING, "Authorization": SECRET})
    assert (status, body) == (200, {"done": 1})

    server = rig.one("graph seq")
    assert server.kind == SpanKind.SERVER
    assert f"{server.context.trace_id:032x}" == TRACE and parent_of(server) == PARENT
    assert dict(server.attributes or {}) == {"graph_router.graph": "seq", "http.request.method": "POST",
                                             "url.path": "/", "http.response.status_code": 200}
    node = rig.one("node root")
    assert parent_of(node) == sid(server)
    assert dict(node.attributes or {}) == {"graph_router.graph": "seq", "graph_router.node": "root",
                                           "graph_router.router_type": "Sequence"}
    first, second = rig.one("step first"), rig.one("step second")
    assert parent_of(first) == parent_of(second) == sid(node)
    assert dict(first.attributes or {}) == {
        "graph_router.graph": "seq", "graph_router.node": "root", "graph_router.router_type": "Sequence",
        "graph_router.step": "first", "graph_router.target": "a", "graph_router.retry_count": 1,
        "http.response.status_code": 200}
    assert [e.name for e in first.events] == ["retry"]
    assert dict(first.events[0].attributes or {})["graph_router.outcome"] == "503"
    assert second.attributes is not None and second.attributes["graph_router.retry_count"] == 0

    calls_a = rig.named("call a")
    assert [c.kind for c in calls_a] == [SpanKind.CLIENT, SpanKind.CLIENT]
    assert [parent_of(c) for c in calls_a] == [sid(first), sid(first)]
    assert [(c.attributes or {}).get("graph_router.attempt") for c in calls_a] == [1, 2]
    assert [(c.attributes or {}).get("http.response.status_code") for c in calls_a] == [503, 200]
    assert calls_a[0].status.status_code == StatusCode.ERROR
    assert calls_a[0].attributes is not None and calls_a[0].attributes["graph_router.backend"] == a.url
    # each attempt carried its own CLIENT span as parent; the incoming traceparent was replaced, not doubled
    assert a.parents() == [(TRACE, sid(calls_a[0])), (TRACE, sid(calls_a[1]))]
    assert b.parents() == [(TRACE, sid(rig.one("call b")))]
    assert {f"{s.context.trace_id:032x}" for s in rig.spans()} == {TRACE}
    assert len(rig.spans()) == 7
    if isinstance(rig.exporter, MemoryExporter):  # one queue entry per span: batch sizes count spans
        assert len(rig.exporter.queue) == 7
    for s in rig.spans():  # credentials never become span data
        assert all("s3cr3t" not in str(v) for v in (s.attributes or {}).values())


ENSEMBLE = graph("ens", """\
    root:
      routerType: Ensemble
      steps:
        - {name: x, serviceName: a}
        - {name: y, nodeName: inner}
    inner:
      routerType: Sequence
      steps:
        - {name: z, serviceName: b}
""")


async def test_ensemble_parallel_steps_and_nested_node(start: Start, backend: MakeBackend) -> None:
    a, b = await backend({"a": 1}), await backend({"b": 2})
    rig = await start(ENSEMBLE, {"a": a.url, "b": b.url})
    status, body = await post(rig.url, {"x": 1}, {"traceparent": INCOMING})
    assert (status, body) == (200, {"x": {"a": 1}, "y": {"b": 2}})

    root, inner = rig.one("node root"), rig.one("node inner")
    x, y, z = rig.one("step x"), rig.one("step y"), rig.one("step z")
    assert parent_of(root) == sid(rig.one("graph ens"))
    assert parent_of(x) == parent_of(y) == sid(root)
    assert parent_of(inner) == sid(y)
    assert parent_of(z) == sid(inner)
    assert y.attributes is not None and y.attributes["graph_router.target"] == "inner"
    assert "graph_router.retry_count" not in y.attributes  # a nested node makes no backend call
    assert inner.attributes is not None and inner.attributes["graph_router.router_type"] == "Sequence"
    call_a, call_b = rig.one("call a"), rig.one("call b")
    assert (parent_of(call_a), parent_of(call_b)) == (sid(x), sid(z))
    assert a.parents() == [(TRACE, sid(call_a))]
    assert b.parents() == [(TRACE, sid(call_b))]
    assert len(rig.spans()) == 8
    if isinstance(rig.exporter, MemoryExporter):  # a step and its one attempt: still two queue entries
        assert len(rig.exporter.queue) == 8


async def test_switch_branch_and_miss(start: Start, backend: MakeBackend) -> None:
    a, b = await backend(), await backend({"woof": 1})
    rig = await start(SWITCH, {"a": a.url, "b": b.url})
    assert await post(rig.url, {"dog": 1}) == (200, {"woof": 1})
    node = rig.one("node root")
    assert node.attributes is not None and node.attributes["graph_router.branch"] == "dogs"
    step = rig.one("step dogs")
    assert parent_of(step) == sid(node)
    server = rig.one("graph sw")
    assert server.parent is None  # no incoming traceparent: a new trace
    trace = f"{server.context.trace_id:032x}"
    assert b.parents() == [(trace, sid(rig.one("call b")))] and a.traceparents == []

    rig.exporter.clear()
    status, _ = await post(rig.url, {"fish": 1})
    assert status == 404
    miss = rig.one("node root")
    assert miss.attributes is not None
    assert (miss.attributes["graph_router.branch"], miss.attributes["error.type"]) == ("none", "no_route")
    assert miss.status.status_code == StatusCode.ERROR
    assert miss.status.description == "None of the routes matched with the switch condition"
    assert [s.name for s in rig.spans()] == ["node root", "graph sw"]
    server = rig.one("graph sw")
    assert server.attributes is not None and server.attributes["http.response.status_code"] == 404


async def test_backend_failure_records_error_cause(start: Start) -> None:
    url = f"http://127.0.0.1:{refused_port()}/v1/models/m:predict"  # nothing listens there
    one = graph("down", "    root:\n      routerType: Sequence\n      steps:\n"
                        "        - {name: s, serviceName: a}\n")
    rig = await start(one, {"a": url}, default_retry=False)
    status, body = await post(rig.url, {"x": 1})
    assert status == 500, body  # as KServe: a refused connection is a 500
    step, call = rig.one("step s"), rig.one("call a")
    assert step.attributes is not None and call.attributes is not None
    assert step.attributes["error.type"] == call.attributes["error.type"] == "backend_connect"
    assert step.attributes["graph_router.error.cause"] == body["cause"]
    assert step.status.status_code == call.status.status_code == StatusCode.ERROR
    assert rig.one("graph down").status.status_code == StatusCode.ERROR


async def test_a_key_in_a_service_url_query_reaches_neither_spans_nor_metrics(start: Start,
                                                                             backend: MakeBackend) -> None:
    a = await backend()
    url = f"{a.url}?key=s3cr3t"
    one = graph("q", f"    root:\n      routerType: Sequence\n      steps:\n        - serviceUrl: '{url}'\n")
    rig = await start(one, {})
    assert await post(rig.url, {"x": 1}) == (200, {"ok": True})
    call = rig.one(f"call {a.url}")
    assert call.attributes is not None and call.attributes["graph_router.backend"] == a.url
    assert len(a.traceparents) == 1  # the backend was called, with its query
    for s in rig.spans():
        assert all("s3cr3t" not in str(v) for v in (s.attributes or {}).values()) and "s3cr3t" not in s.name
    body, _ = rig.tel.metrics_body()
    assert b"s3cr3t" not in body and f'target="{a.url}"'.encode() in body


async def test_steps_sharing_a_label_get_their_own_spans(start: Start, backend: MakeBackend) -> None:
    a, b = await backend(), await backend({"b": 1})
    twins = graph("twins", """\
    root:
      routerType: Sequence
      steps:
        - {serviceName: a}
        - {name: "0", serviceName: b}
""")  # the first step's label is its index, "0": the same as the second one's name
    rig = await start(twins, {"a": a.url, "b": b.url})
    assert await post(rig.url, {"x": 1}) == (200, {"b": 1})
    steps = rig.named("step 0")
    assert [(st.attributes or {}).get("graph_router.target") for st in steps] == ["a", "b"]
    call_a, call_b = rig.one("call a"), rig.one("call b")
    assert (parent_of(call_a), parent_of(call_b)) == (sid(steps[0]), sid(steps[1]))
    assert call_b.attributes is not None and call_b.attributes["graph_router.backend"] == b.url
    assert [p for _, p in a.parents()] == [sid(call_a)] and [p for _, p in b.parents()] == [sid(call_b)]


class Recorder(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__()
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_log_records_carry_the_trace_id(start: Start) -> None:
    records: list[logging.LogRecord] = []
    log = logging.getLogger("test.telemetry.model")
    handler = Recorder(records)
    handler.addFilter(TraceIdFilter())
    log.addHandler(handler)

    def model(body: Any, headers: Any) -> Any:
        log.warning("predicting")
        return {"ok": 1}

    try:
        one = graph("logs", "    root:\n      routerType: Sequence\n      steps:\n        - serviceName: m\n")
        rig = await start(one, {"m": model})
        assert await post(rig.url, {"x": 1}, {"traceparent": INCOMING}) == (200, {"ok": 1})
        log.warning("outside any request")
    finally:
        log.removeHandler(handler)
    assert [getattr(r, "trace_id", None) for r in records] == [TRACE, None]


async def test_sampled_out_request_records_nothing_but_propagates(start: Start, backend: MakeBackend) -> None:
    a = await backend()
    rig = await start(SEQUENCE.replace("retry: {maxRetries: 2, initialDelayMs: 1, maxDelayMs: 2}", ""),
                      {"a": a.url, "b": a.url})
    unsampled = f"00-{TRACE}-{PARENT}-00"  # the caller decided not to sample (parent-based sampling follows)
    assert await post(rig.url, {"x": 1}, {"traceparent": unsampled}) == (200, {"ok": True})
    assert rig.spans() == []
    assert len(a.traceparents) == 2
    for values in a.traceparents:
        assert len(values) == 1
        version, trace, parent, flags = values[0].split("-")
        assert (version, trace, flags) == ("00", TRACE, "00") and parent != PARENT


async def _library_call(provider: TracerProvider) -> tuple[InMemorySpanExporter, list[str], Any]:
    """One ``GraphRouter.infer`` under the caller's span ``caller`` of ``provider``, whose own span processor
    also gets the router's spans; returns the exporter, the traceparents the model saw, and the caller's span."""
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)  # the application's own: its spans and the router's go there
    provider.add_span_processor(processor)
    seen: list[str] = []

    def model(body: Any, headers: Any) -> Any:
        seen.append(headers["traceparent"])
        return {"ok": 1}

    one = graph("lib", "    root:\n      routerType: Sequence\n      steps:\n        - serviceName: m\n")
    hooks = Telemetry(sdk_tracer(processor)).hooks
    async with GraphRouter(load_graph_text(one), services={"m": model}, hooks=hooks) as r:
        with provider.get_tracer("caller").start_as_current_span("caller") as outer:
            assert (await r.infer({"x": 1})).status == 200
    return exporter, seen, outer


async def test_library_use_nests_under_the_callers_span() -> None:
    exporter, seen, outer = await _library_call(TracerProvider())
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert sorted(spans) == ["call m", "caller", "node root", "step 0"]
    assert parent_of(spans["node root"]) == sid(spans["caller"])
    trace = f"{outer.get_span_context().trace_id:032x}"
    assert seen == [f"00-{trace}-{sid(spans['call m'])}-{int(outer.get_span_context().trace_flags):02x}"]


def test_a_tracer_provider_is_refused_with_the_way_to_pass_it() -> None:
    with pytest.raises(TypeError, match=r"sdk_tracer\(<the span processor you added to it>\)"):
        Telemetry(TracerProvider())  # type: ignore[arg-type]


def test_off_means_no_hooks_and_no_telemetry() -> None:
    assert Telemetry(None, metrics=False).hooks is None
    assert build_telemetry(TelemetrySettings(tracing="off", metrics=False)) is None
    tel = build_telemetry(TelemetrySettings(tracing="off", metrics=True))
    assert tel is not None and tel.tracer is None and tel.hooks is not None
    tel.shutdown()


def test_otlp_tracing_loads_no_sdk_exporter_package() -> None:
    """The Docker image installs no OTLP exporter package: ``--tracing otlp`` must not need one."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import os\n"
        "from graph_router.cli import build_worker_telemetry, telemetry_settings\n"
        "tel = build_worker_telemetry(telemetry_settings('otlp', True, os.environ))\n"
        "assert tel is not None and tel.tracer is not None\n"
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry.exporter', 'google.protobuf'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("kind", ["sdk", "otlp"])
async def test_library_use_without_a_callers_span_starts_a_trace_per_call(kind: str) -> None:
    exporter, tel = in_memory_telemetry(kind)
    seen: list[str] = []

    def model(body: Any, headers: Any) -> Any:
        seen.append(headers["traceparent"])
        return {"ok": 1}

    one = graph("lib", "    root:\n      routerType: Sequence\n      steps:\n        - serviceName: m\n")
    async with GraphRouter(load_graph_text(one), services={"m": model}, hooks=tel.hooks) as r:
        for _ in range(2):
            assert (await r.infer({"x": 1})).status == 200
    spans = list(exporter.get_finished_spans())
    assert sorted(s.name for s in spans) == ["call m", "call m", "node root", "node root", "step 0", "step 0"]
    roots = [s for s in spans if s.name == "node root"]
    assert [r.parent for r in roots] == [None, None]  # the root node's span is the trace's root
    traces = {f"{s.context.trace_id:032x}" for s in spans}
    assert len(traces) == 2 and {tp.split("-")[1] for tp in seen} == traces
    calls = {sid(s) for s in spans if s.name == "call m"}
    assert {tp.split("-")[2] for tp in seen} == calls and all(tp.endswith("-01") for tp in seen)


async def test_library_use_under_a_sampled_out_callers_span_records_nothing_but_propagates() -> None:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    exporter, seen, outer = await _library_call(TracerProvider(sampler=ALWAYS_OFF))
    assert exporter.get_finished_spans() == ()
    trace = f"{outer.get_span_context().trace_id:032x}"
    (tp,) = seen
    version, got_trace, parent, flags = tp.split("-")
    assert (version, got_trace, flags) == ("00", trace, "00") and parent != f"{outer.get_span_context().span_id:016x}"
