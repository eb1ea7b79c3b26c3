"""Log records carry the trace id of the span current when they were emitted."""

from __future__ import annotations

import logging

from opentelemetry.trace import get_current_span

from .spans import current_trace_id


class TraceIdFilter(logging.Filter):
    """Sets ``record.trace_id`` (32 hex digits) from the current span; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "trace_id", None) is None:
            lean = current_trace_id()  # a node or step traced by the OTLP tracer
            if lean is not None:
                record.trace_id = lean
                return True
            sc = get_current_span().get_span_context()
            if sc.is_valid:
                record.trace_id = f"{sc.trace_id:032x}"
        return True
