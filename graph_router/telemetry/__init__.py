"""Telemetry: OpenTelemetry traces and Prometheus metrics per graph, node and step; trace ids in logs.

    tel = Telemetry(tracer_provider)            # library use: your provider (nothing is set globally)
    router = GraphRouter(docs, hooks=tel.hooks)
    app = RouterApp(router, telemetry=tel)      # GET /metrics, one SERVER span per request

    tel = Telemetry(otlp=otlp_tracer(os.environ))  # what `serve` uses: OTLP/HTTP written without the SDK

What is emitted (span, attribute and metric names) is described in docs/observability.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import Span, StatusCode, TracerProvider

from .export import BatchExporter, ExportConfig, ExportConfigError, HttpSink
from .hooks import EngineHooks, MetricsHooks
from .logs import TraceIdFilter
from .metrics import Metrics, worker_exited
from .sampling import Sampler
from .spans import OtlpTracer, SpanHooks, TraceState, Unsampled, add_event
from .tracing import HTTP_STATUS, INSTRUMENTATION, RequestState, build_provider, server_span

if TYPE_CHECKING:
    from ..http.messages import HttpRequest
    from ..process import ServeConfig

__all__ = ["BatchExporter", "EngineHooks", "ExportConfig", "ExportConfigError", "Metrics", "OtlpTracer",
           "RequestState", "Sampler", "Telemetry", "TraceIdFilter", "otlp_tracer", "telemetry_factory", "trace_id",
           "worker_exited"]


PREWARM_EVENT = "prewarm"
PREWARM_TARGETS = "graph_router.prewarm.targets"
_UNTRACED = RequestState("", None)  # what start() returns for every request when only metrics are on


class Telemetry:
    """Spans (when given a tracer provider) and metrics (unless ``metrics=False``) for one process.

    ``hooks`` goes to :class:`~graph_router.api.GraphRouter`; the object itself is the server's
    ``RequestTelemetry``. ``multiprocess``: None follows prometheus_client (``PROMETHEUS_MULTIPROC_DIR``).
    ``owns_provider``: :meth:`shutdown` also shuts the provider down (flushing queued spans).
    ``otlp``: spans written as OTLP without the SDK (:mod:`.spans`), instead of ``tracer_provider``;
    it needs the server (each request's trace starts in :meth:`start`), so library use takes a provider.
    """

    def __init__(self, tracer_provider: TracerProvider | None = None, *, metrics: bool = True,
                 multiprocess: bool | None = None, owns_provider: bool = False,
                 otlp: OtlpTracer | None = None) -> None:
        from .. import __version__

        if otlp is not None and tracer_provider is not None:
            raise ValueError("Telemetry takes a tracer provider or an OtlpTracer, not both")
        self.provider = tracer_provider
        self.tracer = tracer_provider.get_tracer(INSTRUMENTATION, __version__) if tracer_provider else None
        self.otlp = otlp
        self.metrics = Metrics(multiprocess=multiprocess) if metrics else None
        self.hooks: EngineHooks | MetricsHooks | SpanHooks | None = None
        if otlp is not None:
            self.hooks = SpanHooks(otlp, self.metrics)
        elif self.tracer is not None:
            self.hooks = EngineHooks(self.tracer, self.metrics)
        elif self.metrics is not None:
            self.hooks = MetricsHooks(self.metrics)
        self._owns_provider = owns_provider

    def start(self, graph: str, req: HttpRequest) -> RequestState | TraceState | Unsampled:
        """Count the request in flight and open its SERVER span (continuing the caller's trace)."""
        if self.metrics is not None:
            self.metrics.request_started(graph)
        if self.otlp is not None:
            return self.otlp.start(graph, req)
        if self.tracer is None:
            return _UNTRACED
        return RequestState(graph, server_span(self.tracer, graph, req))

    def finish(self, span: RequestState | TraceState | Unsampled, graph: str, status: int, duration: float) -> None:
        if self.metrics is not None:
            self.metrics.request_finished(graph, status, duration)
        if type(span) is TraceState:
            assert self.otlp is not None
            self.otlp.finish(span, status)
            return
        if type(span) is tuple:  # sampled out by the OTLP tracer: nothing recorded
            return
        assert isinstance(span, RequestState)
        s = span.span
        if s is not None:
            s.set_attribute(HTTP_STATUS, status)
            if status >= 500:
                s.set_status(StatusCode.ERROR)
            s.end()

    def refused(self, status: int, reason: str) -> None:
        """Count a request refused before any graph ran."""
        if self.metrics is not None:
            self.metrics.refused(status, reason)

    def prewarm_sent(self, span: RequestState | TraceState | Unsampled | None, targets: list[str]) -> None:
        """A ``prewarm`` event on the request's SERVER span naming the backends woken."""
        if type(span) is TraceState:
            add_event(span, PREWARM_EVENT, {PREWARM_TARGETS: targets})
        elif isinstance(span, RequestState) and span.span is not None:
            span.span.add_event(PREWARM_EVENT, {PREWARM_TARGETS: targets})

    def prewarm_done(self, target: str, outcome: str, duration: float) -> None:
        if self.metrics is not None:
            self.metrics.prewarmed(target, outcome)

    def metrics_body(self) -> tuple[bytes, str]:
        if self.metrics is None:
            return b"# metrics are off\n", "text/plain; version=0.0.4; charset=utf-8"
        return self.metrics.exposition()

    def trace_id(self, span: RequestState | TraceState | Unsampled | None) -> str | None:
        if type(span) is TraceState:
            return span.hex
        if type(span) is tuple:
            return span[0][3:35]
        return trace_id(span.span if isinstance(span, RequestState) else None)

    async def flush(self) -> None:
        """Export the spans finished so far (the OTLP tracer's queue; a provider flushes itself)."""
        if self.otlp is not None:
            await self.otlp.exporter.flush()

    async def aclose(self) -> None:
        """:meth:`shutdown`, after exporting what the OTLP tracer still holds (bounded wait)."""
        if self.otlp is not None:
            await self.otlp.aclose()
        self.shutdown()

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


def otlp_tracer(env: Mapping[str, str]) -> OtlpTracer:
    """An :class:`OtlpTracer` exporting where the ``OTEL_*`` variables say; raises ExportConfigError."""
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    from .. import __version__
    from . import otlp

    cfg = ExportConfig.from_env(env)
    try:
        sampler = Sampler.from_env(env)
    except ValueError as exc:
        raise ExportConfigError(str(exc)) from None
    resource = Resource.create()
    attrs: dict[str, Any] = dict(resource.attributes)
    if str(attrs.get(SERVICE_NAME, "")).startswith("unknown_service"):
        attrs[SERVICE_NAME] = "graph-router"
    sink = HttpSink(cfg, otlp.resource(attrs), otlp.scope(INSTRUMENTATION, __version__))
    exporter = BatchExporter(sink, max_batch=cfg.max_batch, max_queue=cfg.max_queue,
                             schedule_delay=cfg.schedule_delay, on_close=sink.aclose)
    return OtlpTracer(exporter, sampler)


def telemetry_factory(cfg: ServeConfig, worker: int) -> Telemetry | None:
    """What ``graph-router serve`` uses in each worker: ``cfg.tracing`` (off/console/otlp), ``cfg.metrics``.

    None when both are off, so requests pay nothing for telemetry. ``otlp`` is the SDK-free tracer.
    """
    if cfg.tracing == "otlp":
        return Telemetry(metrics=cfg.metrics, otlp=otlp_tracer(os.environ))
    provider = build_provider(cfg.tracing)
    if provider is None and not cfg.metrics:
        return None
    return Telemetry(provider, metrics=cfg.metrics, owns_provider=True)
