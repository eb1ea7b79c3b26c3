"""Executes a compiled graph: Sequence, Switch, Ensemble and Splitter, with KServe's semantics.

The engine talks only to :class:`~graph_router.backend.Backend` objects; it imports no HTTP code.
Everything that can be decided at load time is decided in :mod:`graph_router.compiler`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson

from .aggregate import aggregate
from .backend import BackendRequest, call_with_retries
from .conditions import INVALID, JsonDoc
from .conditions.document import MergedDoc
from .errors import (
    AggregationError,
    BackendError,
    GraphRouterError,
    GraphTimeout,
    NoRouteMatched,
    Overloaded,
    RequestError,
    StepInputError,
    envelope,
)
from .gojson import unmarshal_object_error
from .selection import NOTHING
from .spec import Aggregate, RouterType

if TYPE_CHECKING:
    from .compiler import CompiledGraph, CompiledNode, CompiledStep
    from .hooks import Hooks

_rng = random.SystemRandom()
log = logging.getLogger("graph_router.engine")
JSON_CT = ("Content-Type", "application/json")


@dataclass(slots=True)
class Result:
    """What a graph answered: status, body, headers and the route taken."""

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
    status: int
    doc: JsonDoc
    #: The backend's headers (for the ``Content-Type`` of an answer that is not JSON); None when
    #: the router made the document itself.
    headers: list[tuple[str, str]] | None = None


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
            out = await graph.root.run(ctx, JsonDoc(body))
        else:
            try:
                async with asyncio.timeout_at(deadline):
                    out = await graph.root.run(ctx, JsonDoc(body))
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


_HEADER_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def header_safe(text: str) -> str:
    """Names from the graph may hold any Unicode (or CR/LF): percent-encode them for a header value."""
    return quote(text, safe=_HEADER_SAFE)


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


def step_input(step: CompiledStep, node_input: JsonDoc, previous: JsonDoc | None) -> JsonDoc:
    """The body a step receives: node input, previous response, or a selection of either."""
    src = previous if step.uses_response and previous is not None else node_input
    if step.selection is not None:
        if src.value is INVALID:
            what = "previous response" if src is previous else "request"
            err_cls = StepInputError if src is previous else RequestError
            raise err_cls(f"data {step.selection.source!r}: the {what} is not JSON, so nothing can be selected "
                          f"from it")
        value = step.selection.select(src.value)
        if value is NOTHING:
            raise StepInputError(f"data {step.selection.source!r} selected nothing from the "
                                 f"{'previous response' if step.uses_response else 'request'}")
        src = JsonDoc.of(value)
    if step.map_predictions:
        predictions = go_predictions(src.value)
        if predictions:
            src = JsonDoc.of({"instances": predictions})
    if step.map_outputs and src.value is not INVALID:
        src = _outputs_to_inputs(src)
    return src


def go_predictions(value: Any) -> list[Any] | None:
    """``predictions`` as KServe reads it, with Go's ``encoding/json`` into a struct field.

    Every key equal to ``predictions`` under Go's case folding (ASCII case, and U+017F long s for ``s``)
    assigns the field in document order, so the last one wins; ``null`` clears it; any other type
    fails the whole unmarshal, and KServe then leaves the input unchanged.
    """
    if not isinstance(value, dict):
        return None
    found: list[Any] | None = None
    for key, v in value.items():
        if key == "predictions" or (len(key) == 11 and key.replace("\u017f", "s").lower() == "predictions"):
            if v is None:
                found = None
            elif isinstance(v, list):
                found = v
            else:
                return None
    return found


def _outputs_to_inputs(doc: JsonDoc) -> JsonDoc:
    """Extension (KServe #3051): a v2 response's ``outputs`` become the next request's ``inputs``."""
    v = doc.value
    if not isinstance(v, dict) or not isinstance(v.get("outputs"), list):
        return doc
    req: dict[str, Any] = {}
    if "id" in v:
        req["id"] = v["id"]
    req["inputs"] = [
        {k: o[k] for k in ("name", "shape", "datatype", "data", "parameters") if k in o}
        for o in v["outputs"] if isinstance(o, dict)
    ]
    if "parameters" in v:
        req["parameters"] = v["parameters"]
    return JsonDoc.of(req)


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
            out = await step.node.run(ctx, doc)
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


def go_unmarshal_error(raw: bytes) -> str:
    """The text of Go's ``json.Unmarshal`` error into ``map[string]interface{}``, as KServe reports it."""
    # Call sites only get here for a body that is not an object or null, so Go always fails.
    return unmarshal_object_error(raw) or "json: cannot unmarshal into Go value of type map[string]interface {}"


RUNNERS = {
    RouterType.SEQUENCE: run_sequence,
    RouterType.SWITCH: run_switch,
    RouterType.SPLITTER: run_splitter,
    RouterType.ENSEMBLE: run_ensemble,
}
