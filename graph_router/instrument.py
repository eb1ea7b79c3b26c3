"""The engine's instrumentation seam: spans, metrics and logs attach here, never in the engine.

The engine calls these only when hooks are configured (``hooks is None`` costs nothing).
``graph_router.telemetry`` implements them with OpenTelemetry and Prometheus.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .compiler import CompiledNode, CompiledStep
    from .engine import Context


class StepRecord(Protocol):
    """Handed to the engine for the duration of one step."""

    def on_attempt(self, attempt: int, outcome: str, delay: float | None) -> None:
        """Every backend attempt: 1-based number, outcome (status or error code), delay before the next."""

    def done(self, status: int, retries: int) -> None:
        """The step's backend answered ``status`` after ``retries`` retries."""


class Hooks(Protocol):
    def node(self, ctx: Context, node: CompiledNode) -> AbstractContextManager[object]:
        """Scope of one node's execution (a span)."""
        ...

    def step(self, ctx: Context, node: CompiledNode, step: CompiledStep) -> AbstractContextManager[StepRecord]:
        """Scope of one step (a span; latency and errors recorded on exit, exceptions re-raised)."""
        ...

    def branch(self, ctx: Context, node: CompiledNode, step: CompiledStep | None) -> None:
        """A Switch or Splitter chose ``step`` (None: a Switch matched nothing)."""

    def outgoing_headers(self, ctx: Context, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Headers for one backend call, e.g. with this step's ``traceparent``."""
        ...
