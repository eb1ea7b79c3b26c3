"""Telemetry: OpenTelemetry traces and Prometheus metrics per graph, node and step; trace ids in logs.

    tel = Telemetry(tracer_provider)            # library use: your provider (nothing is set globally)
    router = GraphRouter(docs, hooks=tel.hooks)
    app = RouterApp(router, telemetry=tel)      # GET /metrics, one SERVER span per request

What is emitted (span, attribute and metric names) is described in docs/observability.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry.trace import Span, StatusCode, TracerProvider

from .hooks import EngineHooks
from .logs import TraceIdFilter
from .metrics import Metrics, worker_exited
from .tracing import HTTP_STATUS, INSTRUMENTATION, RequestState, build_provider, server_span

if TYPE_CHECKING:
    from ..http.messages import HttpRequest
    from ..process import ServeConfig

__all__ = ["EngineHooks", "Metrics", "RequestState", "Telemetry", "TraceIdFilter", "telemetry_factory",
           "trace_id", "worker_exited"]


class Telemetry:
    """Spans (when given a tracer provider) and metrics (unless ``metrics=False``) for one process.

    ``hooks`` goes to :class:`~graph_router.router.GraphRouter`; the object itself is the server's
    ``RequestTelemetry``. ``multiprocess``: None follows prometheus_client (``PROMETHEUS_MULTIPROC_DIR``).
    ``owns_provider``: :meth:`shutdown` also shuts the provider down (flushing queued spans).
    """

    def __init__(self, tracer_provider: TracerProvider | None = None, *, metrics: bool = True,
                 multiprocess: bool | None = None, owns_provider: bool = False) -> None:
        from .. import __version__

        self.provider = tracer_provider
        self.tracer = tracer_provider.get_tracer(INSTRUMENTATION, __version__) if tracer_provider else None
        self.metrics = Metrics(multiprocess=multiprocess) if metrics else None
        self.hooks = EngineHooks(self.tracer, self.metrics) if self.tracer or self.metrics else None
        self._owns_provider = owns_provider

    def start(self, graph: str, req: HttpRequest) -> RequestState:
        """Count the request in flight and open its SERVER span (continuing the caller's trace)."""
        if self.metrics is not None:
            self.metrics.request_started(graph)
        span = server_span(self.tracer, graph, req) if self.tracer is not None else None
        return RequestState(graph, span)

    def finish(self, span: RequestState, graph: str, status: int, duration: float) -> None:
        if self.metrics is not None:
            self.metrics.request_finished(graph, status, duration)
        s = span.span
        if s is not None:
            s.set_attribute(HTTP_STATUS, status)
            if status >= 500:
                s.set_status(StatusCode.ERROR)
            s.end()

    def metrics_body(self) -> tuple[bytes, str]:
        if self.metrics is None:
            return b"# metrics are off\n", "text/plain; version=0.0.4; charset=utf-8"
        return self.metrics.exposition()

    def trace_id(self, span: RequestState | None) -> str | None:
        return trace_id(span.span if span is not None else None)

    def shutdown(self) -> None:
        """Flush and stop the provider if this object built it; leave multiprocess metric files sane."""
        if self.metrics is not None:
            self.metrics.close()
        if self._owns_provider and self.provider is not None:
            shutdown = getattr(self.provider, "shutdown", None)
            if shutdown is not None:
                shutdown()


def trace_id(span: Span | None) -> str | None:
    """32 hex digits of ``span``'s trace, or None (no span, or an invalid one)."""
    if span is None:
        return None
    sc = span.get_span_context()
    return f"{sc.trace_id:032x}" if sc.is_valid else None


def telemetry_factory(cfg: ServeConfig, worker: int) -> Telemetry | None:
    """What ``graph-router serve`` uses in each worker: ``cfg.tracing`` (off/console/otlp), ``cfg.metrics``.

    None when both are off, so requests pay nothing for telemetry.
    """
    provider = build_provider(cfg.tracing)
    if provider is None and not cfg.metrics:
        return None
    return Telemetry(provider, metrics=cfg.metrics, owns_provider=True)
