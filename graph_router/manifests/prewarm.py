"""Each backend's scale-to-zero horizon, from its real autoscaling settings, for the router it deploys.

The router wakes a backend whose last answer is older than its idle threshold (``serve
--prewarm-idle``, default: Knative's stable window 60 s + scale-to-zero grace period 30 s). A
backend with its own ``window``, ``scale-down-delay`` or ``scale-to-zero-pod-retention-period``
stays up longer before it can be at zero; one with ``minReplicas >= 1`` never is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..prewarm import DEFAULT_IDLE, KNATIVE_GRACE_PERIOD, KNATIVE_STABLE_WINDOW
from .deploy import InferenceServiceBackend, KnativeBackend, Scalar
from .gonum import parse_go_duration

#: ``--prewarm-idle NAME=inf``: never woken (the backend never scales to zero).
NEVER = "inf"


def idle_threshold(b: InferenceServiceBackend | KnativeBackend) -> float | None:
    """Seconds of idleness after which ``b`` may be at zero; None when it never scales to zero."""
    if b.min_replicas is not None and b.min_replicas >= 1:
        return None
    a = b.autoscaling
    window = _seconds(a.window) if a is not None and a.window is not None else None
    total = (window if window is not None else KNATIVE_STABLE_WINDOW) + KNATIVE_GRACE_PERIOD
    if a is not None:
        for extra in (a.scale_down_delay, a.scale_to_zero_pod_retention_period):
            seconds = _seconds(extra) if extra is not None else None
            total += seconds or 0.0
    return total


def prewarm_args(services: Mapping[str, InferenceServiceBackend | KnativeBackend], used: Iterable[str]) -> list[str]:
    """``--prewarm-idle NAME=SECONDS`` for each used backend whose horizon is not the router's default."""
    args: list[str] = []
    for name in sorted(set(used) & set(services)):
        idle = idle_threshold(services[name])
        if idle is None:
            args += ["--prewarm-idle", f"{name}={NEVER}"]
        elif idle != DEFAULT_IDLE:
            args += ["--prewarm-idle", f"{name}={idle:g}"]
    return args


def _seconds(value: Scalar) -> float | None:
    """A Knative duration annotation (``"90s"``, ``"1m30s"``; a bare number is seconds) in seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    ns = parse_go_duration(str(value))
    if ns is None:
        try:
            return float(str(value))
        except ValueError:
            return None  # the autoscaling checks report it
    return ns / 1e9
