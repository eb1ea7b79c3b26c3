"""Prometheus metrics of one router process (or, in multiprocess mode, of all workers together).

Recording is plain dict and list arithmetic (no prometheus_client call, no lock, ~0.1 us a call);
prometheus_client renders them through a custom collector (single process) or receives them in
batches through its public Counter/Gauge API (multiprocess). No private attribute of it is used.

``prometheus_client`` is imported when a :class:`Metrics` is built, never at module import: it picks
its multiprocess mode from ``PROMETHEUS_MULTIPROC_DIR`` once, at its own import, so the composition
root sets that variable before the first import and says ``multiprocess=True`` (see docs/observability.md).
"""

from __future__ import annotations

import asyncio
import os
import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

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
REFUSED = "graph_router_requests_refused"
PREWARMS = "graph_router_prewarm_requests"
# shadow traffic (step extension ``mirror``); shown once a mirror records something
MIRRORED = "graph_router_mirror_requests"
MIRROR_DROPPED = "graph_router_mirror_dropped"
MIRROR_ERRORS = "graph_router_mirror_errors"
MIRROR_COMPARISONS = "graph_router_mirror_comparisons"
MIRROR_DURATION = "graph_router_mirror_duration_seconds"
MIRROR_DIFFERENCE = "graph_router_mirror_difference"
#: Buckets of the absolute difference between a real and a shadow number.
DIFFERENCE_BUCKETS = (1e-6, 1e-5, 1e-4, 0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)

#: Multiprocess mode: seconds between two writes of a worker's recorded values to its files.
FLUSH_INTERVAL = 1.0

# A histogram series is one list: a count per bucket (BUCKETS, then +Inf), then the sum of the values.
# bisect_left(BUCKETS, v) is the first bucket whose bound is >= v, Prometheus' `le` (v <= bound).
_NBUCKETS = len(BUCKETS) + 1
_SUM = _NBUCKETS

_REQ = ("graph", "status")
_STEP = ("graph", "node", "step", "target")
_MIRROR = ("graph", "node", "step", "shadow")
_HELP = {
    REQUESTS: "Graph requests answered.",
    REQUEST_DURATION: "Graph request latency.",
    IN_FLIGHT: "Graph requests being served now.",
    STEP_DURATION: "Step latency, all attempts and backoff included.",
    STEP_ERRORS: "Backend steps that failed (error code) or answered >= 400 (http_<status>).",
    BRANCH: "Branches chosen by Switch and Splitter nodes (Switch miss: none).",
    RETRIES: "Backend calls retried, by target.",
    TIMEOUTS: "Backend attempts that timed out, by target and kind.",
    REFUSED: "Requests refused before a graph ran (bad framing, limits, overload, auth, unknown graph).",
    PREWARMS: "Warm-up requests sent to idle backends at request start, by target and outcome.",
    MIRRORED: "Mirrored copies sent to a shadow.",
    MIRROR_DROPPED: "Mirrored copies dropped: the shadow's queue was full.",
    MIRROR_ERRORS: "Shadow calls that failed (error code) or answered >= 300 (http_<status>).",
    MIRROR_COMPARISONS: "Shadow answers compared with the real ones (agree, disagree, missing, skipped).",
    MIRROR_DURATION: "Shadow call latency.",
    MIRROR_DIFFERENCE: "Absolute difference between a real and a shadow number.",
}
_LABELS = {STEP_ERRORS: (*_STEP, "error"), BRANCH: ("graph", "node", "step", "router_type"),
           RETRIES: ("target",), TIMEOUTS: ("target", "kind"), REFUSED: ("status", "reason"),
           PREWARMS: ("target", "outcome"), MIRRORED: _MIRROR, MIRROR_DROPPED: _MIRROR,
           MIRROR_ERRORS: (*_MIRROR, "error"), MIRROR_COMPARISONS: (*_MIRROR, "result")}
#: Histograms beyond requests and steps: labels and buckets.
_HISTOGRAMS = {MIRROR_DURATION: (_MIRROR, BUCKETS), MIRROR_DIFFERENCE: (_MIRROR, DIFFERENCE_BUCKETS)}
#: Families rendered only once they hold a series (so /metrics of a graph without mirrors is unchanged).
_OPTIONAL = frozenset({MIRRORED, MIRROR_DROPPED, MIRROR_ERRORS, MIRROR_COMPARISONS, MIRROR_DURATION,
                       MIRROR_DIFFERENCE})

Labels = tuple[str, ...]


def worker_exited(pid: int) -> None:
    """For a supervisor: drop a dead worker's live gauges (in-flight) from the multiprocess sum.

    A worker that exits cleanly does this itself (:meth:`Metrics.close`); one that crashed cannot.
    Counters and histograms of dead workers stay in the sum, as they must. Only in multiprocess mode
    (``PROMETHEUS_MULTIPROC_DIR`` set).
    """
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def _new_histogram(buckets: Sequence[float] = BUCKETS) -> list[float]:
    return [0.0] * (len(buckets) + 2)


class Metrics:
    """The router's metrics, recorded into plain dicts keyed by label tuples; one instance per process.

    Recording is not thread-safe and need not be: the router records from its one event-loop thread.
    Single process: a collector on the private ``registry`` renders the dicts exactly as prometheus_client's
    own Counter/Gauge/Histogram would (``created``: with their ``_created`` series). Multiprocess
    (``multiprocess=True``, ``prometheus_client`` imported with ``PROMETHEUS_MULTIPROC_DIR`` set): what
    was recorded is written to this worker's files every :data:`FLUSH_INTERVAL` seconds (a timer on
    the running loop, armed by the first request after a quiet spell), by :meth:`exposition` and by
    :meth:`close`. So a scrape sees its own worker exactly and the others' counts at most
    FLUSH_INTERVAL old (plus any time their loop is blocked). Outside an event loop every request start
    and finish is written at once.
    """

    def __init__(self, *, multiprocess: bool = False, created: bool = True) -> None:
        from prometheus_client import CollectorRegistry, values

        if multiprocess and values.ValueClass is values.MutexValue:  # chosen once, at its first import
            raise ValueError("multiprocess metrics need PROMETHEUS_MULTIPROC_DIR set before the first "
                             "import of prometheus_client")
        self.multiprocess = multiprocess
        self.created = created
        self.registry = CollectorRegistry(auto_describe=False)
        self._req: dict[tuple[str, int], list[float]] = {}
        self._flight: dict[str, int] = {}
        self._step: dict[tuple[str, str, str, str], list[float]] = {}
        self._counts: dict[str, dict[Labels, float]] = {name: {} for name in _LABELS}
        self._hists: dict[str, dict[Labels, list[float]]] = {name: {} for name in _HISTOGRAMS}
        self._born: dict[tuple[str, Any], float] = {}  # (family, key) -> when the series appeared: _created
        self._files = _Files() if self.multiprocess else None
        self._idle = self.multiprocess  # multiprocess with no flush scheduled: the next request schedules one
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        if not self.multiprocess:
            self.registry.register(_Collector(self))

    # --- recording (hot path: one dict lookup and a few additions per call) ----------------------

    def request_started(self, graph: str) -> None:
        flight = self._flight
        flight[graph] = flight.get(graph, 0) + 1
        if self._idle:
            self._arm()

    def request_finished(self, graph: str, status: int, duration: float) -> None:
        h = self._req.get((graph, status))
        if h is None:
            h = self._series(self._req, REQUEST_DURATION, (graph, status))
        h[bisect_left(BUCKETS, duration)] += 1.0
        h[_SUM] += duration
        flight = self._flight
        if graph in flight:
            flight[graph] -= 1
        if self._idle:
            self._arm()

    def step_finished(self, key: tuple[str, str, str, str], duration: float, error: str | None) -> None:
        h = self._step.get(key)
        if h is None:
            h = self._series(self._step, STEP_DURATION, key)
        h[bisect_left(BUCKETS, duration)] += 1.0
        h[_SUM] += duration
        if error is not None:
            self._count(STEP_ERRORS, (*key, error))

    def branch_taken(self, graph: str, node: str, step: str, router_type: str) -> None:
        self._count(BRANCH, (graph, node, step, router_type))

    def retried(self, target: str) -> None:
        self._count(RETRIES, (target,))

    def timed_out(self, target: str, kind: str) -> None:
        self._count(TIMEOUTS, (target, kind))

    def refused(self, status: int, reason: str) -> None:
        self._count(REFUSED, (str(status), reason))

    def prewarmed(self, target: str, outcome: str) -> None:
        self._count(PREWARMS, (target, outcome))

    # shadow traffic (graph_router.mirror.MirrorObserver); key: graph, node, step, shadow

    def mirror_sent(self, key: Labels) -> None:
        self._count(MIRRORED, key)

    def mirror_dropped(self, key: Labels) -> None:
        self._count(MIRROR_DROPPED, key)

    def mirror_finished(self, key: Labels, duration: float, error: str | None) -> None:
        self._observe(MIRROR_DURATION, key, duration)
        if error is not None:
            self._count(MIRROR_ERRORS, (*key, error))

    def mirror_compared(self, key: Labels, result: str, difference: float | None) -> None:
        self._count(MIRROR_COMPARISONS, (*key, result))
        if difference is not None:
            self._observe(MIRROR_DIFFERENCE, key, difference)

    def _observe(self, name: str, key: Labels, value: float) -> None:
        family = self._hists[name]
        h = family.get(key)
        if h is None:
            h = self._series(family, name, key, _HISTOGRAMS[name][1])
        h[bisect_left(_HISTOGRAMS[name][1], value)] += 1.0
        h[-1] += value
        if self._idle:
            self._arm()

    def _series(self, family: dict[Any, list[float]], name: str, key: Any,
                buckets: Sequence[float] = BUCKETS) -> list[float]:
        self._born[(name, key)] = time.time()
        h = family[key] = _new_histogram(buckets)
        return h

    def _count(self, name: str, key: Labels) -> None:
        counts = self._counts[name]
        n = counts.get(key)
        if n is None:
            self._born[(name, key)] = time.time()
            n = 0.0
        counts[key] = n + 1.0

    # --- multiprocess flushing ----------------------------------------------------------------

    def _arm(self) -> None:
        """Schedule a flush on the running loop; without one, flush now (nothing else would)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._flush()
            return
        self._idle = False
        self._loop = loop
        self._timer = loop.call_later(FLUSH_INTERVAL, self._tick)

    def _tick(self) -> None:
        """The periodic flush; it stops (until the next request) once a whole interval was quiet."""
        self._timer = None
        wrote = self._flush()
        if (wrote or any(self._flight.values())) and self._loop is not None:
            self._timer = self._loop.call_later(FLUSH_INTERVAL, self._tick)
        else:
            self._idle = True

    def _flush(self) -> bool:
        """Write what was recorded since the last flush to this worker's files; True if anything was."""
        if self._files is None:
            return False
        if self._timer is not None and self._loop is not None and self._loop.is_closed():
            self._timer, self._idle = None, True  # the loop died with our timer: the next request re-arms
        return self._files.flush(self)

    # --- exposition ---------------------------------------------------------------------------

    def exposition(self) -> tuple[bytes, str]:
        """The text format; in multiprocess mode, the sum over every worker's files (this one's flushed now)."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        registry: CollectorRegistry = self.registry
        if self.multiprocess:
            from prometheus_client import CollectorRegistry as Registry
            from prometheus_client import multiprocess

            self._flush()
            files = Registry(auto_describe=False)
            multiprocess.MultiProcessCollector(files)  # type: ignore[no-untyped-call]
            registry = Registry(auto_describe=False)
            registry.register(_Histograms(files))
        return generate_latest(registry), CONTENT_TYPE_LATEST

    def close(self) -> None:
        """In multiprocess mode, write what is left, then drop this process's live gauges (in-flight)."""
        if self.multiprocess:
            from prometheus_client import multiprocess

            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._idle = False  # closed: no flush is scheduled any more (a scrape still flushes)
            self._flush()
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


class _Collector:
    """Renders a single-process :class:`Metrics`: the families, samples and order prometheus_client's
    Counter/Gauge/Histogram would produce for the same records (``_created`` included)."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics
        self._le = _le(BUCKETS)

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.metrics_core import Metric

        m, created = self._m, self._m.created
        req = [((g, str(s)), h, m._born[(REQUEST_DURATION, (g, s))]) for (g, s), h in m._req.items()]
        fam = Metric(REQUESTS, _HELP[REQUESTS], "counter")
        for labels, h, born in req:
            base = dict(zip(_REQ, labels, strict=True))
            fam.add_sample(REQUESTS + "_total", base, sum(h[:_NBUCKETS]))
            if created:
                fam.add_sample(REQUESTS + "_created", dict(base), born)
        yield fam
        yield _histogram(REQUEST_DURATION, _REQ, self._le, req, created)
        fam = Metric(IN_FLIGHT, _HELP[IN_FLIGHT], "gauge")
        for graph, live in m._flight.items():
            fam.add_sample(IN_FLIGHT, {"graph": graph}, float(live))
        yield fam
        steps = [(key, h, m._born[(STEP_DURATION, key)]) for key, h in m._step.items()]
        yield _histogram(STEP_DURATION, _STEP, self._le, steps, created)
        for name, names in _LABELS.items():
            if name in _OPTIONAL and not m._counts[name]:
                continue
            fam = Metric(name, _HELP[name], "counter")
            for key, n in m._counts[name].items():
                base = dict(zip(names, key, strict=True))
                fam.add_sample(name + "_total", base, n)
                if created:
                    fam.add_sample(name + "_created", dict(base), m._born[(name, key)])
            yield fam
        for name, (names, buckets) in _HISTOGRAMS.items():
            if m._hists[name]:
                series = [(key, h, m._born[(name, key)]) for key, h in m._hists[name].items()]
                yield _histogram(name, names, _le(buckets), series, created)


def _le(buckets: Sequence[float]) -> Labels:
    """The ``le`` label values, as the text format writes them (Go's float formatting; bounds are < 1e6)."""
    return (*(repr(float(b)) for b in buckets), "+Inf")


def _histogram(name: str, names: Labels, le: Labels, series: Sequence[tuple[Labels, list[float], float]],
               created: bool) -> Metric:
    """A histogram family as prometheus_client's Histogram renders it: cumulative buckets, count, sum."""
    from prometheus_client.metrics_core import Metric

    fam = Metric(name, _HELP[name], "histogram")
    for labels, h, born in series:
        base = dict(zip(names, labels, strict=True))
        acc = 0.0
        for bound, n in zip(le, h[:-1], strict=True):
            acc += n
            fam.add_sample(name + "_bucket", {**base, "le": bound}, acc)
        fam.add_sample(name + "_count", dict(base), acc)
        fam.add_sample(name + "_sum", dict(base), h[-1])
        if created:
            fam.add_sample(name + "_created", dict(base), born)
    return fam


class _Files:
    """This worker's values in prometheus_client's multiprocess files, written through its public API.

    Counters get the increments since the last flush (``Counter.inc``). A histogram has no public way to
    add a count to a bucket, so each series is written as its running totals: one ``sum``-mode Gauge per
    sample (``<name>_bucket`` per ``le``, cumulative; ``<name>_count``; ``<name>_sum``), set to this
    worker's totals; prometheus_client sums them over workers, live and dead, as it does counters, and
    :class:`_Histograms` shows them as histograms again.
    """

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge

        self.requests = Counter(REQUESTS, _HELP[REQUESTS], _REQ, registry=None)
        self.in_flight = Gauge(IN_FLIGHT, _HELP[IN_FLIGHT], ["graph"], multiprocess_mode="livesum",
                               registry=None)
        self.counters = {name: Counter(name, _HELP[name], names, registry=None) for name, names in _LABELS.items()}
        hists = {REQUEST_DURATION: (_REQ, BUCKETS), STEP_DURATION: (_STEP, BUCKETS), **_HISTOGRAMS}
        self.histograms = {name: _HistogramFiles(name, names, buckets, Gauge)
                           for name, (names, buckets) in hists.items()}
        self._flight_written: dict[str, int] = {}
        self._requests_written: dict[tuple[str, int], float] = {}

    def flush(self, m: Metrics) -> bool:
        """Write what changed since the last flush; request counts last, so that a reader who sees a
        request counted also sees its steps (each worker flushes in one synchronous call)."""
        wrote = self.histograms[STEP_DURATION].write(m._step)
        for name, family in m._hists.items():
            wrote = self.histograms[name].write(family) or wrote
        for name, counts in m._counts.items():
            for labels, n in counts.items():
                if n:
                    self.counters[name].labels(*labels).inc(n)
                    counts[labels] = 0.0
                    wrote = True
        for graph, live in m._flight.items():
            if self._flight_written.get(graph) != live:
                self.in_flight.labels(graph).set(live)
                self._flight_written[graph] = live
                wrote = True
        wrote = self.histograms[REQUEST_DURATION].write(m._req) or wrote
        done = self._requests_written
        for key, h in m._req.items():
            count = sum(h[:_NBUCKETS])
            if count != done.get(key, 0.0):
                self.requests.labels(key[0], str(key[1])).inc(count - done.get(key, 0.0))
                done[key] = count
        return wrote


class _HistogramFiles:
    """One histogram family as ``sum``-mode gauges of its running totals (see :class:`_Files`)."""

    def __init__(self, name: str, names: Labels, buckets: Sequence[float], gauge: Any) -> None:
        self.le = _le(buckets)
        self.bucket = gauge(name + "_bucket", _HELP[name], [*names, "le"], multiprocess_mode="sum", registry=None)
        self.count = gauge(name + "_count", _HELP[name], names, multiprocess_mode="sum", registry=None)
        self.sum = gauge(name + "_sum", _HELP[name], names, multiprocess_mode="sum", registry=None)
        self.written: dict[Any, list[float]] = {}

    def write(self, family: dict[Any, list[float]]) -> bool:
        """Set the gauges of every series whose totals changed; True if any did."""
        wrote = False
        for key, h in family.items():
            if self.written.get(key) == h:
                continue
            labels = tuple(str(x) for x in key)
            acc = 0.0
            for bound, n in zip(self.le, h[:-1], strict=True):
                acc += n
                self.bucket.labels(*labels, bound).set(acc)
            self.count.labels(*labels).set(acc)
            self.sum.labels(*labels).set(h[-1])
            self.written[key] = h.copy()
            wrote = True
        return wrote


class _Histograms:
    """The multiprocess sum (``files``: a registry holding a MultiProcessCollector) with each histogram's
    gauges (:class:`_HistogramFiles`) shown as one histogram: per series its buckets, count and sum."""

    def __init__(self, files: CollectorRegistry) -> None:
        self._files = files

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.metrics_core import Metric

        parts: dict[str, dict[str, list[Any]]] = {}
        for fam in self._files.collect():
            base, _, suffix = fam.name.rpartition("_")
            if base in _HELP and suffix in ("bucket", "count", "sum") and fam.type == "gauge":
                parts.setdefault(base, {})[suffix] = fam.samples
            else:
                yield fam
        for name, got in parts.items():
            series: dict[tuple[tuple[str, str], ...], list[Any]] = {}
            for s in got.get("bucket", []):
                key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
                series.setdefault(key, []).append(s)
            fam = Metric(name, _HELP[name], "histogram")
            counts = {tuple(sorted(s.labels.items())): s.value for s in got.get("count", [])}
            sums = {tuple(sorted(s.labels.items())): s.value for s in got.get("sum", [])}
            for key, buckets in series.items():
                buckets.sort(key=lambda s: float(s.labels["le"]))
                for s in buckets:
                    fam.add_sample(name + "_bucket", s.labels, s.value)
                fam.add_sample(name + "_count", dict(key), counts.get(key, 0.0))
                fam.add_sample(name + "_sum", dict(key), sums.get(key, 0.0))
            yield fam
