"""Executes a compiled graph: Sequence, Switch, Ensemble and Splitter, with KServe's semantics.

The engine talks only to :class:`~graph_router.backend.Backend` objects; it imports no HTTP code and
no telemetry: instrumentation comes in through :class:`Hooks`, a protocol defined here. Everything
that can be decided at load time is decided in :mod:`graph_router.compiler`, whose compiled graph is
data this module interprets (:func:`run_node` dispatches on a node's router type).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from .aggregate import aggregate
from .backend import BackendRequest, call_with_retries
from .compiler import CompiledGraph, CompiledNode, CompiledStep
from .conditions import INVALID, JsonDoc
from .conditions.document import MergedDoc
from .errors import (
    AggregationError,
    BackendError,
    GraphRouterError,
    GraphTimeout,
    NoRouteMatched,
    Overloaded,
    envelope,
)
from .go_unmarshal import go_unmarshal_error
from .headers import header_safe
from .spec import Aggregate, RouterType
from .step_input import step_input

_rng = random.SystemRandom()
log = logging.getLogger("graph_router.engine")
JSON_CT = ("Content-Type", "application/json")
SEQUENCE, SWITCH, ENSEMBLE = RouterType.SEQUENCE, RouterType.SWITCH, RouterType.ENSEMBLE


@dataclass(slots=True)
class Result:
    """What a graph answered: status, body, headers and the route taken.

    The one response type from the engine out: the library returns it, and the HTTP server writes
    it as it is (it has the ``status``, ``headers`` and ``body`` a handler's answer needs).
    """

    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    route: str = ""
    #: The failure, when the router made this answer (the gRPC front maps it to a status code).
    error: GraphRouterError | None = None

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass(slots=True)
class Outcome:
    """What a step or node answered, inside the engine: a backend's answer with its body as a
    :class:`JsonDoc`, so conditions, selections and merges parse it at most once (a
    :class:`~graph_router.backend.BackendResponse` holds bytes). :func:`execute` turns the root's
    into the :class:`Result` it returns."""

    status: int
    doc: JsonDoc
    #: The backend's headers (for the ``Content-Type`` of an answer that is not JSON); None when
    #: the router made the document itself.
    headers: list[tuple[str, str]] | None = None


class NodeRecord(Protocol):
    """One node's execution, opened by :meth:`Hooks.node`."""

    def end(self, exc: BaseException | None) -> None:
        """The node finished (``exc``: what it raised, re-raised by the engine afterwards)."""


class StepRecord(Protocol):
    """One step, opened by :meth:`Hooks.step` just before it runs."""

    #: The headers to send to the step's backend (e.g. with this attempt's ``traceparent``).
    #: The engine sends this very list; a retry may update it in place.
    headers: list[tuple[str, str]]

    def on_retry(self, attempt: int, outcome: str, delay: float) -> None:
        """Attempt ``attempt`` (1-based) got ``outcome`` (status or error code); the next starts in ``delay`` s."""

    def end(self, status: int | None, exc: BaseException | None) -> None:
        """The step finished: its backend's final ``status`` (None for a nested node or on error), or ``exc``."""


class Hooks(Protocol):
    """The engine's instrumentation seam (``graph_router.telemetry`` implements it).

    Called only when configured (``hooks is None`` costs nothing); each scope is one call to open it
    and one to close it (no context manager, nothing per attempt unless one is retried): it sits on
    every request, and every Python call on it is measured.
    """

    def node(self, ctx: Context, node: CompiledNode) -> NodeRecord | None:
        """Open a node's scope (a span), or None when there is nothing to record for it."""

    def step(self, ctx: Context, node: CompiledNode, step: CompiledStep) -> StepRecord:
        """Open a step's scope (a span; latency and errors are recorded by ``end``)."""
        ...

    def branch(self, ctx: Context, node: CompiledNode, step: CompiledStep | None) -> None:
        """A Switch or Splitter chose ``step`` (None: a Switch matched nothing)."""


class Context:
    """Per-request state: the headers every backend call gets, the deadline, the route so far."""

    __slots__ = ("current", "deadline", "graph", "headers", "hooks", "incoming", "retry_until", "route", "span")

    def __init__(self, graph: CompiledGraph, headers: list[tuple[str, str]],
                 incoming: list[tuple[str, str]], deadline: float | None, hooks: Hooks | None,
                 retry_until: float | None = None) -> None:
        self.graph = graph
        self.headers = headers
        self.incoming = incoming
        #: The graph deadline (loop time), or None.
        self.deadline = deadline
        #: When retries stop waiting (loop time): the graph deadline or when the answer is due.
        self.retry_until = deadline if retry_until is None else retry_until
        self.route: list[str] = []
        self.current: tuple[str, str] = ("root", "")
        self.hooks = hooks
        self.span: Any = None

    def header(self, lname: str) -> str | None:
        for k, v in self.incoming:
            if k.lower() == lname:
                return v
        return None


async def execute(graph: CompiledGraph, body: bytes, incoming: list[tuple[str, str]],
                  backend_headers: list[tuple[str, str]], *, hooks: Hooks | None = None,
                  span: Any = None, answer_within: float | None = None,
                  deadline: float | None = None) -> Result:
    """Run ``graph`` on ``body``; failures become KServe's envelope (never an exception).

    ``answer_within`` (seconds) is when the caller needs the answer at the latest (the server's
    write timeout): no retry waits past it, so the last failure is answered in time. ``deadline``
    (loop time) is the caller's, e.g. a gRPC deadline; the graph's ``timeout`` still applies.
    """
    caller_deadline = retry_until = deadline
    # Python 3.11's get_running_loop() makes a getpid() system call: only ask when a bound needs the time.
    if graph.timeout or answer_within is not None:
        now = asyncio.get_running_loop().time()
        if graph.timeout:
            own = now + graph.timeout
            deadline = own if deadline is None else min(own, deadline)
        retry_until = deadline
        if answer_within is not None and (deadline is None or now + answer_within < deadline):
            retry_until = now + answer_within
    ctx = Context(graph, backend_headers, incoming, deadline, hooks, retry_until)
    ctx.span = span
    try:
        if deadline is None:
            out = await run_node(ctx, graph.root, JsonDoc(body))
        else:
            try:
                async with asyncio.timeout_at(deadline):
                    out = await run_node(ctx, graph.root, JsonDoc(body))
            except TimeoutError:
                node, step = ctx.current
                what = "the caller's deadline" if deadline == caller_deadline else \
                    f"graph timeout of {graph.timeout}s"
                raise GraphTimeout(f"{what} exceeded while node {node!r} step {step!r} was running",
                                   node=node, step=step) from None
    except GraphRouterError as err:
        return error_result(err, ctx.route)
    except (RecursionError, ValueError) as exc:  # JSON nested too deeply to select from or re-encode
        node, step = ctx.current
        return error_result(GraphRouterError(f"cannot process the JSON: {exc or type(exc).__name__}",
                                             node=node, step=step), ctx.route)
    except Exception:  # a bug of ours must still answer with the envelope, never escape
        log.exception("internal error running graph %r", graph.name)
        node, step = ctx.current
        return error_result(GraphRouterError("internal server error", node=node, step=step), ctx.route)
    body_out = out.doc.raw
    if out.doc.valid:
        headers = [JSON_CT]
    else:  # the backend's own type (KServe sniffs one from the bytes instead)
        ct = _content_type(out.headers)
        headers = [] if ct is None else [("Content-Type", ct)]
    return Result(out.status, body_out, headers, ",".join(ctx.route))


def _content_type(headers: list[tuple[str, str]] | None) -> str | None:
    for k, v in headers or ():
        if k.lower() == "content-type":
            return v
    return None


def error_result(err: GraphRouterError, route: list[str] | None = None) -> Result:
    headers = [JSON_CT]
    if isinstance(err, Overloaded):
        headers.append(("Retry-After", str(err.retry_after)))
    if err.node is not None:
        headers.append(("X-Graph-Error-Node", header_safe(err.node)))
        if err.step:
            headers.append(("X-Graph-Error-Step", header_safe(err.step)))
    return Result(err.status, envelope(err.cause), headers, ",".join(route or ()), err)


# --- steps -------------------------------------------------------------------------------------


async def run_step(ctx: Context, node: CompiledNode, step: CompiledStep, node_input: JsonDoc,
                   previous: JsonDoc | None = None) -> Outcome:
    """Run one step (a backend call, or a nested node) and record it in the route."""
    ctx.current = (node.name, step.label)
    ctx.route.append(step.route_entry)
    if step.needs_input_work:
        try:
            doc = step_input(step, node_input, previous)
        except GraphRouterError as err:
            raise err.at(node.name, step.label) from None
    else:
        doc = previous if step.uses_response and previous is not None else node_input
    # The step's scope (when instrumented) is opened and closed here, in this one frame: an extra
    # coroutine layer for the instrumented case costs more than the ``rec is not None`` tests.
    rec = ctx.hooks.step(ctx, node, step) if ctx.hooks is not None else None
    if step.node is not None:
        try:
            out = await run_node(ctx, step.node, doc)
        except NoRouteMatched as err:
            err.status = 500  # KServe: a nested node's error fails its parent with 500
            if rec is not None:
                rec.end(None, err)
            raise
        except BaseException as exc:
            if rec is not None:
                rec.end(None, exc)
            raise
        if rec is not None:
            rec.end(None, None)
        return out
    assert step.backend is not None
    req = BackendRequest(doc.raw, ctx.headers if rec is None else rec.headers, step.client_timeout)
    # extension: a sampled copy for the step's shadow; handed the real answer, never awaited
    shot = step.mirror.begin(req.body, req.headers, ctx.incoming) if step.mirror is not None else None
    try:
        resp, _ = await call_with_retries(
            step.backend, req, step.retry, deadline=ctx.retry_until, attempt_timeout=step.timeout,
            on_retry=None if rec is None else rec.on_retry)
    except (BackendError, GraphTimeout, Overloaded) as err:
        if shot is not None:
            shot.done(None)
        if rec is not None:
            rec.end(None, err)
        raise err.at(node.name, step.label) from None
    except BaseException as exc:
        if shot is not None:
            shot.done(None)
        if rec is not None:
            rec.end(None, exc)
        raise
    if step.warm is not None:  # the backend is up (prewarming skips it until it has been idle)
        step.warm.last = time.monotonic()
    if shot is not None:
        shot.done(resp)
    if rec is not None:
        rec.end(resp.status, None)
    return Outcome(resp.status, JsonDoc(resp.body), resp.headers)


# --- nodes -------------------------------------------------------------------------------------


async def run_node(ctx: Context, node: CompiledNode, doc: JsonDoc) -> Outcome:
    """Run ``node`` on ``doc``: the runner of its router type, in its hooks' scope when instrumented."""
    kind = node.router_type
    # identity tests: hashing an enum member for a dict lookup is a Python-level call
    runner = run_sequence if kind is SEQUENCE else run_ensemble if kind is ENSEMBLE else \
        run_switch if kind is SWITCH else run_splitter
    hooks = ctx.hooks
    rec = hooks.node(ctx, node) if hooks is not None else None
    if rec is None:
        return await runner(ctx, node, doc)
    try:
        out = await runner(ctx, node, doc)
    except BaseException as exc:
        rec.end(exc)
        raise
    rec.end(None)
    return out


async def run_sequence(ctx: Context, node: CompiledNode, doc: JsonDoc) -> Outcome:
    previous: Outcome | None = None
    for step in node.steps:
        if step.condition is not None:
            assert previous is not None  # validation rejects a condition on the first step
            if previous.doc.value is INVALID:
                raise GraphRouterError("invalid response", node=node.name, step=step.label)
            if not step.condition.matches(previous.doc):
                return Outcome(200, previous.doc)
        out = await run_step(ctx, node, step, doc, previous.doc if previous is not None else None)
        if step.hard and not 200 <= out.status <= 299:
            return out
        previous = out
    assert previous is not None
    return previous


async def run_switch(ctx: Context, node: CompiledNode, doc: JsonDoc) -> Outcome:
    if doc.value is not INVALID:
        for step in node.steps:
            if step.condition is not None and step.condition.matches(doc):
                if ctx.hooks is not None:
                    ctx.hooks.branch(ctx, node, step)
                return await run_step(ctx, node, step, doc)
    if ctx.hooks is not None:
        ctx.hooks.branch(ctx, node, None)
    raise NoRouteMatched(node=node.name)


async def run_splitter(ctx: Context, node: CompiledNode, doc: JsonDoc) -> Outcome:
    point = -1
    if node.sticky_header is not None:
        value = ctx.header(node.sticky_header)
        if value is not None:
            point = node.sticky_point(value)
    if point < 0:
        point = _rng.randrange(100)
    step = node.pick(point)
    if ctx.hooks is not None:
        ctx.hooks.branch(ctx, node, step)
    return await run_step(ctx, node, step, doc)


async def run_ensemble(ctx: Context, node: CompiledNode, doc: JsonDoc) -> Outcome:
    steps = node.steps
    results: list[Outcome | BaseException | None] = [None] * len(steps)
    decided = await _run_steps(ctx, node, doc, results)
    if isinstance(decided, BaseException):
        raise decided
    if isinstance(decided, Outcome):
        return decided
    outs = [r for r in results if isinstance(r, Outcome)]
    if node.aggregate is None or node.aggregate == Aggregate.MERGE:
        return Outcome(200, _merge(node, outs))
    try:
        doc = aggregate(node.aggregate, [(s, o.status, o.doc) for s, o in zip(steps, outs, strict=True)])
    except AggregationError as err:
        raise err.at(node.name, err.step) from None
    return Outcome(200, doc)


async def _run_steps(ctx: Context, node: CompiledNode, doc: JsonDoc,
                     results: list[Outcome | BaseException | None]) -> Outcome | BaseException | None:
    """Run every step concurrently, filling ``results``; return as soon as the step order decides.

    One future woken by the steps' done callbacks (``asyncio.wait`` in a loop re-registered its
    callbacks on every pending task at every completion). The decision only ever looks at the
    prefix of results in step order, so judging after each completion gives what judging a batch does.
    """
    steps = node.steps
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[Outcome | BaseException | None] = loop.create_future()
    tasks = [loop.create_task(run_step(ctx, node, s, doc)) for s in steps]
    left = len(tasks)

    def on_done(i: int, t: asyncio.Task[Outcome]) -> None:
        nonlocal left
        left -= 1
        if waiter.done():
            return
        try:
            exc = t.exception()  # CancelledError if someone else cancelled the step: the node fails with it
            results[i] = exc if exc is not None else _ensemble_check(node, steps[i], t.result())
            decided = _ensemble_decision(results, steps)
        except BaseException as err:
            waiter.set_exception(err)
            return
        if decided is not None or left == 0:
            waiter.set_result(decided)

    for i, t in enumerate(tasks):
        t.add_done_callback(functools.partial(on_done, i))
    try:
        return await waiter
    finally:
        pending = [t for t in tasks if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.wait(pending)


def _ensemble_check(node: CompiledNode, step: CompiledStep, out: Outcome) -> Outcome | BaseException:
    """KServe unmarshals every answer into a JSON object; anything else fails the node with 500.

    Merging keeps the answers' bytes, so a scan decides; an aggregation reads every answer's
    value anyway, so the check parses it (once, for both).
    """
    if node.aggregate is None or node.aggregate == Aggregate.MERGE:
        ok = out.doc.object_or_null()
    else:
        value = out.doc.value
        ok = value is None or isinstance(value, dict)
    if not ok:
        return GraphRouterError(go_unmarshal_error(out.doc.raw), node=node.name, step=step.label)
    return out


def _ensemble_decision(results: list[Outcome | BaseException | None],
                       steps: tuple[CompiledStep, ...]) -> Outcome | BaseException | None:
    """Results are judged in step order, as KServe does; decided as soon as the order allows."""
    for r, s in zip(results, steps, strict=True):
        if r is None:
            return None
        if isinstance(r, BaseException):
            return r
        if s.hard and not 200 <= r.status <= 299:
            return r
    return None


def _merge(node: CompiledNode, outs: list[Outcome]) -> JsonDoc:
    """Step name (or index) -> that step's JSON, bytes kept exactly, step order kept.

    Every part passed the Ensemble check, so the merged document is JSON; its value is built from
    the parts' values only if something looks at it.
    """
    parts = {key: o.doc for key, o in zip(node.keys, outs, strict=True)}
    raw = b"{" + b",".join(orjson.dumps(k) + b":" + d.raw.strip() for k, d in parts.items()) + b"}"
    return MergedDoc(raw, parts)
