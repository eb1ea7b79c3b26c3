"""Traces without the OpenTelemetry SDK on the request path: spans are written as OTLP bytes as they end.

The same spans, names and attributes as the SDK path (:mod:`.hooks`, docs/observability.md): a SERVER
span per request, a span per node and per step, a CLIENT span per backend attempt; W3C ``traceparent``
in and out; the standard samplers. What the SDK does per span (a Span object, attribute validation,
locks, a processor queue, protobuf objects in the exporter) costs 15-30 us per span in CPython; here a
span is one ``struct.pack`` over bytes prepared once per node or step, about 1 us.

Scopes nest through a ContextVar (Ensemble steps are tasks created inside the node scope and inherit
it). ``outgoing_headers`` runs just before the engine enters the step scope, with no await between,
so it picks the step's and the first attempt's span ids and leaves them on the request for the scope.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Mapping
from contextlib import nullcontext
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

from . import otlp
from .hooks import _NO_STEP, _NULL, NoStep, attempt_metrics, error_of, step_metrics
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
)

if TYPE_CHECKING:
    from types import TracebackType

    from ..compiler import CompiledNode, CompiledStep
    from ..engine import Context
    from ..http.messages import HttpRequest
    from .metrics import Metrics

_TRACEPARENT = re.compile(r"^[ \t]*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:(-.*)|[ \t]*)$")
_MAX_TRACESTATE = 512  # W3C: at least this much must be propagated; longer values are dropped, as the SDK does
_CACHE_LIMIT = 4096  # prepared span parts (graph reloads make new nodes; the cache is rebuilt past this)
_getrandbits = random.getrandbits  # the module's generator is reseeded in forked workers
_time_ns = time.time_ns


class Sampler:
    """The SDK's built-in samplers, chosen by ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG``."""

    KINDS = ("always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off",
             "parentbased_traceidratio")

    def __init__(self, kind: str = "parentbased_always_on", ratio: float = 1.0) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"OTEL_TRACES_SAMPLER={kind!r}: expected one of {', '.join(self.KINDS)}")
        self.kind = kind
        self.parent_based = kind.startswith("parentbased_")
        root = kind.removeprefix("parentbased_")
        self.ratio = ratio if root == "traceidratio" else (1.0 if root == "always_on" else 0.0)
        self.bound = round(self.ratio * (1 << 64))  # as the SDK's TraceIdRatioBased: lower 64 bits of the id

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Sampler:
        kind = env.get("OTEL_TRACES_SAMPLER", "").strip().lower() or "parentbased_always_on"
        raw = env.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
        ratio = 1.0
        if "traceidratio" in kind and raw:
            try:
                ratio = float(raw)
            except ValueError:
                ratio = -1.0
            if not 0.0 <= ratio <= 1.0:
                raise ValueError(f"OTEL_TRACES_SAMPLER_ARG={raw!r}: expected a ratio between 0 and 1")
        return cls(kind, ratio)

    def sample(self, parent_sampled: bool | None, trace_low: int) -> bool:
        """``parent_sampled`` is None when the request has no (valid) incoming ``traceparent``."""
        if self.parent_based and parent_sampled is not None:
            return parent_sampled
        return trace_low < self.bound


class TraceState:
    """One request's trace: ids, the sampling decision, and the SERVER span's start."""

    __slots__ = ("base", "graph", "hex", "method", "parent", "path", "pending", "sampled", "sid", "src", "start",
                 "tidf", "tp_prefix", "tp_suffix", "tracestate")

    def __init__(self, graph: str, tid: bytes, parent: bytes | None, sampled: bool, tracestate: str | None,
                 method: str, path: str) -> None:
        self.graph = graph
        self.hex = tid.hex()
        self.tidf = otlp.trace_id_field(tid)
        self.parent = parent
        self.sampled = sampled
        self.tracestate = tracestate
        self.method, self.path = method, path
        self.sid = (_getrandbits(64) or 1).to_bytes(8, "big")
        self.start = _time_ns()
        self.tp_prefix = f"00-{self.hex}-"
        self.tp_suffix = "-01" if sampled else "-00"
        self.pending: tuple[str, bytes, bytes, list[tuple[str, str]]] | None = None
        self.src: list[tuple[str, str]] | None = None
        self.base: list[tuple[str, str]] = []

    def headers(self, headers: list[tuple[str, str]], span_id: bytes) -> list[tuple[str, str]]:
        """``headers`` for one backend call: any ``traceparent``/``tracestate`` replaced by this trace's."""
        if self.src is not headers:  # the engine passes the same list for every call of a request
            self.src = headers
            base = [(k, v) for k, v in headers if k.lower() not in ("traceparent", "tracestate")]
            if self.tracestate:
                base.append(("tracestate", self.tracestate))
            self.base = base
        return [*self.base, ("traceparent", self.tp_prefix + span_id.hex() + self.tp_suffix)]


def parse_traceparent(req: HttpRequest) -> tuple[bytes, bytes, bool, str | None] | None:
    """(trace id, parent span id, sampled, tracestate) of a valid incoming W3C context, else None."""
    value = tracestate = None
    for k, v in req.headers:  # names are lower-case (HttpRequest)
        if k == "traceparent":
            if value is None:
                value = v
        elif k == "tracestate":
            tracestate = v if tracestate is None else f"{tracestate},{v}"
    if value is None or len(value) > 512:
        return None
    m = _TRACEPARENT.match(value)
    if m is None:
        return None
    version, trace, parent, flags, rest = m.groups()
    if version == "ff" or (version == "00" and rest) or trace == "0" * 32 or parent == "0" * 16:
        return None
    if tracestate is not None and len(tracestate) > _MAX_TRACESTATE:
        tracestate = None
    return bytes.fromhex(trace), bytes.fromhex(parent), bool(int(flags, 16) & 1), tracestate


class SpanExporter(Protocol):
    """Where finished spans go (:class:`.export.BatchExporter` in production; tests keep them in memory)."""

    def emit(self, span: bytes) -> None:
        """Take one encoded span (a ``ScopeSpans.spans`` field); called on the request path."""

    async def flush(self) -> None:
        """Export what was emitted so far."""

    async def aclose(self) -> None:
        """Flush (bounded) and stop."""


class OtlpTracer:
    """Starts and ends request traces, prepares span parts, and hands finished spans to ``exporter``."""

    def __init__(self, exporter: SpanExporter, sampler: Sampler | None = None) -> None:
        self.exporter = exporter
        self.emit = exporter.emit
        self.sampler = sampler or Sampler()
        self._parts: dict[object, bytes] = {}
        self._steps: dict[tuple[CompiledNode, CompiledStep], tuple[bytes, bytes]] = {}
        self._server: dict[str, bytes] = {}
        self._ints: dict[tuple[str, int], bytes] = {}
        self._strs: dict[tuple[str, str], bytes] = {}

    def start(self, graph: str, req: HttpRequest) -> TraceState:
        incoming = parse_traceparent(req)
        path = req.target.split("?", 1)[0]
        if incoming is None:
            tid = (_getrandbits(128) or 1).to_bytes(16, "big")
            sampled = self.sampler.sample(None, int.from_bytes(tid[8:], "big"))
            return TraceState(graph, tid, None, sampled, None, req.method, path)
        tid, parent, parent_sampled, tracestate = incoming
        sampled = self.sampler.sample(parent_sampled, int.from_bytes(tid[8:], "big"))
        return TraceState(graph, tid, parent, sampled, tracestate, req.method, path)

    def finish(self, st: TraceState, status: int) -> None:
        if not st.sampled:
            return
        static = self._server.get(st.graph)
        if static is None:
            static = self._server[st.graph] = self._cached(self._server, otlp.static_part(
                f"graph {st.graph}", otlp.SERVER, {GRAPH: st.graph}))
        rest = static + self.str_attr(HTTP_METHOD, st.method) + otlp.attribute(URL_PATH, st.path) \
            + self.int_attr(HTTP_STATUS, status)
        if status >= 500:
            rest += otlp.error_status(None)
        if st.tracestate:
            rest += otlp.trace_state(st.tracestate)
        flags = otlp.FLAGS_REMOTE if st.parent is not None else otlp.FLAGS_LOCAL
        self.emit(otlp.span(st.tidf, st.sid, st.parent, st.start, _time_ns(), flags, rest))

    # --- prepared parts ------------------------------------------------------------------------

    def _cached(self, cache: dict[Any, bytes], value: bytes) -> bytes:
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
        return value

    def int_attr(self, key: str, value: int) -> bytes:
        b = self._ints.get((key, value))
        if b is None:
            b = self._ints[(key, value)] = self._cached(self._ints, otlp.attribute(key, value))
        return b

    def str_attr(self, key: str, value: str) -> bytes:
        b = self._strs.get((key, value))
        if b is None:
            b = self._strs[(key, value)] = self._cached(self._strs, otlp.attribute(key, value))
        return b

    def node_part(self, graph: str, node: CompiledNode) -> bytes:
        b = self._parts.get(node)
        if b is None:
            b = self._parts[node] = self._cached(self._parts, otlp.static_part(
                f"node {node.name}", otlp.INTERNAL,
                {GRAPH: graph, NODE: node.name, ROUTER_TYPE: node.router_type.value}))
        return b

    def step_part(self, graph: str, node: CompiledNode, step: CompiledStep) -> tuple[bytes, bytes]:
        """(step span part, CLIENT span part) of ``step`` in ``node``."""
        key = (node, step)
        pair = self._steps.get(key)
        if pair is None:
            from .hooks import public, step_attributes

            if len(self._steps) > _CACHE_LIMIT:
                self._steps.clear()
            target = public(step.target)
            backend = public(step.backend.target) if step.backend is not None else ""
            pair = self._steps[key] = (
                otlp.static_part(f"step {step.label}", otlp.INTERNAL, step_attributes(graph, node, step)),
                otlp.static_part(f"call {target}", otlp.CLIENT, {TARGET: target, BACKEND: backend}))
        return pair

    async def aclose(self) -> None:
        await self.exporter.aclose()


_current: ContextVar[NodeSpan | StepSpan | None] = ContextVar("graph_router_otlp_scope", default=None)


def current_trace_id() -> str | None:
    """Hex trace id of the request whose node or step runs now (for log records), or None."""
    scope = _current.get()
    return scope.st.hex if scope is not None and scope.st is not None else None


class SpanHooks:
    """The engine's hooks (:class:`graph_router.instrument.Hooks`) for :class:`OtlpTracer`, plus metrics."""

    __slots__ = ("metrics", "tracer")

    def __init__(self, tracer: OtlpTracer, metrics: Metrics | None) -> None:
        self.tracer = tracer
        self.metrics = metrics

    def node(self, ctx: Context, node: CompiledNode) -> NodeSpan | nullcontext[None]:
        st = ctx.span
        if not isinstance(st, TraceState) or not st.sampled:
            return _NULL
        return NodeSpan(self.tracer, st, ctx, node)

    def step(self, ctx: Context, node: CompiledNode, step: CompiledStep) -> StepSpan | NoStep:
        st = ctx.span
        if not isinstance(st, TraceState) or not st.sampled:
            if self.metrics is None:
                return _NO_STEP
            st = None
        return StepSpan(self, st, ctx, node, step)

    def branch(self, ctx: Context, node: CompiledNode, step: CompiledStep | None) -> None:
        label = step.label if step is not None else "none"
        if self.metrics is not None:
            self.metrics.branch_taken(ctx.graph.name, node.name, label, node.router_type.value)
        st = ctx.span
        if isinstance(st, TraceState) and st.sampled:
            scope = _current.get()  # the node's span: branch() runs in its scope
            if isinstance(scope, NodeSpan) and scope.node is node:
                scope.branch = label

    def outgoing_headers(self, ctx: Context, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        st = ctx.span
        if not isinstance(st, TraceState):
            return headers
        client = (_getrandbits(64) or 1).to_bytes(8, "big")
        out = st.headers(headers, client)
        if st.sampled:
            st.pending = (ctx.current[1], (_getrandbits(64) or 1).to_bytes(8, "big"), client, out)
        return out


class NodeSpan:
    """One node's span; current (in this task's context) while the node runs."""

    __slots__ = ("branch", "ctx", "node", "parent", "sid", "st", "start", "token", "tracer")
    sid: bytes
    parent: bytes

    def __init__(self, tracer: OtlpTracer, st: TraceState, ctx: Context, node: CompiledNode) -> None:
        self.tracer, self.st, self.ctx, self.node = tracer, st, ctx, node
        self.branch: str | None = None

    def __enter__(self) -> NodeSpan:
        outer = _current.get()
        self.parent = outer.sid if outer is not None and outer.st is self.st else self.st.sid
        self.sid = (_getrandbits(64) or 1).to_bytes(8, "big")
        self.token = _current.set(self)
        self.start = _time_ns()
        return self

    def __exit__(self, et: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        end = _time_ns()
        _current.reset(self.token)
        tracer, st = self.tracer, self.st
        rest = tracer.node_part(st.graph, self.node)
        if self.branch is not None:
            rest += tracer.str_attr(BRANCH, self.branch)
        if exc is not None:
            code, cause = error_of(exc, self.ctx)
            rest += otlp.attribute(ERROR_TYPE, code) + otlp.attribute(CAUSE, cause) + otlp.error_status(cause)
        tracer.emit(otlp.span(st.tidf, self.sid, self.parent, self.start, end, otlp.FLAGS_LOCAL, rest))


class StepSpan:
    """One step: its span and a CLIENT span per backend attempt (when sampled), and its metrics."""

    __slots__ = ("attempts", "client", "client_start", "ctx", "events", "headers", "hooks", "node", "outcome",
                 "parent", "sid", "st", "start", "status", "step", "t0", "token")
    sid: bytes
    parent: bytes
    headers: list[tuple[str, str]]

    def __init__(self, hooks: SpanHooks, st: TraceState | None, ctx: Context, node: CompiledNode,
                 step: CompiledStep) -> None:
        self.hooks, self.st, self.ctx, self.node, self.step = hooks, st, ctx, node, step
        self.status: int | None = None
        self.attempts = 0
        self.client: bytes | None = None
        self.outcome: str | None = None
        self.events: bytes = b""

    def __enter__(self) -> StepSpan:
        st = self.st
        if st is not None:
            outer = _current.get()
            self.parent = outer.sid if outer is not None and outer.st is st else st.sid
            p = st.pending
            if p is not None and p[0] == self.step.label:
                st.pending = None
                self.sid, self.client, self.headers = p[1], p[2], p[3]
            else:  # a nested node: no backend call of its own
                self.sid = (_getrandbits(64) or 1).to_bytes(8, "big")
            self.token = _current.set(self)
            self.start = self.client_start = _time_ns()
        self.t0 = time.perf_counter()
        return self

    def on_attempt(self, attempt: int, outcome: str, delay: float | None) -> None:
        self.attempts = attempt
        self.outcome = outcome
        metrics = self.hooks.metrics
        if metrics is not None:
            attempt_metrics(metrics, self.step, outcome, delay)
        if delay is None or self.client is None or self.st is None:
            return  # the last attempt's span ends with the step (it gets the error cause, if any)
        now = _time_ns()
        self._end_client(now, None, None)
        self.events += otlp.event(now, "retry", {ATTEMPT: attempt, "graph_router.outcome": outcome,
                                                 "graph_router.retry.delay_s": delay})
        # the next attempt starts after the backoff sleep; its traceparent goes out in the same header list
        nxt = self.client = (_getrandbits(64) or 1).to_bytes(8, "big")
        self.client_start = now + int(delay * 1e9)
        for i, (k, _) in enumerate(self.headers):
            if k == "traceparent":
                self.headers[i] = (k, self.st.tp_prefix + nxt.hex() + self.st.tp_suffix)

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
        st = self.st
        if st is None:
            return
        end = _time_ns()
        _current.reset(self.token)
        if self.client is not None:
            self._end_client(end, code, cause)
        tracer = self.hooks.tracer
        rest = tracer.step_part(st.graph, self.node, self.step)[0]
        if self.step.backend is not None:
            rest += tracer.int_attr(RETRY_COUNT, max(self.attempts - 1, 0))
        status = self.status
        if status is not None:
            rest += tracer.int_attr(HTTP_STATUS, status)
        if code is not None:
            rest += otlp.attribute(ERROR_TYPE, code) + otlp.attribute(CAUSE, cause or code) + otlp.error_status(cause)
        elif status is not None and status >= 400:
            rest += otlp.error_status(None)
        tracer.emit(otlp.span(st.tidf, self.sid, self.parent, self.start, end, otlp.FLAGS_LOCAL, rest + self.events))

    def _end_client(self, end: int, code: str | None, cause: str | None) -> None:
        """The current attempt's CLIENT span: its answer (``self.outcome``), or what ended the step."""
        st, client = self.st, self.client
        assert st is not None and client is not None
        tracer = self.hooks.tracer
        rest = tracer.step_part(st.graph, self.node, self.step)[1] + tracer.int_attr(ATTEMPT, self.attempts or 1)
        outcome, error = self.outcome, False
        if outcome is not None:
            if outcome.isdigit():
                status = int(outcome)
                rest += tracer.int_attr(HTTP_STATUS, status)
                error = status >= 400
            elif code is None:
                rest += otlp.attribute(ERROR_TYPE, outcome)
                code = cause = outcome
        if code is not None:
            rest += otlp.attribute(ERROR_TYPE, code) + otlp.attribute(CAUSE, cause or code) + otlp.error_status(cause)
        elif error:
            rest += otlp.error_status(None)
        self.client = None
        tracer.emit(otlp.span(st.tidf, client, self.sid, self.client_start, end, otlp.FLAGS_LOCAL, rest))
