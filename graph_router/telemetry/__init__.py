"""Telemetry: spans and Prometheus metrics per graph, node and step; trace ids in logs.

One span pipeline: :class:`OtlpTracer` writes each span as OTLP bytes when it ends, and its exporter
sends them (:func:`otlp_tracer`: OTLP/HTTP to a collector) or hands them to an OpenTelemetry SDK
span processor (:func:`sdk_tracer`: for an application that already has a TracerProvider)::

    tel = Telemetry(sdk_tracer(processor))      # library use: spans go to your SDK processor
    router = GraphRouter(docs, hooks=tel.hooks)
    app = RouterApp(router, telemetry=tel)      # GET /metrics, one SERVER span per request

    tel = build_telemetry(settings)             # what `serve` uses; the CLI reads the environment

Nothing here reads the environment. What is emitted (span, attribute and metric names) is described
in docs/observability.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import otlp
from .export import BatchExporter, ExportConfig, ExportConfigError, HttpSink
from .logs import TraceIdFilter
from .metric_hooks import MetricsHooks
from .metrics import Metrics, worker_exited
from .sampling import Sampler
from .sdk import SdkExporter, sdk_tracer
from .spans import OtlpTracer, SpanHooks, TraceState, Unsampled, add_event
from .tracing import INSTRUMENTATION

if TYPE_CHECKING:
    from ..http.messages import HttpRequest

__all__ = ["BatchExporter", "ExportConfig", "ExportConfigError", "Metrics", "OtlpTracer", "Sampler", "SdkExporter",
           "Telemetry", "TelemetrySettings", "TraceIdFilter", "build_telemetry", "otlp", "otlp_tracer", "sdk_tracer",
           "worker_exited"]


PREWARM_EVENT = "prewarm"
PREWARM_TARGETS = "graph_router.prewarm.targets"
TRACING_MODES = ("off", "console", "otlp")



class Untraced:
    """What :meth:`Telemetry.start` returns when only metrics are on (the server closes what start opened)."""

    __slots__ = ()


UNTRACED = Untraced()
Span = TraceState | Unsampled | Untraced  # what start() returns: a sampled trace, a sampled-out one, or neither


@dataclass(frozen=True)
class TelemetrySettings:
    """What one process records and where spans go, as the composition root read them (flags, environment).

    ``tracing``: off, console (spans printed by the SDK's console exporter) or otlp (OTLP/HTTP to
    ``export.endpoint``). ``resource``: the attributes naming this process (``service.name``...).
    ``multiprocess``: metrics summed over workers (prometheus_client imported with
    ``PROMETHEUS_MULTIPROC_DIR`` set); ``created``: ``_created`` series, as prometheus_client's default.
    """

    tracing: str = "off"
    metrics: bool = True
    export: ExportConfig = field(default_factory=ExportConfig)
    sampler: Sampler = field(default_factory=Sampler)
    resource: Mapping[str, otlp.AttrValue] = field(default_factory=lambda: {"service.name": "graph-router"})
    multiprocess: bool = False
    created: bool = True


class Telemetry:
    """Spans (when given a tracer) and metrics (unless ``metrics=False``) for one process.

    ``hooks`` goes to :class:`~graph_router.api.GraphRouter`; the object itself is the server's
    ``RequestTelemetry``. ``multiprocess`` and ``created``: see :class:`TelemetrySettings`.
    """

    def __init__(self, tracer: OtlpTracer | None = None, *, metrics: bool = True, multiprocess: bool = False,
                 created: bool = True) -> None:
        if tracer is not None and not isinstance(tracer, OtlpTracer):  # e.g. a TracerProvider, which it took before
            raise TypeError(f"Telemetry takes an OtlpTracer, not {type(tracer).__name__}: for an OpenTelemetry "
                            "SDK TracerProvider, pass sdk_tracer(<the span processor you added to it>)")
        self.tracer = tracer
        self.metrics = Metrics(multiprocess=multiprocess, created=created) if metrics else None
        self.hooks: MetricsHooks | SpanHooks | None = None
        if tracer is not None:
            self.hooks = SpanHooks(tracer, self.metrics)
        elif self.metrics is not None:
            self.hooks = MetricsHooks(self.metrics)

    def start(self, graph: str, req: HttpRequest) -> Span:
        """Count the request in flight and open its SERVER span (continuing the caller's trace)."""
        if self.metrics is not None:
            self.metrics.request_started(graph)
        if self.tracer is not None:
            return self.tracer.start(graph, req)
        return UNTRACED

    def finish(self, span: Span, graph: str, status: int, duration: float) -> None:
        if self.metrics is not None:
            self.metrics.request_finished(graph, status, duration)
        if type(span) is TraceState:
            assert self.tracer is not None
            self.tracer.finish(span, status)

    def refused(self, status: int, reason: str) -> None:
        """Count a request refused before any graph ran."""
        if self.metrics is not None:
            self.metrics.refused(status, reason)

    def prewarm_sent(self, span: Span | None, targets: list[str]) -> None:
        """A ``prewarm`` event on the request's SERVER span naming the backends woken."""
        if type(span) is TraceState:
            add_event(span, PREWARM_EVENT, {PREWARM_TARGETS: targets})

    def prewarm_done(self, target: str, outcome: str, duration: float) -> None:
        if self.metrics is not None:
            self.metrics.prewarmed(target, outcome)

    def metrics_body(self) -> tuple[bytes, str]:
        if self.metrics is None:
            return b"# metrics are off\n", "text/plain; version=0.0.4; charset=utf-8"
        return self.metrics.exposition()

    def trace_id(self, span: Span | None) -> str | None:
        if type(span) is TraceState:
            return span.hex
        if type(span) is tuple:
            return span[0][3:35]
        return None

    async def flush(self) -> None:
        """Export the spans finished so far."""
        if self.tracer is not None:
            await self.tracer.exporter.flush()

    async def aclose(self) -> None:
        """:meth:`shutdown`, after exporting what the tracer still holds (bounded wait)."""
        if self.tracer is not None:
            await self.tracer.aclose()
        self.shutdown()

    def shutdown(self) -> None:
        """Leave multiprocess metric files sane (spans still queued are exported by :meth:`aclose`)."""
        if self.metrics is not None:
            self.metrics.close()


def otlp_tracer(export: ExportConfig, sampler: Sampler | None = None,
                resource: Mapping[str, otlp.AttrValue] | None = None) -> OtlpTracer:
    """An :class:`OtlpTracer` sending OTLP/HTTP where ``export`` says, without the OpenTelemetry SDK."""
    from .. import __version__

    sink = HttpSink(export, otlp.resource(resource or {"service.name": "graph-router"}),
                    otlp.scope(INSTRUMENTATION, __version__))
    exporter = BatchExporter(sink, max_batch=export.max_batch, max_queue=export.max_queue,
                             schedule_delay=export.schedule_delay, on_close=sink.aclose)
    return OtlpTracer(exporter, sampler)


def build_telemetry(settings: TelemetrySettings) -> Telemetry | None:
    """What ``graph-router serve`` runs in each worker; None when tracing and metrics are both off,
    so requests pay nothing for telemetry."""
    if settings.tracing not in TRACING_MODES:
        raise ValueError(f"tracing mode {settings.tracing!r}: expected one of {', '.join(TRACING_MODES)}")
    tracer = None
    if settings.tracing == "otlp":
        tracer = otlp_tracer(settings.export, settings.sampler, settings.resource)
    elif settings.tracing == "console":
        tracer = _console_tracer(settings)
    if tracer is None and not settings.metrics:
        return None
    return Telemetry(tracer, metrics=settings.metrics, multiprocess=settings.multiprocess,
                     created=settings.created)


def _console_tracer(settings: TelemetrySettings) -> OtlpTracer:
    """Spans printed to stdout in batches by the SDK's console exporter (a thread of the SDK's)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    return sdk_tracer(BatchSpanProcessor(ConsoleSpanExporter()), resource=Resource(dict(settings.resource)),
                      sampler=settings.sampler, owned=True)
