"""The span pipeline: spans are written as OTLP bytes as they end, without the OpenTelemetry SDK.

The spans, names and attributes of docs/observability.md: a SERVER span per request, a span per node
and per step, a CLIENT span per backend attempt; W3C ``traceparent`` in and out; the standard
samplers. What the SDK does per span (a Span object, attribute validation, locks, a processor queue,
protobuf objects in the exporter) costs 15-30 us per span in CPython; here a span is one
``struct.pack`` over bytes prepared once per node, step and answer, appended to the exporter's queue.
The exporter sends them as OTLP (:mod:`.export`) or hands them to an SDK span processor (:mod:`.sdk`).

Without a server (``GraphRouter.infer`` as a library) the root node's span starts the trace: as a child
of the OpenTelemetry span current in the caller (its application's SDK spans), or a new trace.

Scopes nest through a ContextVar (Ensemble steps are tasks created inside the node scope and inherit
it): a node's span is current while it runs, and so is a step's span when the step runs a nested node.
A backend step opens right before its call and picks the first CLIENT span's id, which goes out in
``traceparent``. A request the sampler drops gets no objects at all (:data:`Unsampled`).

Times come from the monotonic clock, anchored to the wall clock when the process starts and again at
every export, so durations never go backwards.
"""

from __future__ import annotations

import random
import time
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Protocol, TypeAlias

from . import otlp
from .metric_hooks import MetricsStep, error_of, metric_labels, public, retry_metrics, step_attributes, step_metrics
from .sampling import Sampler, parse_traceparent
from .tracing import (
    ATTEMPT,
    BACKEND,
    BRANCH,
    CAUSE,
    ERROR_TYPE,
    GRAPH,
    HTTP_METHOD,
    HTTP_STATUS,
    NODE,
    RETRY_COUNT,
    ROUTER_TYPE,
    TARGET,
    URL_PATH,
    replace_traceparent,
    trace_headers,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..compiler import CompiledNode, CompiledStep
    from ..engine import Context
    from ..http.messages import HttpRequest
    from .metrics import Metrics

__all__ = ["OtlpTracer", "Sampler", "SpanExporter", "SpanHooks", "TraceState", "Unsampled", "anchor",
           "current_trace_id"]

_CACHE_LIMIT = 4096  # prepared span parts per kind (graph reloads make new nodes; rebuilt past this)
_getrandbits = random.getrandbits  # the module's generator is reseeded in forked workers
_mono = time.monotonic_ns
_EPOCH = time.time_ns() - time.monotonic_ns()
_LOCAL, _REMOTE = otlp.FLAGS_LOCAL, otlp.FLAGS_REMOTE
_span = otlp.span


def anchor() -> None:
    """Re-anchor span times to the wall clock (called at each export; cheap)."""
    global _EPOCH
    _EPOCH = time.time_ns() - time.monotonic_ns()


#: What :meth:`OtlpTracer.start` returns for a sampled-out request: the ``traceparent`` its backend calls
#: get (the trace id, one new span id, flags 00) and the caller's ``tracestate`` (or None). Nothing is
#: recorded for it, so a tuple is all it needs.
Unsampled: TypeAlias = tuple[str, str | None]


class TraceState:
    """One sampled request's trace: its id, the SERVER span's data, and the headers its backend calls get."""

    __slots__ = ("base", "events", "graph", "parent", "req", "sid", "src", "start", "tidf", "tp_flags", "tp_prefix",
                 "tracestate", "ts_field")

    def __init__(self, graph: str, tid: bytes, parent: bytes | None, tracestate: str | None,
                 req: HttpRequest | None) -> None:
        self.graph = graph
        self.tp_prefix = "00-" + tid.hex() + "-"
        #: the flags of the traceparent sent to backends: sampled (a library caller's, e.g. W3C level 2's 03)
        self.tp_flags = "-01"
        self.tracestate = tracestate
        self.src: list[tuple[str, str]] | None = None
        self.base: list[tuple[str, str]] = []
        self.tidf = b"\x0a\x10" + tid  # Span.trace_id, the same in every span of the request
        #: the SERVER span's id; for a library call (``req`` None, no SERVER span) the caller's span, if any
        self.sid: bytes | None = (_getrandbits(64) or 1).to_bytes(8, "big") if req is not None else parent
        self.parent = parent
        self.req = req
        #: Span.trace_state of every span of the trace (the caller's ``tracestate``), or nothing
        self.ts_field = otlp.trace_state(tracestate) if tracestate else b""
        self.start = _mono()
        #: Span.events of the SERVER span (e.g. ``prewarm``), encoded; empty for most requests
        self.events = b""

    @property
    def hex(self) -> str:
        """The trace id, 32 hex digits."""
        return self.tp_prefix[3:35]

    def headers(self, headers: list[tuple[str, str]], span_id: bytes) -> list[tuple[str, str]]:
        """``headers`` for one backend call: any ``traceparent``/``tracestate`` replaced by this trace's."""
        if self.src is not headers:  # the engine passes the same list for every call of a request
            self.src = headers
            self.base = trace_headers(headers, None, self.tracestate)
        return [*self.base, ("traceparent", self.tp_prefix + span_id.hex() + self.tp_flags)]


class SpanExporter(Protocol):
    """Where finished spans go (:class:`.export.BatchExporter` in production; tests keep them in memory).

    The tracer appends encoded spans (``ScopeSpans.spans`` fields, one per span) to ``queue`` itself,
    the cheapest call there is, and calls :meth:`poke` at the end of a request once the queue holds
    ``poke_at`` spans.
    """

    queue: list[bytes]
    poke_at: int

    def poke(self) -> None:
        """Start sending a full batch, or schedule the next export."""

    async def flush(self) -> None:
        """Export what was queued so far."""

    async def aclose(self) -> None:
        """Flush (bounded) and stop."""


class StepParts:
    """What every span of one step shares, and the whole of its common answers (first attempt, a status)."""

    __slots__ = ("client_static", "metric_key", "ok", "step_static")

    def __init__(self, graph: str, node: CompiledNode, step: CompiledStep) -> None:
        target = public(step.target)
        backend = public(step.backend.target) if step.backend is not None else ""
        self.step_static = otlp.static_part(f"step {step.label}", otlp.INTERNAL, step_attributes(graph, node, step))
        self.client_static = otlp.static_part(f"call {target}", otlp.CLIENT, {TARGET: target, BACKEND: backend})
        self.metric_key = metric_labels(graph, node, step)
        #: status (None: a nested node) -> (step span part, CLIENT span part, step_errors label)
        self.ok: dict[int | None, tuple[bytes, bytes, str | None]] = {}

    def answer(self, status: int | None, backend: bool) -> tuple[bytes, bytes, str | None]:
        """The parts for a step that ended with ``status`` on its first attempt (cached)."""
        got = self.ok.get(status)
        if got is not None:
            return got
        if status is None or not backend:
            got = (self.step_static, b"", None)
        else:
            fail = otlp.error_status(None) if status >= 400 else b""
            code = otlp.attribute(HTTP_STATUS, status)
            got = (self.step_static + otlp.attribute(RETRY_COUNT, 0) + code + fail,
                   self.client_static + otlp.attribute(ATTEMPT, 1) + code + fail,
                   f"http_{status}" if status >= 400 else None)
        if len(self.ok) < 64:  # statuses a backend answers are few; never grow without bound
            self.ok[status] = got
        return got


class OtlpTracer:
    """Starts and ends request traces, prepares span parts, and queues finished spans on ``exporter``."""

    def __init__(self, exporter: SpanExporter, sampler: Sampler | None = None) -> None:
        self.exporter = exporter
        self.queue = exporter.queue
        self.append = exporter.queue.append
        self.extend = exporter.queue.extend
        self.sampler = sampler or Sampler()
        self.nodes: dict[CompiledNode, bytes] = {}
        self.steps: dict[CompiledStep, StepParts] = {}
        self._server: dict[tuple[str, str, str, int], bytes] = {}
        self._strs: dict[tuple[str, str], bytes] = {}

    def start(self, graph: str, req: HttpRequest) -> TraceState | Unsampled:
        """A request's trace: a new one, or the caller's (a valid ``traceparent``), sampled or not."""
        incoming = None
        for k, _ in req.headers:
            if k == "traceparent":
                incoming = parse_traceparent(req)
                break
        if incoming is None:
            return self._new_trace(graph, req)
        return self._continue(graph, *incoming, req)

    def _new_trace(self, graph: str, req: HttpRequest | None) -> TraceState | Unsampled:
        """A new trace: its id and a span id for a sampled-out request's traceparent in one draw. The root
        sampler decides on the id's lower 64 bits (the SDK's TraceIdRatioBased)."""
        r = _getrandbits(192) | 1  # trace id (upper 128 bits), span id (never zero)
        if not self.sampler.sample(None, (r >> 64) & 0xFFFFFFFFFFFFFFFF):
            # (an all-zero trace id, 1 in 2**128, would only make the backend start its own trace)
            return "00-" + r.to_bytes(24, "big").hex("-", -16) + "-00", None  # "<trace id>-<span id>"
        return TraceState(graph, ((r >> 64) or 1).to_bytes(16, "big"), None, None, req)

    def _continue(self, graph: str, tid: bytes, parent: bytes, parent_sampled: bool, tracestate: str | None,
                  req: HttpRequest | None) -> TraceState | Unsampled:
        if not self.sampler.sample(parent_sampled, int.from_bytes(tid[8:], "big")):
            return "00-" + tid.hex() + "-" + (_getrandbits(64) or 1).to_bytes(8, "big").hex() + "-00", tracestate
        return TraceState(graph, tid, parent, tracestate, req)

    def start_call(self, graph: str) -> TraceState | Unsampled:
        """A library call's trace (no server, no SERVER span): under the caller's current OpenTelemetry
        span when there is a valid one, else a new trace."""
        from opentelemetry.trace import get_current_span  # (imported when a library call first needs it)

        sc = get_current_span().get_span_context()
        if not sc.is_valid:
            return self._new_trace(graph, None)
        tracestate = sc.trace_state.to_header() if sc.trace_state else None
        st = self._continue(graph, sc.trace_id.to_bytes(16, "big"), sc.span_id.to_bytes(8, "big"),
                            sc.trace_flags.sampled, tracestate or None, None)
        if type(st) is TraceState:
            st.tp_flags = f"-{int(sc.trace_flags):02x}"  # the caller's flags (sampled), as its SDK sends them
        return st

    def finish(self, st: TraceState, status: int) -> None:
        """End a sampled request's SERVER span."""
        req = st.req
        assert req is not None and st.sid is not None  # a server's request: library calls have no SERVER span
        key = (st.graph, req.method, req.target, status)
        rest = self._server.get(key) or self._server_part(key)
        if st.ts_field:
            rest += st.ts_field
        if st.events:
            rest += st.events
        ep = _EPOCH
        self.append(_span(st.tidf, st.sid, st.parent, st.start + ep, _mono() + ep,
                          _LOCAL if st.parent is None else _REMOTE, rest))
        if len(self.queue) >= self.exporter.poke_at:
            self.exporter.poke()

    # --- prepared parts ------------------------------------------------------------------------

    def _server_part(self, key: tuple[str, str, str, int]) -> bytes:
        graph, method, target, status = key
        path = target.split("?", 1)[0]
        part = otlp.static_part(f"graph {graph}", otlp.SERVER, {GRAPH: graph}) + otlp.attribute(HTTP_METHOD, method) \
            + otlp.attribute(URL_PATH, path) + otlp.attribute(HTTP_STATUS, status)
        if status >= 500:
            part += otlp.error_status(None)
        if len(self._server) > _CACHE_LIMIT:  # many distinct paths: keep the cache bounded
            self._server.clear()
        self._server[key] = part
        return part

    def str_attr(self, key: str, value: str) -> bytes:
        b = self._strs.get((key, value))
        if b is None:
            if len(self._strs) > _CACHE_LIMIT:
                self._strs.clear()
            b = self._strs[(key, value)] = otlp.attribute(key, value)
        return b

    def node_part(self, graph: str, node: CompiledNode) -> bytes:
        if len(self.nodes) > _CACHE_LIMIT:
            self.nodes.clear()
        b = self.nodes[node] = otlp.static_part(f"node {node.name}", otlp.INTERNAL,
                                                {GRAPH: graph, NODE: node.name, ROUTER_TYPE: node.router_type.value})
        return b

    def step_parts(self, graph: str, node: CompiledNode, step: CompiledStep) -> StepParts:
        if len(self.steps) > _CACHE_LIMIT:
            self.steps.clear()
        parts = self.steps[step] = StepParts(graph, node, step)
        return parts

    async def aclose(self) -> None:
        await self.exporter.aclose()


_current: ContextVar[NodeSpan | StepSpan | None] = ContextVar("graph_router_otlp_scope", default=None)


def add_event(st: TraceState, name: str, attrs: Mapping[str, otlp.AttrValue]) -> None:
    """An event on a sampled request's SERVER span, stamped now."""
    st.events += otlp.event(_mono() + _EPOCH, name, attrs)


def current_trace_id() -> str | None:
    """Hex trace id of the request whose node or step runs now (for log records), or None."""
    scope = _current.get()
    return scope.st.tp_prefix[3:35] if scope is not None else None


class SpanHooks:
    """The engine's hooks (:class:`graph_router.engine.Hooks`) for :class:`OtlpTracer`, plus metrics."""

    __slots__ = ("keys", "metrics", "tracer")

    def __init__(self, tracer: OtlpTracer, metrics: Metrics | None) -> None:
        self.tracer = tracer
        self.metrics = metrics
        self.keys: dict[CompiledStep, tuple[str, str, str, str]] = {}  # metric labels per step

    def node(self, ctx: Context, node: CompiledNode) -> NodeSpan | None:
        st = ctx.span
        if st is None and node is ctx.graph.root:  # a library call: no server started the trace
            st = ctx.span = self.tracer.start_call(ctx.graph.name)
        if type(st) is TraceState:
            return NodeSpan(self.tracer, st, ctx, node)
        if type(st) is tuple:
            # Sampled out (the root node runs first): every backend call continues the trace and learns it
            # is not sampled, under one traceparent, as nothing is recorded under it. From here on the
            # request takes the metrics-only path.
            ctx.headers = trace_headers(ctx.headers, *st)
            ctx.span = None
        return None

    def step(self, ctx: Context, node: CompiledNode, step: CompiledStep) -> StepSpan | MetricsStep:
        st = ctx.span
        if type(st) is TraceState:
            return StepSpan(self, st, ctx, node, step)
        return MetricsStep(self.metrics, self.keys, ctx, node, step, ctx.headers)

    def branch(self, ctx: Context, node: CompiledNode, step: CompiledStep | None) -> None:
        label = step.label if step is not None else "none"
        if self.metrics is not None:
            self.metrics.branch_taken(ctx.graph.name, node.name, label, node.router_type.value)
        if type(ctx.span) is TraceState:
            scope = _current.get()  # the node's span: branch() runs in its scope
            if isinstance(scope, NodeSpan) and scope.node is node:
                scope.branch = label


class NodeSpan:
    """One node's span; current (in this task's context) until :meth:`end`."""

    __slots__ = ("branch", "ctx", "node", "parent", "sid", "st", "start", "token", "tracer")
    sid: bytes

    def __init__(self, tracer: OtlpTracer, st: TraceState, ctx: Context, node: CompiledNode) -> None:
        self.tracer, self.st, self.ctx, self.node = tracer, st, ctx, node
        self.branch: str | None = None
        outer = _current.get()
        self.parent = outer.sid if outer is not None and outer.st is st else st.sid
        self.sid = (_getrandbits(64) or 1).to_bytes(8, "big")
        self.token = _current.set(self)
        self.start = _mono()

    def end(self, exc: BaseException | None) -> None:
        end = _mono()
        _current.reset(self.token)
        tracer, st, node = self.tracer, self.st, self.node
        rest = tracer.nodes.get(node) or tracer.node_part(st.graph, node)
        if self.branch is not None:
            rest += tracer.str_attr(BRANCH, self.branch)
        if exc is not None:
            code, cause = error_of(exc, self.ctx)
            rest += otlp.attribute(ERROR_TYPE, code) + otlp.attribute(CAUSE, cause) + otlp.error_status(cause)
        if st.ts_field:
            rest += st.ts_field
        if st.events:
            rest += st.events
        ep = _EPOCH
        tracer.append(_span(st.tidf, self.sid, self.parent, self.start + ep, end + ep, _LOCAL, rest))


class Retries:
    """What a step that retried keeps: attempts so far, its ``retry`` events, the current attempt's start."""

    __slots__ = ("attempts", "client_start", "events")

    def __init__(self, start: int) -> None:
        self.attempts = 1
        self.client_start = start
        self.events = b""


class StepSpan:
    """One sampled step: its span, a CLIENT span per backend attempt, and its metrics."""

    __slots__ = ("client", "ctx", "headers", "hooks", "node", "parent", "retried", "sid", "st", "start", "step",
                 "token")
    sid: bytes

    def __init__(self, hooks: SpanHooks, st: TraceState, ctx: Context, node: CompiledNode,
                 step: CompiledStep) -> None:
        self.hooks, self.st, self.ctx, self.node, self.step = hooks, st, ctx, node, step
        self.retried: Retries | None = None
        outer = _current.get()
        self.parent = outer.sid if outer is not None and outer.st is st else st.sid
        self.sid = (_getrandbits(64) or 1).to_bytes(8, "big")
        if step.backend is not None:
            self.client: bytes | None = (_getrandbits(64) or 1).to_bytes(8, "big")
            self.headers = st.headers(ctx.headers, self.client)
            # Nothing runs inside a backend step that needs it as the current scope (its spans are written
            # here; log records find the trace through the node's scope), so the ContextVar is left alone.
            self.token: Token[NodeSpan | StepSpan | None] | None = None
        else:  # a nested node: no backend call of its own; the node's span is this step's child
            self.client = None
            self.headers = ctx.headers
            self.token = _current.set(self)
        self.start = _mono()

    def on_retry(self, attempt: int, outcome: str, delay: float) -> None:
        metrics = self.hooks.metrics
        if metrics is not None:
            retry_metrics(metrics, self.step, outcome)
        r = self.retried
        if r is None:
            r = self.retried = Retries(self.start)
        if self.client is None:
            r.attempts = attempt + 1
            return
        now = _mono()
        self._end_client(self._parts(), now, outcome, None, None)
        r.attempts = attempt + 1
        r.events += otlp.event(now + _EPOCH, "retry", {ATTEMPT: attempt, "graph_router.outcome": outcome,
                                                       "graph_router.retry.delay_s": delay})
        # the next attempt starts after the backoff sleep; its traceparent goes out in the same header list
        nxt = self.client = (_getrandbits(64) or 1).to_bytes(8, "big")
        r.client_start = now + int(delay * 1e9)
        replace_traceparent(self.headers, self.st.tp_prefix + nxt.hex() + self.st.tp_flags)

    def _parts(self) -> StepParts:
        tracer = self.hooks.tracer
        return tracer.steps.get(self.step) or tracer.step_parts(self.st.graph, self.node, self.step)

    def end(self, status: int | None, exc: BaseException | None) -> None:
        end = _mono()
        if self.token is not None:
            _current.reset(self.token)
        hooks, st, step = self.hooks, self.st, self.step
        tracer = hooks.tracer
        parts = tracer.steps.get(step) or tracer.step_parts(st.graph, self.node, step)
        if exc is not None or self.retried is not None:
            self._end_slow(parts, end, status, exc)
            return
        step_rest, client_rest, error = parts.ok.get(status) or parts.answer(status, step.backend is not None)
        metrics = hooks.metrics
        start = self.start
        if metrics is not None:
            metrics.step_finished(parts.metric_key, (end - start) / 1e9, error)
        if st.ts_field:
            step_rest += st.ts_field
            client_rest += st.ts_field
        ep = _EPOCH
        if self.client is not None:
            tracer.extend(otlp.child_spans(st.tidf, self.parent, self.client, self.sid, start + ep, end + ep,
                                           client_rest, step_rest))
        else:
            tracer.append(_span(st.tidf, self.sid, self.parent, start + ep, end + ep, _LOCAL, step_rest))

    def _end_slow(self, parts: StepParts, end: int, status: int | None, exc: BaseException | None) -> None:
        """A step that failed or was retried: its attributes are built for it."""
        st, step, tracer = self.st, self.step, self.hooks.tracer
        code = cause = None
        if exc is not None:
            code, cause = error_of(exc, self.ctx)
        metrics = self.hooks.metrics
        if metrics is not None and code != "cancelled":
            step_metrics(metrics, parts.metric_key, step, (end - self.start) / 1e9, code, status)
        if self.client is not None:
            self._end_client(parts, end, None if status is None else str(status), code, cause)
        rest = parts.step_static
        r = self.retried
        if step.backend is not None:
            rest += otlp.attribute(RETRY_COUNT, r.attempts - 1 if r is not None else 0)
        if status is not None:
            rest += otlp.attribute(HTTP_STATUS, status)
        if code is not None:
            rest += otlp.attribute(ERROR_TYPE, code) + otlp.attribute(CAUSE, cause or code) + otlp.error_status(cause)
        elif status is not None and status >= 400:
            rest += otlp.error_status(None)
        rest += st.ts_field + (r.events if r is not None else b"")
        ep = _EPOCH
        tracer.append(_span(st.tidf, self.sid, self.parent, self.start + ep, end + ep, _LOCAL, rest))

    def _end_client(self, parts: StepParts, end: int, outcome: str | None, code: str | None,
                    cause: str | None) -> None:
        """The current attempt's CLIENT span: what it got (``outcome``), or what ended the step (``code``)."""
        st, client = self.st, self.client
        assert client is not None
        r = self.retried
        rest = parts.client_static + otlp.attribute(ATTEMPT, r.attempts if r is not None else 1)
        error = False
        if outcome is not None:
            if outcome.isdigit():
                status = int(outcome)
                rest += otlp.attribute(HTTP_STATUS, status)
                error = status >= 400
            elif code is None:
                rest += otlp.attribute(ERROR_TYPE, outcome) + otlp.error_status(outcome)
        if code is not None:
            rest += otlp.attribute(ERROR_TYPE, code) + otlp.attribute(CAUSE, cause or code) + otlp.error_status(cause)
        elif error:
            rest += otlp.error_status(None)
        rest += st.ts_field
        self.client = None
        ep = _EPOCH
        start = r.client_start if r is not None else self.start
        self.hooks.tracer.append(_span(st.tidf, client, self.sid, start + ep, end + ep, _LOCAL, rest))


if TYPE_CHECKING:
    from ..engine import Hooks

    def _conforms(h: SpanHooks) -> Hooks:  # mypy proves SpanHooks implements the engine's protocol
        return h
