"""Decode the OTLP tracer's bytes with the official protobuf classes into span views shaped like the SDK's.

The trace tests run the one span pipeline (:class:`graph_router.telemetry.OtlpTracer`) with each of its
two destinations: OTLP bytes (decoded here; :class:`DecodedSpan` has the fields the tests read) and an
OpenTelemetry SDK span processor (``ReadableSpan``, through :func:`graph_router.telemetry.sdk_tracer`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.trace import SpanKind, StatusCode

from graph_router.telemetry import OtlpTracer, Telemetry, otlp, sdk_tracer

_KINDS = {1: SpanKind.INTERNAL, 2: SpanKind.SERVER, 3: SpanKind.CLIENT}
_CODES = {0: StatusCode.UNSET, 1: StatusCode.OK, 2: StatusCode.ERROR}


@dataclass(frozen=True)
class Ids:
    trace_id: int
    span_id: int


@dataclass(frozen=True)
class Status:
    status_code: StatusCode
    description: str | None


@dataclass(frozen=True)
class Event:
    name: str
    timestamp: int
    attributes: dict[str, Any]


@dataclass(frozen=True)
class DecodedSpan:
    name: str
    kind: SpanKind
    context: Ids
    parent: Ids | None
    attributes: dict[str, Any]
    events: list[Event]
    status: Status
    start_time: int
    end_time: int
    flags: int
    trace_state: str = ""
    scope: tuple[str, str] = ("", "")
    resource: dict[str, Any] = field(default_factory=dict)


def value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which == "array_value":
        return tuple(value(x) for x in v.array_value.values)
    return getattr(v, which) if which else None


def attrs(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        assert isinstance(kv, KeyValue)
        assert kv.key not in out, f"attribute {kv.key} written twice"
        out[kv.key] = value(kv.value)
    return out


def decode(payload: bytes) -> list[DecodedSpan]:
    """Every span of an ExportTraceServiceRequest (checks it parses strictly and ids are well-sized)."""
    req = ExportTraceServiceRequest.FromString(payload)
    out = []
    for rs in req.resource_spans:
        resource = attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            for s in ss.spans:
                assert len(s.trace_id) == 16 and len(s.span_id) == 8
                assert len(s.parent_span_id) in (0, 8)
                tid = int.from_bytes(s.trace_id, "big")
                parent = Ids(tid, int.from_bytes(s.parent_span_id, "big")) if s.parent_span_id else None
                out.append(DecodedSpan(
                    name=s.name, kind=_KINDS[s.kind], context=Ids(tid, int.from_bytes(s.span_id, "big")),
                    parent=parent, attributes=attrs(s.attributes),
                    events=[Event(e.name, e.time_unix_nano, attrs(e.attributes)) for e in s.events],
                    status=Status(_CODES[s.status.code], s.status.message or None),
                    start_time=s.start_time_unix_nano, end_time=s.end_time_unix_nano, flags=s.flags,
                    trace_state=s.trace_state, scope=(ss.scope.name, ss.scope.version), resource=resource))
    return out


class MemoryExporter:
    """An OtlpTracer exporter keeping spans in memory, decoded as they are emitted (synchronously)."""

    poke_at = 1 << 62

    def __init__(self) -> None:
        self.queue: list[bytes] = []
        self.closed = False

    def poke(self) -> None:
        return None

    async def flush(self) -> None:
        return None

    async def aclose(self) -> None:
        self.closed = True

    def get_finished_spans(self) -> list[DecodedSpan]:
        return decode(otlp.export_request(otlp.resource({}), otlp.scope("test", "0"), self.queue))

    def clear(self) -> None:
        self.queue.clear()


def in_memory_telemetry(kind: str) -> tuple[Any, Telemetry]:
    """(exporter, Telemetry) recording spans in memory: ``sdk`` (handed to an SDK span processor) or ``otlp``.

    Both exporters answer ``get_finished_spans()`` and ``clear()``.
    """
    if kind == "sdk":
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        sdk_exporter = InMemorySpanExporter()
        return sdk_exporter, Telemetry(sdk_tracer(SimpleSpanProcessor(sdk_exporter)))
    exporter = MemoryExporter()
    return exporter, Telemetry(OtlpTracer(exporter))
