"""Spans: the request's SERVER span (continuing W3C context), tracer providers, ``traceparent`` text.

Span and attribute names are listed in docs/observability.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.trace import Span, SpanContext, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from ..http.messages import HttpRequest

INSTRUMENTATION = "graph_router"

# attribute names (OpenTelemetry semantic conventions where one exists)
GRAPH = "graph_router.graph"
NODE = "graph_router.node"
ROUTER_TYPE = "graph_router.router_type"
STEP = "graph_router.step"
TARGET = "graph_router.target"
BACKEND = "graph_router.backend"
BRANCH = "graph_router.branch"
RETRY_COUNT = "graph_router.retry_count"
ATTEMPT = "graph_router.attempt"
CAUSE = "graph_router.error.cause"
ERROR_TYPE = "error.type"
HTTP_STATUS = "http.response.status_code"
HTTP_METHOD = "http.request.method"
URL_PATH = "url.path"

_propagator = TraceContextTextMapPropagator()


class RequestState:
    """What ``start()`` returns and the engine carries as ``ctx.span``: the SERVER span, if tracing."""

    __slots__ = ("graph", "recording", "span")

    def __init__(self, graph: str, span: Span | None) -> None:
        self.graph = graph
        self.span = span
        #: False when the sampler dropped the request: its inner spans are skipped (see hooks).
        self.recording = span is not None and span.is_recording()


def server_span(tracer: trace.Tracer, graph: str, req: HttpRequest) -> Span:
    """Start the request's SERVER span, child of the caller's ``traceparent`` when there is a valid one."""
    carrier: dict[str, str] = {}
    for k, v in req.headers:  # names are lower-case (HttpRequest)
        if k == "traceparent" or k == "tracestate":
            carrier.setdefault(k, v)
    parent = _propagator.extract(carrier) if carrier else None
    path = req.target.split("?", 1)[0]
    return tracer.start_span(f"graph {graph}", context=parent, kind=SpanKind.SERVER,
                             attributes={GRAPH: graph, HTTP_METHOD: req.method, URL_PATH: path})


def traceparent(sc: SpanContext) -> str:
    """The W3C ``traceparent`` value naming ``sc`` as the parent."""
    return f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{int(sc.trace_flags):02x}"


_TRACE_HEADERS = frozenset({"traceparent", "tracestate"})


def without_trace_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A copy of ``headers`` without ``traceparent``/``tracestate`` (any case): the router sets its own."""
    for k, _ in headers:
        if k.lower() in _TRACE_HEADERS:
            return [(k, v) for k, v in headers if k.lower() not in _TRACE_HEADERS]
    return headers.copy()


def trace_headers(headers: list[tuple[str, str]], traceparent: str | None,
                  tracestate: str | None) -> list[tuple[str, str]]:
    """A copy of ``headers`` with the router's own ``tracestate`` and ``traceparent`` (each when given)."""
    out = without_trace_headers(headers)
    if tracestate:
        out.append(("tracestate", tracestate))
    if traceparent is not None:
        out.append(("traceparent", traceparent))
    return out


def with_trace_headers(headers: list[tuple[str, str]], sc: SpanContext) -> list[tuple[str, str]]:
    """A copy of ``headers`` whose ``traceparent``/``tracestate`` (any case) name ``sc``."""
    return trace_headers(headers, traceparent(sc), sc.trace_state.to_header() if sc.trace_state else None)


def replace_traceparent(headers: list[tuple[str, str]], value: str) -> None:
    """Set the ``traceparent`` entry (the one the router added) to ``value``, in place: a retry's new parent."""
    for i, (k, _) in enumerate(headers):
        if k == "traceparent":
            headers[i] = (k, value)
            return


def build_provider(mode: str) -> TracerProvider | None:
    """An SDK provider for ``console`` (spans printed to stdout in batches), or None for ``off``.

    ``otlp`` does not use the SDK: see :func:`graph_router.telemetry.otlp_tracer`.
    """
    if mode == "off":
        return None
    if mode != "console":
        raise ValueError(f"tracing mode {mode!r}: the SDK provider is built for console (or off) only")
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "graph-router"}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    return provider
