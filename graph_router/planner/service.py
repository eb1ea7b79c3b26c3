"""One service in the simulation: its queue, its pods and its autoscaler, second by second.

A service's capacity in a second is ``ready pods x containerConcurrency / service time`` requests
(unlimited with containerConcurrency 0). What it cannot serve waits in its queue; what arrives while
no pod is ready waits (in Knative's activator) for a cold start to end. Pods are ready exactly
``cold start`` seconds (rounded up to a whole second) after the autoscaler asked for them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .kpa import DECIDER_TICK_S, Decider, PodAutoscaler
from .settings import ServiceSettings


@dataclass
class ServiceTrace:
    """What happened to one service: per-second series and totals."""

    name: str
    scaled: bool  # False: not run by Knative (no pods simulated)
    pods: list[int] = field(default_factory=list)
    ready: list[int] = field(default_factory=list)
    load: list[float] = field(default_factory=list)  # requests arriving per second
    metric: list[float] = field(default_factory=list)  # what the autoscaler observed (concurrency or rps)
    panic: list[bool] = field(default_factory=list)
    cold_requests: float = 0.0
    cold_wait_s: list[tuple[float, float]] = field(default_factory=list)  # (requests, wait) per cold second

    @property
    def pod_seconds(self) -> float:
        return float(sum(self.pods))


class Service:
    def __init__(self, s: ServiceSettings, horizon: int) -> None:
        self.s = s
        self.kpa = s.kpa
        self.time = s.model.service_time_s
        # Requests move on after the whole seconds of their service time; the fraction is added to
        # the latencies at the end (see simulate._static), which keeps the fluid curves exact.
        self.whole = math.floor(self.time)
        self.cold = max(0, math.ceil(s.model.cold_start_s))
        self.trace = ServiceTrace(s.name, scaled=self.kpa is not None)
        self.positions: list[Position] = []
        self.ready = 0
        self.remaining = math.inf
        self.arrived = self.in_service = 0.0
        self.queued = 0.0
        self.same_for = 0
        self.last_key: tuple[object, ...] = ()
        k0 = s.kpa
        windows = (k0.stable_window_s, k0.panic_window_s, k0.scale_down_delay_s) if k0 is not None else (0.0,)
        self.need = math.ceil(max(*windows, self.whole + 2.0)) + DECIDER_TICK_S
        self.n = 0  # pods, ready or starting
        self.pending: list[int] = []  # when each starting pod will be ready (sorted)
        if self.kpa is not None:
            k = self.kpa
            n = max(k.initial_scale, k.min_scale)
            self.n = min(n, k.max_scale) if k.max_scale else n  # the revision starts ready at its initial scale
            self.decider = Decider(k)
            self.pa = PodAutoscaler(k, self.n)
            tr = self.trace
            tr.pods, tr.ready, tr.metric = [0] * horizon, [0] * horizon, [0.0] * horizon
            tr.panic = [False] * horizon

    def start(self, t: int) -> None:
        self.arrived = self.in_service = 0.0
        if self.kpa is None:
            self.ready, self.remaining = 1, math.inf
            return
        pending = self.pending
        while pending and pending[0] <= t:
            pending.pop(0)
        self.ready = ready = self.n - len(pending)
        cc = self.kpa.container_concurrency
        if ready == 0:
            self.remaining = 0.0
        else:
            self.remaining = ready * cc / self.time if cc and self.time > 0 else math.inf

    def serve(self, pos: Position, a: float, t: int) -> None:
        if a > 0:
            self.arrived += a
            if self.ready == 0:
                self.trace.cold_requests += a
                pos.cold.append((pos.cum, pos.cum + a))
                self.trace.cold_wait_s.append((a, t))
            pos.cum += a
        b = pos.backlog + a
        x = b if self.remaining >= b else self.remaining
        self.queued += b - x - pos.backlog
        pos.backlog = b - x
        if x > 0:
            self.remaining -= x
            self.in_service += x * self.time
            dep = pos.dep
            dep[t + self.whole] += x

    def finish(self, t: int) -> None:
        tr = self.trace
        tr.load.append(self.arrived)
        if self.kpa is None:
            return
        queued = self.queued if self.queued > 1e-9 else 0.0
        value = self.arrived if self.kpa.metric == "rps" else self.in_service + queued
        d = self.decider
        if self.ready > 0 or value > 0:  # the scraper sees ready pods; the activator holds the rest
            d.record(t, value)
        # Knative's activator pokes the autoscaler when a request reaches a revision scaled to zero.
        if t % DECIDER_TICK_S == 0 or (d.latest <= 0 and value > 0 and self.ready == 0):
            if d.has_data(t):
                d.scale(t, self.ready)
            if d.latest >= 0:
                self._apply(t, self.pa.reconcile(t, d.latest, self.n, self.ready))
        tr.pods[t] = self.n
        tr.ready[t] = self.ready
        tr.metric[t] = value
        tr.panic[t] = d.panic_time is not None
        key = (self.n, value, queued, self.arrived, len(self.pending), d.latest)
        self.same_for = self.same_for + 1 if key == self.last_key else 0
        self.last_key = key

    def settled(self) -> bool:
        """True when every coming second with the same traffic would repeat the last one exactly.

        The windows hold one value throughout, nothing is queued or starting, not panicking, and
        the pod autoscaler would keep the current scale without a timer running.
        """
        k = self.kpa
        if k is None:
            return True
        d = self.decider
        if self.queued or self.pending or d.panic_time is not None or d.raw != d.latest or self.same_for < self.need:
            return False
        lo, hi = self.pa.bounds()
        want = max(d.latest, lo)
        want = min(want, hi) if hi else want
        return want == self.n and (want > 0 or self.pa.state == "inactive")

    def skip(self, t: int, t2: int) -> None:
        """Repeat second ``t`` for seconds ``t + 1 .. t2 - 1`` (only when :meth:`settled`)."""
        tr = self.trace
        n = t2 - t - 1
        tr.load.extend([self.arrived] * n)
        if self.kpa is None:
            return
        tr.pods[t + 1:t2] = [tr.pods[t]] * n
        tr.ready[t + 1:t2] = [tr.ready[t]] * n
        tr.metric[t + 1:t2] = [tr.metric[t]] * n
        tr.panic[t + 1:t2] = [tr.panic[t]] * n
        d = self.decider
        if d.stable.last == t:  # every bucket holds the same value: only the clock moves
            d.stable.last = d.panic.last = t2 - 1
        last_tick = (t2 - 1) - (t2 - 1) % DECIDER_TICK_S
        if d.delay is not None and last_tick > t:
            d.delay.values = [(float(last_tick), d.latest)]

    def _apply(self, t: int, want: int) -> None:
        n = self.n
        if want > n:
            self.pending.extend([t + self.cold] * (want - n))
        elif want < n:
            drop = min(n - want, len(self.pending))  # starting pods (latest ready times) go first
            if drop:
                del self.pending[len(self.pending) - drop:]
        self.n = want


@dataclass
class Position:
    service: Service
    dep: list[float]
    backlog: float = 0.0
    cum: float = 0.0
    cold: list[tuple[float, float]] = field(default_factory=list)


