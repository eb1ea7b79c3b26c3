"""The engine's instrumentation seam: spans, metrics and logs attach here, never in the engine.

The engine calls these only when hooks are configured (``hooks is None`` costs nothing). Each scope
is one call to open it and one to close it (no context-manager protocol, no per-attempt call unless
an attempt is retried): the seam sits on every request, and every Python call on it is measured.
``graph_router.telemetry`` implements it: spans written as OTLP (:mod:`graph_router.telemetry.spans`) and Prometheus.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .compiler import CompiledNode, CompiledStep
    from .engine import Context


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
    def node(self, ctx: Context, node: CompiledNode) -> NodeRecord | None:
        """Open a node's scope (a span), or None when there is nothing to record for it."""

    def step(self, ctx: Context, node: CompiledNode, step: CompiledStep) -> StepRecord:
        """Open a step's scope (a span; latency and errors are recorded by ``end``)."""
        ...

    def branch(self, ctx: Context, node: CompiledNode, step: CompiledStep | None) -> None:
        """A Switch or Splitter chose ``step`` (None: a Switch matched nothing)."""
