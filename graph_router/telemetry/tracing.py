"""Span and attribute names, and the W3C trace headers the router sends to backends.

Span and attribute names are listed in docs/observability.md. Incoming ``traceparent`` is parsed in
one place, :func:`graph_router.telemetry.sampling.parse_traceparent`.
"""

from __future__ import annotations

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


def replace_traceparent(headers: list[tuple[str, str]], value: str) -> None:
    """Set the ``traceparent`` entry (the one the router added) to ``value``, in place: a retry's new parent."""
    for i, (k, _) in enumerate(headers):
        if k == "traceparent":
            headers[i] = (k, value)
            return
