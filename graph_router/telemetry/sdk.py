"""The OpenTelemetry SDK as a destination of the one span pipeline, for applications that already use it.

:class:`SdkExporter` receives the spans :class:`~.spans.OtlpTracer` writes, each as it ends, and hands
each one to an SDK ``SpanProcessor`` (its ``on_end``) as a ``ReadableSpan``: the processor you added to
your TracerProvider exports them with the rest of your spans. A TracerProvider offers no public way to
reach its processors, so the processor itself is what :func:`sdk_tracer` takes. The spans are read
back from their OTLP bytes (our own writer's output, :mod:`.otlp`), which costs a few microseconds a
span on this path only; the OTLP/HTTP path never builds span objects.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from .sampling import Sampler
from .spans import OtlpTracer

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

__all__ = ["SdkExporter", "read_span", "sdk_tracer"]


def sdk_tracer(processor: SpanProcessor, *, resource: Resource | None = None, sampler: Sampler | None = None,
               owned: bool = False) -> OtlpTracer:
    """An :class:`OtlpTracer` whose spans go to ``processor`` (e.g. the BatchSpanProcessor of your provider).

    ``resource``: what the spans carry as their resource (your provider's ``.resource``, say);
    ``owned``: the tracer's :meth:`~OtlpTracer.aclose` also shuts ``processor`` down.
    """
    return OtlpTracer(SdkExporter(processor, resource, owned=owned), sampler)


class _Handoff(list[bytes]):
    """The tracer's queue: every span appended is handed over at once, so the list stays empty."""

    def __init__(self, exporter: SdkExporter) -> None:
        super().__init__()
        self._exporter = exporter

    def append(self, span: bytes) -> None:
        self._exporter.hand_over(span)

    def extend(self, spans: Any) -> None:
        for span in spans:
            self._exporter.hand_over(span)


class SdkExporter:
    """The :class:`~.spans.SpanExporter` feeding an SDK span processor (see the module docstring)."""

    poke_at = 1 << 62  # the queue never fills: spans are handed over as they are appended

    def __init__(self, processor: SpanProcessor, resource: Resource | None = None, *, owned: bool = False) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        from .. import __version__
        from .tracing import INSTRUMENTATION

        self.processor = processor
        self.resource = resource if resource is not None else Resource.get_empty()
        self.scope = InstrumentationScope(INSTRUMENTATION, __version__)
        self.owned = owned
        self.queue: list[bytes] = _Handoff(self)

    def hand_over(self, span: bytes) -> None:
        self.processor.on_end(read_span(span, self.resource, self.scope))

    def poke(self) -> None:
        return None

    async def flush(self) -> None:
        self.processor.force_flush()

    async def aclose(self) -> None:
        self.processor.force_flush()
        if self.owned:
            self.processor.shutdown()


# --- reading back what .otlp writes (protobuf wire format: varint, fixed64, length-delimited, fixed32) ---

def _varint(buf: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            return n, i
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, Any]]:
    """(field number, value) of every field of one message: int for varint/fixed, bytes when length-delimited."""
    out: list[tuple[int, Any]] = []
    i, end = 0, len(buf)
    while i < end:
        tag, i = _varint(buf, i)
        wire = tag & 7
        value: Any
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value = buf[i:i + 8]
            i += 8
        elif wire == 2:
            n, i = _varint(buf, i)
            value = buf[i:i + n]
            i += n
        elif wire == 5:
            value = buf[i:i + 4]
            i += 4
        else:
            raise ValueError(f"protobuf wire type {wire} is not written by graph_router.telemetry.otlp")
        out.append((tag >> 3, value))
    return out


def _any_value(buf: bytes) -> Any:
    for num, v in _fields(buf):
        if num == 1:
            return v.decode("utf-8", "surrogatepass")
        if num == 2:
            return bool(v)
        if num == 3:
            return v - (1 << 64) if v >= 1 << 63 else v
        if num == 4:
            return struct.unpack("<d", v)[0]
        if num == 5:
            return tuple(_any_value(x) for n, x in _fields(v) if n == 1)
    return None


def _attributes(kvs: list[bytes]) -> dict[str, Any]:
    out = {}
    for kv in kvs:
        key, value = "", None
        for num, v in _fields(kv):
            if num == 1:
                key = v.decode()
            elif num == 2:
                value = _any_value(v)
        out[key] = value
    return out


def read_span(field: bytes, resource: Resource, scope: Any) -> ReadableSpan:
    """A ``ReadableSpan`` of one ``ScopeSpans.spans`` field as :func:`.otlp.span` writes it."""
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

    _, start = _varint(field, 1)  # after the tag byte: the length
    f: dict[int, Any] = {}
    attrs: list[bytes] = []
    events = []
    for num, v in _fields(field[start:]):
        if num == 9:
            attrs.append(v)
        elif num == 11:
            events.append(v)
        else:
            f[num] = v
    tid = int.from_bytes(f[1], "big")
    trace_state = TraceState.from_header([f[3].decode()]) if 3 in f else TraceState()
    flags = int.from_bytes(f.get(16, b"\0\0\0\0"), "little")
    context = SpanContext(tid, int.from_bytes(f[2], "big"), False, TraceFlags(TraceFlags.SAMPLED), trace_state)
    parent = None
    if 4 in f:
        parent = SpanContext(tid, int.from_bytes(f[4], "big"), bool(flags & 0x200), TraceFlags(TraceFlags.SAMPLED),
                             trace_state)
    status = Status(StatusCode.UNSET)
    if 15 in f:
        got = dict(_fields(f[15]))
        if got.get(3) == 2:
            status = Status(StatusCode.ERROR, got[2].decode("utf-8", "surrogatepass") if 2 in got else None)
    span_events = []
    for e in events:
        ef = _fields(e)
        when = next(int.from_bytes(v, "little") for n, v in ef if n == 1)
        name = next(v.decode() for n, v in ef if n == 2)
        span_events.append(Event(name, _attributes([v for n, v in ef if n == 3]), when))
    return ReadableSpan(
        name=f[5].decode("utf-8", "surrogatepass"), context=context, parent=parent, resource=resource,
        attributes=_attributes(attrs), events=span_events, kind=SpanKind(f.get(6, 1) - 1),
        status=status, start_time=int.from_bytes(f[7], "little"), end_time=int.from_bytes(f[8], "little"),
        instrumentation_scope=scope)
