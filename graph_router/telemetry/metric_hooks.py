"""Metrics on the engine's hooks (:class:`graph_router.engine.Hooks`), and what spans share with them.

:class:`MetricsHooks` is the hooks object when tracing is off; :mod:`.spans` uses the same labels,
error codes and step metrics for traced requests.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from .tracing import GRAPH, NODE, ROUTER_TYPE, STEP, TARGET

if TYPE_CHECKING:
    from ..compiler import CompiledNode, CompiledStep
    from ..engine import Context, Hooks
    from .metrics import Metrics

TIMEOUT_CODES = frozenset({"step_timeout", "backend_timeout"})


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


def error_of(exc: BaseException, ctx: Context) -> tuple[str, str]:
    """(code, cause) of what ended a scope; a cancellation past the graph deadline is ``graph_timeout``."""
    if isinstance(exc, asyncio.CancelledError):
        deadline = ctx.deadline
        if deadline is not None and asyncio.get_running_loop().time() >= deadline:
            return "graph_timeout", f"graph timeout of {ctx.graph.timeout}s exceeded"
        return "cancelled", "cancelled (a sibling step decided the node, or the client went away)"
    return str(getattr(exc, "code", type(exc).__name__)), str(getattr(exc, "cause", exc))


if TYPE_CHECKING:
    def _conforms(m: MetricsHooks) -> Hooks:  # mypy: it implements the protocol
        return m
