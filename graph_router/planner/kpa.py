"""Knative's Pod Autoscaler for one revision, step by step: metric windows, the decider, the PA.

Each rule follows knative/serving (see docs/planner.md for the files and commits):
- :class:`Buckets` is ``aggregation.TimedFloat64Buckets`` (the linear average over a window of
  1-second buckets, over the partial window since the first write after a quiet window);
- :class:`MaxWindow` is ``aggregation/max.TimeWindow`` (the scale-down-delay window);
- :class:`Decider` is ``scaling.autoscaler.Scale`` (panic mode, max scale up/down rates, activation
  scale, the delay window);
- :class:`PodAutoscaler` is the KPA reconciler's ``scaler.scale`` and ``handleScaleToZero`` (min/max
  and initial scale, active for a stable window, then zero after max(grace period, retention)).
Times are seconds as floats from the start of the simulation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .settings import Kpa

#: How often the decider runs (``scaling.tickInterval``) and the scraper (``scrapeTickInterval``).
DECIDER_TICK_S = 2
SCRAPE_TICK_S = 1


class Buckets:
    """A window average over 1-second buckets, as ``TimedFloat64Buckets.WindowAverage``."""

    def __init__(self, window_s: float) -> None:
        self.size = max(1, math.ceil(window_s))
        self.window = window_s
        self.buckets = [0.0] * self.size
        self.total = 0.0
        self.first: int | None = None
        self.last: int | None = None

    def record(self, t: int, value: float) -> None:
        last = self.last
        if last is not None and t == last + 1:  # the usual case: one scrape a second
            i = t % self.size
            self.total += value - self.buckets[i]
            self.buckets[i] = value
            self.last = t
            return
        if last is not None and t == last:
            self.buckets[t % self.size] += value
            self.total += value
            return
        if self.first is None:
            self.first = t
        if last is None or t > last:
            if last is None or t - last > self.window:
                self.first = t
                self.buckets = [0.0] * self.size
                self.total = 0.0
            else:
                for i in range(last + 1, t + 1):
                    self.total -= self.buckets[i % self.size]
                    self.buckets[i % self.size] = 0.0
            self.last = t
        self.buckets[t % self.size] += value
        self.total += value

    def average(self, now: int) -> float:
        last, first = self.last, self.first
        if last is None or first is None or now - last > self.window:
            return 0.0
        d = now - last
        if d <= 0:
            return _six_digits(self.total / min(last - first + 1, self.size))
        if d < self.window:
            total = self.total
            for i in range(last + 1, now + 1):
                total -= self.buckets[i % self.size]
            return _six_digits(total / min(last - first + 1, self.size - d))
        return 0.0


def _six_digits(x: float) -> float:
    """Knative rounds window averages down to 6 decimal places (``roundToNDigits``)."""
    return math.floor(x * 1e6) / 1e6


class MaxWindow:
    """The largest value recorded in the last ``window_s`` (``max.TimeWindow``, granularity = tick)."""

    def __init__(self, window_s: float) -> None:
        self.window = window_s
        self.values: list[tuple[float, int]] = []

    def record(self, now: float, value: int) -> int:
        self.values = [(t, v) for t, v in self.values if t > now - self.window and v > value]
        self.values.append((now, value))
        return max(v for _, v in self.values)


@dataclass
class Decision:
    desired: int
    panicking: bool


class Decider:
    """``autoscaler.Scale``: the desired pod count from the stable and panic averages."""

    def __init__(self, kpa: Kpa) -> None:
        # Knative creates the autoscaler with the revision, before any pod is ready: not panicking.
        self.kpa = kpa
        self.stable = Buckets(kpa.stable_window_s)
        self.panic = Buckets(kpa.panic_window_s)
        self.delay = MaxWindow(kpa.scale_down_delay_s) if kpa.scale_down_delay_s > 0 else None
        self.panic_time: float | None = None
        self.max_panic_pods = 0
        self.latest = -1
        self.raw = -1  # the last desired count before the scale-down delay

    def has_data(self, now: int) -> bool:
        """False when nothing was recorded for a stable window (Knative's ``ErrNoData``: no decision)."""
        return self.stable.last is not None and now - self.stable.last <= self.stable.window

    def record(self, t: int, value: float) -> None:
        self.stable.record(t, value)
        self.panic.record(t, value)

    def scale(self, now: int, ready: int) -> Decision:
        k = self.kpa
        ready_f = max(1.0, float(ready))
        max_up = math.ceil(k.max_scale_up_rate * ready_f)
        max_down = math.floor(ready_f / k.max_scale_down_rate)
        dspc = math.ceil(self.stable.average(now) / k.target)
        dppc = math.ceil(self.panic.average(now) / k.target)
        stable_pods = int(min(max(dspc, max_down), max_up))
        panic_pods = int(min(max(dppc, max_down), max_up))
        if k.activation_scale > 1:
            if dspc > 0 and k.activation_scale > stable_pods:
                stable_pods = k.activation_scale
            if dppc > 0 and k.activation_scale > panic_pods:
                panic_pods = k.activation_scale
        over = dppc / ready_f >= k.panic_threshold
        if over:
            self.panic_time = now
        elif self.panic_time is not None and self.panic_time + k.stable_window_s < now:
            self.panic_time = None
            self.max_panic_pods = 0
        desired = stable_pods
        if self.panic_time is not None:
            desired = max(desired, panic_pods)
            self.max_panic_pods = max(self.max_panic_pods, desired)
            desired = self.max_panic_pods  # never scale down in panic mode
        self.raw = desired
        if self.delay is not None:
            desired = self.delay.record(now, desired)
        self.latest = desired
        return Decision(desired, self.panic_time is not None)


class PodAutoscaler:
    """The KPA reconciler: bounds, initial scale, and when a revision may go to zero.

    ``state`` is the PA's Active condition: ``active``, ``activating`` (scaling from zero, requests
    held by the activator) or ``inactive``; ``since`` is when it last changed.
    """

    def __init__(self, kpa: Kpa, pods: int) -> None:
        self.kpa = kpa
        self.state = "active" if pods > 0 else "inactive"
        self.since = 0.0
        self.initialized = pods >= kpa.initial_scale

    def bounds(self) -> tuple[int, int]:
        lo, hi = self.kpa.min_scale, self.kpa.max_scale
        if self.kpa.initial_scale > 1 and not self.initialized:
            lo = max(lo, self.kpa.initial_scale)
        return lo, hi

    def reconcile(self, now: float, desired: int, current: int, ready: int) -> int:
        """The replica count after this reconcile (``current`` where Knative leaves the scale alone)."""
        lo, hi = self.bounds()
        want = max(desired, lo)
        if hi:
            want = min(want, hi)
        apply = want
        k = self.kpa
        if want == 0:
            if not k.enable_scale_to_zero:
                want = apply = 1
            elif self.state == "activating":
                want, apply = -1, current
            elif self.state == "active":
                # Active for a stable window: mark inactive (the activator takes over), keep the pods.
                if now - self.since >= k.stable_window_s:
                    apply = current
                else:
                    want = apply = 1
            elif now - self.since < max(k.grace_period_s, k.retention_s):
                apply = current
        self._condition(now, want, ready)
        return apply

    def _condition(self, now: float, want: int, ready: int) -> None:
        """``computeActiveCondition``, with ``activeThreshold``: min-scale (at least 1) ready pods, or
        the initial scale until the revision reached it once."""
        k = self.kpa
        min_ready = max(k.min_scale, k.initial_scale if not self.initialized else 1)
        if ready >= min_ready:
            self.initialized = True
        if want == 0:
            new = "inactive"
        elif ready < min_ready:
            new = "activating" if want > 0 or self.state != "inactive" else "inactive"
        else:
            new = "active" if want > 0 or self.state != "inactive" else "inactive"
        if new != self.state:
            self.state, self.since = new, now
