"""Prometheus metrics of one router process (or, in multiprocess mode, of all workers together).

``prometheus_client`` is imported when a :class:`Metrics` is built, never at module import: it picks
its multiprocess mode from ``PROMETHEUS_MULTIPROC_DIR`` once, at its own import, so the composition
root must be able to set that variable before the first import (see docs/observability.md).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

#: Latency buckets (seconds): sub-millisecond hops up to one minute (KServe's default graph timeout).
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

REQUESTS = "graph_router_requests"
REQUEST_DURATION = "graph_router_request_duration_seconds"
IN_FLIGHT = "graph_router_requests_in_flight"
STEP_DURATION = "graph_router_step_duration_seconds"
STEP_ERRORS = "graph_router_step_errors"
BRANCH = "graph_router_branch"
RETRIES = "graph_router_backend_retries"
TIMEOUTS = "graph_router_backend_timeouts"


def multiprocess_active() -> bool:
    """True when prometheus_client writes values to PROMETHEUS_MULTIPROC_DIR (chosen at its import)."""
    from prometheus_client import values

    return bool(getattr(values.ValueClass, "_multiprocess", False))


def worker_exited(pid: int) -> None:
    """For a supervisor: drop a dead worker's live gauges (in-flight) from the multiprocess sum.

    A worker that exits cleanly does this itself (:meth:`Metrics.close`); one that crashed cannot.
    Counters and histograms of dead workers stay in the sum, as they must. No-op outside multiprocess mode.
    """
    from prometheus_client import multiprocess

    if multiprocess_active():
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


class Metrics:
    """The router's metrics in a private registry; label children are cached per label tuple.

    In multiprocess mode (``prometheus_client`` imported with ``PROMETHEUS_MULTIPROC_DIR`` set) every
    value lives in that directory and :meth:`exposition` sums all workers. Use one instance per process.
    """

    def __init__(self, *, multiprocess: bool | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = multiprocess_active() if multiprocess is None else multiprocess
        if self.multiprocess and not multiprocess_active():
            raise ValueError("multiprocess metrics need PROMETHEUS_MULTIPROC_DIR set before the first "
                             "import of prometheus_client")
        self.registry = CollectorRegistry(auto_describe=False)
        reg = None if self.multiprocess else self.registry
        req, step = ["graph", "status"], ["graph", "node", "step", "target"]
        self.requests = Counter(REQUESTS, "Graph requests answered.", req, registry=reg)
        self.request_duration = Histogram(REQUEST_DURATION, "Graph request latency.",
                                          req, buckets=BUCKETS, registry=reg)
        self.in_flight = Gauge(IN_FLIGHT, "Graph requests being served now.", ["graph"],
                               multiprocess_mode="livesum", registry=reg)
        self.step_duration = Histogram(STEP_DURATION, "Step latency, all attempts and backoff included.",
                                       step, buckets=BUCKETS, registry=reg)
        self.step_errors = Counter(STEP_ERRORS, "Backend steps that failed (error code) or answered >= 400 "
                                   "(http_<status>).", [*step, "error"], registry=reg)
        self.branch = Counter(BRANCH, "Branches chosen by Switch and Splitter nodes (Switch miss: none).",
                              ["graph", "node", "step", "router_type"], registry=reg)
        self.retries = Counter(RETRIES, "Backend calls retried, by target.", ["target"], registry=reg)
        self.timeouts = Counter(TIMEOUTS, "Backend attempts that timed out, by target and kind.",
                                ["target", "kind"], registry=reg)
        self._req: dict[tuple[str, int], tuple[Any, Any]] = {}
        self._flight: dict[str, Any] = {}
        self._step: dict[tuple[str, str, str, str], Any] = {}

    # --- recording (hot path: cached children, no label validation per call) ------------------

    def request_started(self, graph: str) -> None:
        g = self._flight.get(graph)
        if g is None:
            g = self._flight[graph] = self.in_flight.labels(graph)
        g.inc()

    def request_finished(self, graph: str, status: int, duration: float) -> None:
        pair = self._req.get((graph, status))
        if pair is None:
            s = str(status)
            pair = self._req[(graph, status)] = (self.requests.labels(graph, s),
                                                 self.request_duration.labels(graph, s))
        pair[0].inc()
        pair[1].observe(duration)
        g = self._flight.get(graph)
        if g is not None:
            g.dec()

    def step_finished(self, key: tuple[str, str, str, str], duration: float, error: str | None) -> None:
        h = self._step.get(key)
        if h is None:
            h = self._step[key] = self.step_duration.labels(*key)
        h.observe(duration)
        if error is not None:
            self.step_errors.labels(*key, error).inc()

    def branch_taken(self, graph: str, node: str, step: str, router_type: str) -> None:
        self.branch.labels(graph, node, step, router_type).inc()

    def retried(self, target: str) -> None:
        self.retries.labels(target).inc()

    def timed_out(self, target: str, kind: str) -> None:
        self.timeouts.labels(target, kind).inc()

    # --- exposition ---------------------------------------------------------------------------

    def exposition(self) -> tuple[bytes, str]:
        """The text format; in multiprocess mode, the sum over every worker's files."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        registry: CollectorRegistry = self.registry
        if self.multiprocess:
            from prometheus_client import CollectorRegistry as Registry
            from prometheus_client import multiprocess

            registry = Registry(auto_describe=False)
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST

    def close(self) -> None:
        """In multiprocess mode, drop this process's live gauges (its in-flight count) from the sum."""
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
