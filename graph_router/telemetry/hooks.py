"""The engine's hooks (:class:`graph_router.instrument.Hooks`) on OpenTelemetry spans and Prometheus metrics.

Parents are explicit where the engine allows it: the root node's parent is the request's SERVER span
(``ctx.span``); node and step scopes make their span current in the OpenTelemetry context of the task
they run in, and Ensemble steps are tasks created inside the node scope, so they inherit it.
``outgoing_headers`` runs just before the engine enters the step scope (no await in between), so it
opens the step span and the first attempt's CLIENT span and hands them to the scope.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import nullcontext
from contextvars import ContextVar
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
    set_traceparent,
    with_trace_headers,
)

if TYPE_CHECKING:
    from types import TracebackType

    from ..compiler import CompiledNode, CompiledStep
    from ..engine import Context
    from ..instrument import Hooks
    from .metrics import Metrics

_NULL: nullcontext[None] = nullcontext()
_TIMEOUT_CODES = frozenset({"step_timeout", "backend_timeout"})
_ERR = StatusCode.ERROR


class _Pending:
    """A step span opened by ``outgoing_headers`` and not yet adopted by its step scope."""

    __slots__ = ("client", "ctx", "headers", "span", "step")

    def __init__(self, ctx: Context, step: CompiledStep, span: Span, client: Span,
                 headers: list[tuple[str, str]]) -> None:
        self.ctx, self.step, self.span, self.client, self.headers = ctx, step, span, client, headers


_pending: ContextVar[_Pending | None] = ContextVar("graph_router_pending_step", default=None)


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

    def node(self, ctx: Context, node: CompiledNode) -> NodeScope | nullcontext[None]:
        tracer = self.tracer_for(ctx)
        if tracer is None:
            return _NULL
        return NodeScope(tracer, ctx, node)

    def step(self, ctx: Context, node: CompiledNode, step: CompiledStep) -> StepScope | NoStep:
        if self.metrics is None and self.tracer_for(ctx) is None:
            return _NO_STEP  # tracing only, and this request was sampled out
        return StepScope(self, ctx, node, step)

    def branch(self, ctx: Context, node: CompiledNode, step: CompiledStep | None) -> None:
        label = step.label if step is not None else "none"
        if self.metrics is not None:
            self.metrics.branch_taken(ctx.graph.name, node.name, label, node.router_type.value)
        if self.tracer_for(ctx) is not None:
            get_current_span().set_attribute(BRANCH, label)  # the node's span (branch runs in its scope)

    def outgoing_headers(self, ctx: Context, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        tracer = self.tracer
        if tracer is None:
            return headers
        state = ctx.span
        if isinstance(state, RequestState) and state.span is not None and not state.recording:
            # sampled out: the backend still continues the trace (and learns it is not sampled)
            return with_trace_headers(headers, state.span.get_span_context())
        node_name, label = ctx.current
        node = ctx.graph.nodes.get(node_name)
        step = next((s for s in node.steps if s.label == label), None) if node is not None else None
        if node is None or step is None:
            return headers
        span = tracer.start_span(f"step {label}", attributes=step_attributes(ctx.graph.name, node, step))
        client = _client_span(tracer, span, step, 1, None)
        out = with_trace_headers(headers, client.get_span_context())
        _pending.set(_Pending(ctx, step, span, client, out))
        return out


def public(target: str) -> str:
    """A target fit for span attributes and metric labels: a URL's query (it may hold a key) is dropped."""
    return target if "?" not in target else target.split("?", 1)[0]


def step_attributes(graph: str, node: CompiledNode, step: CompiledStep) -> dict[str, Any]:
    return {GRAPH: graph, NODE: node.name, ROUTER_TYPE: node.router_type.value, STEP: step.label,
            TARGET: public(step.target)}


def attempt_metrics(metrics: Metrics, step: CompiledStep, outcome: str, delay: float | None) -> None:
    """Count a backend attempt that timed out, or is about to be retried (``delay`` is set)."""
    if outcome in _TIMEOUT_CODES:
        metrics.timed_out(public(step.target), outcome)
    if delay is not None:
        metrics.retried(public(step.target))


def step_metrics(metrics: Metrics, ctx: Context, node: CompiledNode, step: CompiledStep, duration: float,
                 code: str | None, status: int | None) -> None:
    """A finished step's latency and its error, if any (``code``: what ended it; ``status``: the answer)."""
    error = None
    if step.backend is not None:  # a nested node's failure is counted where it happened
        if code is not None:
            error = code
            if code == "graph_timeout":
                metrics.timed_out(public(step.target), code)
        elif status is not None and status >= 400:
            error = f"http_{status}"
    metrics.step_finished((ctx.graph.name, node.name, step.label, public(step.target)), duration, error)


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


class NoStep:
    """A step scope that records nothing."""

    __slots__ = ()

    def __enter__(self) -> NoStep:
        return self

    def __exit__(self, et: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        return None

    def on_attempt(self, attempt: int, outcome: str, delay: float | None) -> None:
        return None

    def done(self, status: int, retries: int) -> None:
        return None


_NO_STEP = NoStep()


class NodeScope:
    """One node's span; current (in this task's context) while the node runs."""

    __slots__ = ("ctx", "node", "span", "token", "tracer")

    def __init__(self, tracer: Tracer, ctx: Context, node: CompiledNode) -> None:
        self.tracer, self.ctx, self.node = tracer, ctx, node

    def __enter__(self) -> Span:
        ctx, node = self.ctx, self.node
        parent = None
        state = ctx.span
        if node is ctx.graph.root and isinstance(state, RequestState) and state.span is not None:
            parent = set_span_in_context(state.span)
        self.span = span = self.tracer.start_span(
            f"node {node.name}", context=parent,
            attributes={GRAPH: ctx.graph.name, NODE: node.name, ROUTER_TYPE: node.router_type.value})
        self.token = otel_context.attach(set_span_in_context(span))
        return span

    def __exit__(self, et: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        otel_context.detach(self.token)
        if exc is not None:
            code, cause = error_of(exc, self.ctx)
            self.span.set_attributes({ERROR_TYPE: code, CAUSE: cause})
            self.span.set_status(Status(_ERR, cause))
        self.span.end()


class StepScope:
    """One step: its span (and one CLIENT span per backend attempt) and its latency, errors, retries."""

    __slots__ = ("attempts", "client", "ctx", "headers", "hooks", "node", "span", "status", "step", "t0",
                 "token")

    def __init__(self, hooks: EngineHooks, ctx: Context, node: CompiledNode, step: CompiledStep) -> None:
        self.hooks, self.ctx, self.node, self.step = hooks, ctx, node, step
        self.span: Span | None = None
        self.client: Span | None = None
        self.headers: list[tuple[str, str]] | None = None
        self.status: int | None = None
        self.attempts = 0

    def __enter__(self) -> StepScope:
        tracer = self.hooks.tracer_for(self.ctx)
        if tracer is not None:
            p = _pending.get()
            if p is not None:
                _pending.set(None)
                if p.ctx is self.ctx and p.step.label == self.step.label:  # ours: nothing ran in between
                    self.span, self.client, self.headers = p.span, p.client, p.headers
                    if p.step is not self.step:  # two steps share a label: the lookup guessed the other one
                        self._relabel(p.span, p.client)
                else:  # not ours (cannot happen with the engine's ordering): close it rather than leak it
                    p.client.end()
                    p.span.end()
            if self.span is None:
                self.span = tracer.start_span(f"step {self.step.label}",
                                              attributes=step_attributes(self.ctx.graph.name, self.node, self.step))
            self.token = otel_context.attach(set_span_in_context(self.span))
        self.t0 = time.perf_counter()
        return self

    def _relabel(self, span: Span, client: Span) -> None:
        span.set_attributes(step_attributes(self.ctx.graph.name, self.node, self.step))
        target = public(self.step.target)
        client.update_name(f"call {target}")
        backend = public(self.step.backend.target) if self.step.backend is not None else ""
        client.set_attributes({TARGET: target, BACKEND: backend})

    def on_attempt(self, attempt: int, outcome: str, delay: float | None) -> None:
        self.attempts = attempt
        metrics = self.hooks.metrics
        if metrics is not None:
            attempt_metrics(metrics, self.step, outcome, delay)
        client = self.client
        if client is None:
            return
        if outcome.isdigit():
            status = int(outcome)
            client.set_attribute(HTTP_STATUS, status)
            if status >= 400:
                client.set_status(Status(_ERR))
        else:
            client.set_attribute(ERROR_TYPE, outcome)
            client.set_status(Status(_ERR, outcome))
        if delay is None:
            return  # the last attempt's span ends with the step (it gets the error cause, if any)
        client.end()
        span, tracer = self.span, self.hooks.tracer
        assert span is not None and tracer is not None
        span.add_event("retry", {ATTEMPT: attempt, "graph_router.outcome": outcome,
                                 "graph_router.retry.delay_s": delay})
        # the next attempt starts after the backoff sleep; its traceparent goes out in the same header list
        nxt = _client_span(tracer, span, self.step, attempt + 1, time.time_ns() + int(delay * 1e9))
        if self.headers is not None:
            set_traceparent(self.headers, nxt.get_span_context())
        self.client = nxt

    def done(self, status: int, retries: int) -> None:
        self.status = status

    def __exit__(self, et: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        duration = time.perf_counter() - self.t0
        code = cause = None
        if exc is not None:
            code, cause = error_of(exc, self.ctx)
        metrics = self.hooks.metrics
        if metrics is not None and code != "cancelled":
            step_metrics(metrics, self.ctx, self.node, self.step, duration, code, self.status)
        if self.span is not None:
            otel_context.detach(self.token)
            self._end_spans(self.span, code, cause)

    def _end_spans(self, span: Span, code: str | None, cause: str | None) -> None:
        client = self.client
        if client is not None:
            if code is not None:
                client.set_attributes({ERROR_TYPE: code, CAUSE: cause or code})
                client.set_status(Status(_ERR, cause))
            client.end()
            self.client = None
        attrs: dict[str, Any] = {}
        if self.step.backend is not None:
            attrs[RETRY_COUNT] = max(self.attempts - 1, 0)
        if self.status is not None:
            attrs[HTTP_STATUS] = self.status
            if self.status >= 400:
                span.set_status(Status(_ERR))
        if code is not None:
            attrs[ERROR_TYPE] = code
            attrs[CAUSE] = cause
            span.set_status(Status(_ERR, cause))
        span.set_attributes(attrs)
        span.end()


if TYPE_CHECKING:
    def _conforms(h: EngineHooks) -> Hooks:  # mypy proves EngineHooks implements the engine's protocol
        return h
