"""OTLP/protobuf, written by hand: spans become bytes on the request path without a protobuf runtime.

The messages are those of ``opentelemetry/proto/trace/v1/trace.proto`` and ``common/v1/common.proto``.
Protobuf fields may come in any order, so a span is written as a fixed-size head (ids, times, flags:
one ``struct`` call) followed by bytes prepared once per graph node or step (name, kind, attributes)
and a few per-request attributes from small caches. Tests decode every shape with the official
``opentelemetry-proto`` classes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeAlias

AttrValue: TypeAlias = str | bool | int | float | Sequence[str] | Sequence[bool] | Sequence[int] | Sequence[float]

# SpanKind values of trace.proto
INTERNAL, SERVER, CLIENT = 1, 2, 3
#: Span.flags: SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK, and with it IS_REMOTE (the parent came from a caller)
FLAGS_LOCAL, FLAGS_REMOTE = 0x100, 0x300

_INT64 = 1 << 64


def varint(n: int) -> bytes:
    """Base-128 varint of a non-negative int (negative int64 values: pass ``n % 2**64``)."""
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL = [bytes((i,)) for i in range(0x80)]


def field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field: ``tag`` is the whole tag byte (field number << 3 | 2), below 0x80."""
    return _SMALL[tag] + varint(len(payload)) + payload


def any_value(v: AttrValue) -> bytes:
    """An AnyValue message."""
    if isinstance(v, str):
        return field(0x0A, v.encode("utf-8", "surrogatepass"))
    if isinstance(v, bool):
        return b"\x10\x01" if v else b"\x10\x00"
    if isinstance(v, int):
        return b"\x18" + varint(v % _INT64)
    if isinstance(v, float):
        return b"\x21" + struct.pack("<d", v)
    return field(0x2A, b"".join(field(0x0A, any_value(x)) for x in v))  # ArrayValue{repeated values = 1}


def key_value(key: str, v: AttrValue) -> bytes:
    """A KeyValue message."""
    return field(0x0A, key.encode()) + field(0x12, any_value(v))


def attributes(attrs: Mapping[str, AttrValue], tag: int = 0x4A) -> bytes:
    """Repeated KeyValue fields; the default tag is Span.attributes (field 9)."""
    return b"".join(field(tag, key_value(k, v)) for k, v in attrs.items())


def attribute(key: str, v: AttrValue) -> bytes:
    """One Span.attributes field."""
    return field(0x4A, key_value(key, v))


def static_part(name: str, kind: int, attrs: Mapping[str, AttrValue]) -> bytes:
    """What a span shares with every other span of its node, step or graph: name, kind, fixed attributes."""
    return field(0x2A, name.encode("utf-8", "surrogatepass")) + b"\x30" + varint(kind) + attributes(attrs)


def error_status(message: str | None) -> bytes:
    """Span.status (field 15) = Status{code: STATUS_CODE_ERROR, message}."""
    inner = b"\x18\x02" if not message else field(0x12, message.encode("utf-8", "surrogatepass")) + b"\x18\x02"
    return b"\x7a" + varint(len(inner)) + inner


def event(time_ns: int, name: str, attrs: Mapping[str, AttrValue]) -> bytes:
    """One Span.events field (11)."""
    inner = b"\x09" + struct.pack("<Q", time_ns) + field(0x12, name.encode()) + attributes(attrs, 0x1A)
    return b"\x5a" + varint(len(inner)) + inner


# Span head: trace_id (1), span_id (2), parent_span_id (4), start (7) and end (8) fixed64, flags (16)
# fixed32, all fixed-size; preceded by the ScopeSpans.spans tag and the span's length (1 or 2 bytes).
_HEAD = "18s2s8s2s8sBQBQ2sI"
_HEAD1 = struct.Struct("<2s" + _HEAD)  # tag 0x12 + a one-byte length
_HEAD2 = struct.Struct("<1sH" + _HEAD)  # tag 0x12 + a two-byte length varint packed as uint16
_ROOT = "18s2s8sBQBQ2sI"  # no parent
_ROOT1 = struct.Struct("<2s" + _ROOT)
_ROOT2 = struct.Struct("<1sH" + _ROOT)
HEAD_SIZE = _HEAD1.size - 2
ROOT_SIZE = _ROOT1.size - 2
_SPAN_ID, _PARENT_ID, _FLAGS, _ST, _SPANS = b"\x12\x08", b"\x22\x08", b"\x85\x01", 0x39, b"\x12"
_LEN1 = [b"\x12" + bytes((i,)) for i in range(0x80)]


def span(tid_field: bytes, span_id: bytes, parent: bytes | None, start: int, end: int, flags: int,
         rest: bytes) -> bytes:
    """One ScopeSpans.spans field: the fixed head, then ``rest`` (static part and per-request fields)."""
    if parent is None:
        n = ROOT_SIZE + len(rest)
        if n < 0x80:
            return _ROOT1.pack(_LEN1[n], tid_field, _SPAN_ID, span_id, _ST, start, 0x41, end, _FLAGS, flags) + rest
        if n < 0x4000:
            return _ROOT2.pack(_SPANS, (n & 0x7F) | 0x80 | (n >> 7) << 8, tid_field, _SPAN_ID, span_id, _ST, start,
                               0x41, end, _FLAGS, flags) + rest
    else:
        n = HEAD_SIZE + len(rest)
        if n < 0x80:
            return _HEAD1.pack(_LEN1[n], tid_field, _SPAN_ID, span_id, _PARENT_ID, parent, _ST, start, 0x41, end,
                               _FLAGS, flags) + rest
        if n < 0x4000:
            return _HEAD2.pack(_SPANS, (n & 0x7F) | 0x80 | (n >> 7) << 8, tid_field, _SPAN_ID, span_id, _PARENT_ID,
                               parent, _ST, start, 0x41, end, _FLAGS, flags) + rest
    body = tid_field + _SPAN_ID + span_id + (_PARENT_ID + parent if parent is not None else b"")
    body += struct.pack("<BQBQ2sI", _ST, start, 0x41, end, _FLAGS, flags) + rest
    return _SPANS + varint(len(body)) + body


def child_spans(tid_field: bytes, parent: bytes | None, first: bytes, second: bytes, start: int, end: int,
                first_rest: bytes, second_rest: bytes) -> tuple[bytes, bytes]:
    """Two spans with the same times, ``second`` the child of ``parent`` and ``first`` the child of ``second``.

    A step and its single CLIENT attempt, in one call.
    """
    n, m = HEAD_SIZE + len(first_rest), HEAD_SIZE + len(second_rest)
    if 0x80 <= n < 0x4000 and 0x80 <= m < 0x4000 and parent is not None:  # the usual: two-byte lengths
        return (_HEAD2.pack(_SPANS, (n & 0x7F) | 0x80 | (n >> 7) << 8, tid_field, _SPAN_ID, first, _PARENT_ID,
                            second, _ST, start, 0x41, end, _FLAGS, FLAGS_LOCAL) + first_rest,
                _HEAD2.pack(_SPANS, (m & 0x7F) | 0x80 | (m >> 7) << 8, tid_field, _SPAN_ID, second, _PARENT_ID,
                            parent, _ST, start, 0x41, end, _FLAGS, FLAGS_LOCAL) + second_rest)
    return (span(tid_field, first, second, start, end, FLAGS_LOCAL, first_rest),
            span(tid_field, second, parent, start, end, FLAGS_LOCAL, second_rest))


def trace_state(value: str) -> bytes:
    """Span.trace_state (field 3), the W3C ``tracestate`` the caller sent."""
    return field(0x1A, value.encode("utf-8", "surrogatepass"))


def scope(name: str, version: str) -> bytes:
    """ScopeSpans.scope (field 1) = InstrumentationScope{name, version}."""
    return field(0x0A, field(0x0A, name.encode()) + field(0x12, version.encode()))


def resource(attrs: Mapping[str, AttrValue]) -> bytes:
    """ResourceSpans.resource (field 1) = Resource{attributes}."""
    return field(0x0A, attributes(attrs, 0x0A))


def export_request(resource_field: bytes, scope_field: bytes, spans: Iterable[bytes]) -> bytes:
    """ExportTraceServiceRequest with one ResourceSpans holding one ScopeSpans of ``spans``."""
    joined = b"".join(spans)
    scope_spans = scope_field + joined
    rs = resource_field + b"\x12" + varint(len(scope_spans)) + scope_spans
    return b"\x0a" + varint(len(rs)) + rs
