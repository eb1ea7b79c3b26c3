"""The engine's hooks (:class:`graph_router.instrument.Hooks`) on OpenTelemetry spans and Prometheus metrics.

Parents are explicit where the engine allows it: the root node's parent is the request's SERVER span
(``ctx.span``); node and step scopes make their span current in the OpenTelemetry context of the task
they run in, and Ensemble steps are tasks created inside the node scope, so they inherit it. A scope
is opened and closed in the same task (the engine's frame), so attaching and detaching pair up.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry.trace import (
    Span,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    get_current_span,
    set_span_in_context,
)

from .tracing import (
    ATTEMPT,
    BACKEND,
    BRANCH,
    CAUSE,
    ERROR_TYPE,
    GRAPH,
    HTTP_STATUS,
    NODE,
    RETRY_COUNT,
    ROUTER_TYPE,
    STEP,
    TARGET,
    RequestState,
    replace_traceparent,
    traceparent,
    with_trace_headers,
)

if TYPE_CHECKING:
    from ..compiler import CompiledNode, CompiledStep
    from ..engine import Context
    from ..instrument import Hooks
    from .metrics import Metrics

TIMEOUT_CODES = frozenset({"step_timeout", "backend_timeout"})
_ERR = StatusCode.ERROR


class EngineHooks:
    """Spans when ``tracer`` is set, metrics when ``metrics`` is set (at least one of them)."""

    __slots__ = ("metrics", "tracer")

    def __init__(self, tracer: Tracer | None, metrics: Metrics | None) -> None:
        self.tracer = tracer
        self.metrics = metrics

    def tracer_for(self, ctx: Context) -> Tracer | None:
        """The tracer, unless the sampler dropped this request's SERVER span.

        Inner spans of a dropped request would be dropped too (parent-based sampling, the default),
        so they are not created at all: a sampled-out request costs one non-recording span.
        """
        state = ctx.span
        if isinstance(state, RequestState) and state.span is not None and not state.recording:
            return None
        return self.tracer

    def node(self, ctx: Context, node: CompiledNode) -> NodeScope | None:
        tracer = self.tracer_for(ctx)
        return NodeScope(tracer, ctx, node) if tracer is not None else None

    def step(self, ctx: Context, node: CompiledNode, step: CompiledStep) -> StepScope:
        return StepScope(self, ctx, node, step)

    def branch(self, ctx: Context, node: CompiledNode, step: CompiledStep | None) -> None:
        label = step.label if step is not None else "none"
        if self.metrics is not None:
            self.metrics.branch_taken(ctx.graph.name, node.name, label, node.router_type.value)
        if self.tracer_for(ctx) is not None:
            get_current_span().set_attribute(BRANCH, label)  # the node's span (branch runs in its scope)


class MetricsHooks:
    """Metrics without tracing: nothing per node, one small object per step."""

    __slots__ = ("keys", "metrics")

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        #: step -> its metric labels (graph, node, step, target), built once
        self.keys: dict[CompiledStep, tuple[str, str, str, str]] = {}

    def node(self, ctx: Context, node: CompiledNode) -> None:
        return None

    def step(self, ctx: Context, node: CompiledNode, step: CompiledStep) -> MetricsStep:
        return MetricsStep(self.metrics, self.keys, ctx, node, step, ctx.headers)

    def branch(self, ctx: Context, node: CompiledNode, step: CompiledStep | None) -> None:
        label = step.label if step is not None else "none"
        self.metrics.branch_taken(ctx.graph.name, node.name, label, node.router_type.value)


class MetricsStep:
    """One step's latency, errors and retries (``metrics`` None: only carries ``headers``)."""

    __slots__ = ("ctx", "headers", "keys", "metrics", "node", "step", "t0")

    def __init__(self, metrics: Metrics | None, keys: dict[CompiledStep, tuple[str, str, str, str]], ctx: Context,
                 node: CompiledNode, step: CompiledStep, headers: list[tuple[str, str]]) -> None:
        self.metrics, self.keys, self.ctx, self.node, self.step, self.headers = metrics, keys, ctx, node, step, headers
        self.t0 = time.perf_counter()

    def on_retry(self, attempt: int, outcome: str, delay: float) -> None:
        if self.metrics is not None:
            retry_metrics(self.metrics, self.step, outcome)

    def end(self, status: int | None, exc: BaseException | None) -> None:
        metrics = self.metrics
        if metrics is None:
            return
        duration = time.perf_counter() - self.t0
        code = error_of(exc, self.ctx)[0] if exc is not None else None
        if code != "cancelled":
            labels = self.keys.get(self.step) or cache_labels(self.keys, self.ctx.graph.name, self.node, self.step)
            step_metrics(metrics, labels, self.step, duration, code, status)


def cache_labels(keys: dict[CompiledStep, tuple[str, str, str, str]], graph: str, node: CompiledNode,
                 step: CompiledStep) -> tuple[str, str, str, str]:
    """:func:`metric_labels`, remembered per step in ``keys`` (cleared past 4096: graph reloads make new steps)."""
    if len(keys) > 4096:
        keys.clear()
    labels = keys[step] = metric_labels(graph, node, step)
    return labels


def metric_labels(graph: str, node: CompiledNode, step: CompiledStep) -> tuple[str, str, str, str]:
    """A step's labels on the step metrics: graph, node, step, target (without a URL's query)."""
    return (graph, node.name, step.label, public(step.target))


def public(target: str) -> str:
    """A target fit for span attributes and metric labels: a URL's query (it may hold a key) is dropped."""
    return target if "?" not in target else target.split("?", 1)[0]


def step_attributes(graph: str, node: CompiledNode, step: CompiledStep) -> dict[str, Any]:
    return {GRAPH: graph, NODE: node.name, ROUTER_TYPE: node.router_type.value, STEP: step.label,
            TARGET: public(step.target)}


def retry_metrics(metrics: Metrics, step: CompiledStep, outcome: str) -> None:
    """Count an attempt that is about to be retried (and whether it timed out)."""
    target = public(step.target)
    if outcome in TIMEOUT_CODES:
        metrics.timed_out(target, outcome)
    metrics.retried(target)


def step_metrics(metrics: Metrics, labels: tuple[str, str, str, str], step: CompiledStep, duration: float,
                 code: str | None, status: int | None) -> None:
    """A finished step's latency and its error, if any (``code``: what ended it; ``status``: the answer)."""
    error = None
    if step.backend is not None:  # a nested node's failure is counted where it happened
        if code is not None:
            error = code
            if code in TIMEOUT_CODES or code == "graph_timeout":
                metrics.timed_out(labels[3], code)
        elif status is not None and status >= 400:
            error = f"http_{status}"
    metrics.step_finished(labels, duration, error)


def _client_span(tracer: Tracer, parent: Span, step: CompiledStep, attempt: int, start: int | None) -> Span:
    backend = public(step.backend.target) if step.backend is not None else ""
    target = public(step.target)
    return tracer.start_span(f"call {target}", context=set_span_in_context(parent), kind=SpanKind.CLIENT,
                             attributes={TARGET: target, BACKEND: backend, ATTEMPT: attempt},
                             start_time=start)


def error_of(exc: BaseException, ctx: Context) -> tuple[str, str]:
    """(code, cause) of what ended a scope; a cancellation past the graph deadline is ``graph_timeout``."""
    if isinstance(exc, asyncio.CancelledError):
        deadline = ctx.deadline
        if deadline is not None and asyncio.get_running_loop().time() >= deadline:
            return "graph_timeout", f"graph timeout of {ctx.graph.timeout}s exceeded"
        return "cancelled", "cancelled (a sibling step decided the node, or the client went away)"
    return str(getattr(exc, "code", type(exc).__name__)), str(getattr(exc, "cause", exc))


class NodeScope:
    """One node's span; current (in this task's context) while the node runs."""

    __slots__ = ("ctx", "span", "token")

    def __init__(self, tracer: Tracer, ctx: Context, node: CompiledNode) -> None:
        self.ctx = ctx
        parent = None
        state = ctx.span
        if node is ctx.graph.root and isinstance(state, RequestState) and state.span is not None:
            parent = set_span_in_context(state.span)
        self.span = span = tracer.start_span(
            f"node {node.name}", context=parent,
            attributes={GRAPH: ctx.graph.name, NODE: node.name, ROUTER_TYPE: node.router_type.value})
        self.token = otel_context.attach(set_span_in_context(span))

    def end(self, exc: BaseException | None) -> None:
        otel_context.detach(self.token)
        if exc is not None:
            code, cause = error_of(exc, self.ctx)
            self.span.set_attributes({ERROR_TYPE: code, CAUSE: cause})
            self.span.set_status(Status(_ERR, cause))
        self.span.end()


class StepScope:
    """One step: its span (and one CLIENT span per backend attempt) and its latency, errors, retries."""

    __slots__ = ("attempts", "client", "ctx", "headers", "hooks", "node", "span", "step", "t0", "token")

    def __init__(self, hooks: EngineHooks, ctx: Context, node: CompiledNode, step: CompiledStep) -> None:
        self.hooks, self.ctx, self.node, self.step = hooks, ctx, node, step
        self.span: Span | None = None
        self.client: Span | None = None
        self.attempts = 1
        self.headers = ctx.headers
        state = ctx.span
        tracer = hooks.tracer
        if tracer is not None and isinstance(state, RequestState) and state.span is not None and not state.recording:
            # sampled out: the backend still continues the trace (and learns it is not sampled)
            self.headers = with_trace_headers(ctx.headers, state.span.get_span_context())
        elif tracer is not None:
            self.span = span = tracer.start_span(f"step {step.label}",
                                                 attributes=step_attributes(ctx.graph.name, node, step))
            if step.backend is not None:
                self.client = client = _client_span(tracer, span, step, 1, None)
                self.headers = with_trace_headers(ctx.headers, client.get_span_context())
            self.token = otel_context.attach(set_span_in_context(span))
        self.t0 = time.perf_counter()

    def on_retry(self, attempt: int, outcome: str, delay: float) -> None:
        self.attempts = attempt + 1
        metrics = self.hooks.metrics
        if metrics is not None:
            retry_metrics(metrics, self.step, outcome)
        client = self.client
        if client is None:
            return
        _outcome(client, outcome)
        client.end()
        span, tracer = self.span, self.hooks.tracer
        assert span is not None and tracer is not None
        span.add_event("retry", {ATTEMPT: attempt, "graph_router.outcome": outcome,
                                 "graph_router.retry.delay_s": delay})
        # the next attempt starts after the backoff sleep; its traceparent goes out in the same header list
        nxt = _client_span(tracer, span, self.step, attempt + 1, time.time_ns() + int(delay * 1e9))
        replace_traceparent(self.headers, traceparent(nxt.get_span_context()))
        self.client = nxt

    def end(self, status: int | None, exc: BaseException | None) -> None:
        duration = time.perf_counter() - self.t0
        code = cause = None
        if exc is not None:
            code, cause = error_of(exc, self.ctx)
        metrics = self.hooks.metrics
        if metrics is not None and code != "cancelled":
            step_metrics(metrics, metric_labels(self.ctx.graph.name, self.node, self.step), self.step, duration, code,
                         status)
        if self.span is not None:
            otel_context.detach(self.token)
            self._end_spans(self.span, status, code, cause)

    def _end_spans(self, span: Span, status: int | None, code: str | None, cause: str | None) -> None:
        client = self.client
        if client is not None:
            if status is not None:
                _outcome(client, str(status))
            if code is not None:
                client.set_attributes({ERROR_TYPE: code, CAUSE: cause or code})
                client.set_status(Status(_ERR, cause))
            client.end()
            self.client = None
        attrs: dict[str, Any] = {}
        if self.step.backend is not None:
            attrs[RETRY_COUNT] = self.attempts - 1
        if status is not None:
            attrs[HTTP_STATUS] = status
            if status >= 400:
                span.set_status(Status(_ERR))
        if code is not None:
            attrs[ERROR_TYPE] = code
            attrs[CAUSE] = cause
            span.set_status(Status(_ERR, cause))
        span.set_attributes(attrs)
        span.end()


def _outcome(client: Span, outcome: str) -> None:
    """What one attempt got: an HTTP status, or an error code (both mark the span as failed)."""
    if outcome.isdigit():
        status = int(outcome)
        client.set_attribute(HTTP_STATUS, status)
        if status >= 400:
            client.set_status(Status(_ERR))
    else:
        client.set_attribute(ERROR_TYPE, outcome)
        client.set_status(Status(_ERR, outcome))


if TYPE_CHECKING:
    def _conforms(h: EngineHooks, m: MetricsHooks) -> tuple[Hooks, Hooks]:  # mypy: both implement the protocol
        return h, m
