"""The simulation: second by second, each service's queue, pods and autoscaler (:mod:`.service`),
with the graph's requests flowing through it as a fluid (amounts per second, not request objects).

A Sequence feeds each step with what the previous one finished; an Ensemble finishes a request when
its slowest step has. Requests stay in order (FIFO), so the n-th request of a scenario is the n-th
everywhere in it: its latency is where the scenario's cumulative departures reach n minus where its
arrivals did, plus the parts of service times shorter than a second (requests move on after the
whole seconds only, which keeps both curves piecewise linear between whole seconds, hence exact).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .fanout import Leaf, Scenario, Seq, Shadow, Tree
from .service import Position, Service, ServiceTrace
from .settings import ServiceSettings

Flow = Callable[[float, int], float]
Skip = Callable[[float, int, int], None]
Progress = Callable[[float], None]
#: Seconds simulated between two progress callbacks.
PROGRESS_EVERY = 3600
#: A second whose first and last arrivals' latencies differ by less than this counts as one latency.
CALM_S = 0.002


@dataclass
class Result:
    seconds: int
    services: dict[str, ServiceTrace]
    requests: float
    cold_requests: float
    latency_ms: dict[float, float]  # latency (0.1 ms resolution) -> requests
    rps: list[float]


def simulate(
    scenarios: Sequence[Scenario],
    services: Mapping[str, ServiceSettings],
    rps: Sequence[float],
    progress: Progress | None = None,
) -> Result:
    """Run the graph's traffic ``rps`` (requests per second, one value per second) through it."""
    horizon = len(rps)
    svcs = {name: Service(s, horizon) for name, s in services.items()}
    flows = [_Flow(sc, svcs, horizon) for sc in scenarios]
    order = list(svcs.values())
    change = _next_change(rps)
    t = 0
    while t < horizon:
        for s in order:
            s.start(t)
        for f in flows:
            f.step(rps[t], t)
        for s in order:
            s.finish(t)
        if progress is not None and t % PROGRESS_EVERY == 0:
            progress(t / horizon)
        t2 = min(change[t], (t // PROGRESS_EVERY + 1) * PROGRESS_EVERY, horizon)
        if t2 > t + 1 and all(s.settled() for s in order):
            # Nothing changes until the traffic does: repeat this second instead of simulating it.
            for s in order:
                s.skip(t, t2)
            for f in flows:
                f.repeat(rps[t], t, t2)
            t = t2 - 1
        t += 1
    hist: dict[float, float] = {}
    for f in flows:
        offset = _static(f.scenario.tree, svcs, whole=False) - _static(f.scenario.tree, svcs, whole=True)
        _latencies(f.arrivals, f.departures, hist, offset)
    cold = sum(_union([iv for p in f.positions for iv in p.cold]) for f in flows)
    for s in order:
        _cold_waits(s)
    if progress is not None:
        progress(1.0)
    return Result(horizon, {n: s.trace for n, s in svcs.items()}, float(sum(rps)), cold, hist, list(rps))


class _Flow:
    """One scenario's requests: its compiled tree and its cumulative arrivals and departures."""

    def __init__(self, scenario: Scenario, svcs: Mapping[str, Service], horizon: int) -> None:
        self.scenario = scenario
        self.positions: list[Position] = []
        self.flow, self.skip = _compile(scenario.tree, svcs, horizon, self.positions)
        self.arrivals = [0.0] * (horizon + 1)
        self.departures = [0.0] * (horizon + 1)

    def step(self, rps: float, t: int) -> None:
        a = rps * self.scenario.share
        out = self.flow(a, t)
        self.arrivals[t + 1] = self.arrivals[t] + a
        self.departures[t + 1] = self.departures[t] + out

    def repeat(self, rps: float, t: int, t2: int) -> None:
        """Seconds ``t + 1 .. t2 - 1`` as second ``t``, settled: what arrives leaves the same second."""
        a = rps * self.scenario.share
        self.skip(a, t + 1, t2)
        arr, dep = self.arrivals, self.departures
        for u in range(t + 1, t2):
            arr[u + 1] = arr[u] + a
            dep[u + 1] = dep[u] + a


def _next_change(rps: Sequence[float]) -> list[int]:
    """For each second, the next second whose traffic differs (or the end)."""
    out = [len(rps)] * len(rps)
    for t in range(len(rps) - 2, -1, -1):
        out[t] = t + 1 if rps[t + 1] != rps[t] else out[t + 1]
    return out


def _compile(tree: Tree, svcs: Mapping[str, Service], horizon: int,
             positions: list[Position]) -> tuple[Flow, Skip]:
    """(amount arriving this second, second) -> amount the subtree finishes this second; and a
    function that repeats a settled second over a range of seconds."""
    if isinstance(tree, Leaf):
        return _leaf(svcs[tree.service], horizon, positions)
    if isinstance(tree, Shadow):
        return _shadow(svcs[tree.service], tree.fraction, horizon)
    parts = [_compile(c, svcs, horizon, positions) for c in tree.children]
    children = [p[0] for p in parts]
    skips = [p[1] for p in parts]

    def skip_all(a: float, t: int, t2: int) -> None:
        for sk in skips:
            sk(a, t, t2)

    if isinstance(tree, Seq):

        def seq(a: float, t: int) -> float:
            for child in children:
                a = child(a, t)
            return a

        return seq, skip_all
    return _par(children, skip_all)


def _leaf(svc: Service, horizon: int, positions: list[Position]) -> tuple[Flow, Skip]:
    pos = Position(svc, [0.0] * (horizon + svc.whole + 2))
    svc.positions.append(pos)
    positions.append(pos)
    serve = svc.serve
    dep = pos.dep
    w = svc.whole

    def leaf(a: float, t: int) -> float:
        if a > 0 or pos.backlog > 0:
            serve(pos, a, t)
        return dep[t]

    def leaf_skip(a: float, t: int, t2: int) -> None:
        if a > 0:
            pos.cum += a * (t2 - t)
            for u in range(t + w, t2 + w):
                dep[u] += a

    return leaf, leaf_skip


def _shadow(svc: Service, fraction: float, horizon: int) -> tuple[Flow, Skip]:
    """Mirrored copies: served like any call, but the request goes on without waiting for them (what
    arrives passes through), and a copy that waits for a cold start is the shadow's, not the graph's
    (its position is not among the scenario's)."""
    leaf, leaf_skip = _leaf(svc, horizon, [])

    def shadow(a: float, t: int) -> float:
        leaf(a * fraction, t)
        return a

    def shadow_skip(a: float, t: int, t2: int) -> None:
        leaf_skip(a * fraction, t, t2)

    return shadow, shadow_skip


def _par(children: list[Flow], skip_all: Skip) -> tuple[Flow, Skip]:
    """An Ensemble: a request is done when every child is (the least of their cumulative outputs)."""
    done = [0.0] * len(children)
    last = [0.0]

    def par(a: float, t: int) -> float:
        for i, child in enumerate(children):
            done[i] += child(a, t)
        m = min(done)
        out, last[0] = m - last[0], m
        return out

    def par_skip(a: float, t: int, t2: int) -> None:
        skip_all(a, t, t2)
        for i in range(len(done)):
            done[i] += a * (t2 - t)
        last[0] += a * (t2 - t)

    return par, par_skip


def _static(tree: Tree, svcs: Mapping[str, Service], *, whole: bool) -> float:
    """The latency of a tree with every service warm and idle (whole seconds of each service time only)."""
    if isinstance(tree, Leaf):
        s = svcs[tree.service]
        return float(s.whole) if whole else s.time
    if isinstance(tree, Shadow):
        return 0.0
    parts = [_static(c, svcs, whole=whole) for c in tree.children]
    if not parts:
        return 0.0
    return sum(parts) if isinstance(tree, Seq) else max(parts)


def _latencies(arr: list[float], dep: list[float], hist: dict[float, float], offset: float) -> None:
    """Add each second's arrivals to ``hist`` at their latency (fluid FIFO: horizontal distance), plus
    ``offset``: the parts of service times shorter than a second, which the flow does not wait for."""
    end = len(dep) - 1

    def leave(x: float) -> float:
        j = bisect_left(dep, x - 1e-9)
        if j > end:
            return float(end)  # still in the graph when the simulation ends
        if j == 0:
            return 0.0
        d0, d1 = dep[j - 1], dep[j]
        return j - 1 + ((x - d0) / (d1 - d0) if d1 > d0 else 1.0)

    prev = leave(arr[0])
    for k in range(end):
        m = arr[k + 1] - arr[k]
        nxt = leave(arr[k + 1])
        if m <= 1e-12:
            prev = nxt
            continue
        l0, l1 = prev - k, nxt - (k + 1)
        if abs(l1 - l0) < CALM_S:
            _add(hist, (l0 + l1) / 2 + offset, m)
        else:
            n = 8
            for i in range(n):
                f = (i + 0.5) / n
                _add(hist, leave(arr[k] + m * f) - (k + f) + offset, m / n)
        prev = nxt


def _add(hist: dict[float, float], latency_s: float, weight: float) -> None:
    key = int(latency_s * 10000.0 + 0.5) / 10.0 if latency_s > 0 else 0.0
    hist[key] = hist.get(key, 0.0) + weight


def _union(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, -math.inf
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def _cold_waits(s: Service) -> None:
    """Replace (requests, arrival second) by (requests, seconds waited until the first pod was ready)."""
    ready = s.trace.ready
    waits: list[tuple[float, float]] = []
    j = 0
    for a, t in s.trace.cold_wait_s:
        j = max(j, int(t))
        while j < len(ready) and ready[j] == 0:
            j += 1
        waits.append((a, max(0.0, j - (t + 0.5))))
    s.trace.cold_wait_s = waits


def percentile(hist: Mapping[float, float], q: float) -> float:
    """The q-th percentile (0-100) of a weighted histogram; 0 when it is empty."""
    total = sum(hist.values())
    if total <= 0:
        return 0.0
    goal, acc = total * q / 100.0, 0.0
    keys = sorted(hist)
    for key in keys:
        acc += hist[key]
        if acc >= goal - 1e-9:
            return key
    return keys[-1]
