"""The Knative Pod Autoscaler settings of each backend, derived exactly as Knative would from ``deploy.yaml``.

The annotations come from the same function ``graph-router manifests`` writes them with, so the
planner and the manifests cannot disagree. Defaults are Knative's ``config-autoscaler`` defaults
(knative/serving ``pkg/autoscaler/config/config.go``); targets are resolved as
``pkg/reconciler/autoscaling/resources/target.go`` (``ResolveMetricTarget``) and windows as
``MakeMetric`` / ``MakeDecider``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import Problem
from ..manifests.deploy import Backend
from ..manifests.gonum import go_float, go_int, parse_go_duration
from ..manifests.knative import scaling_annotations
from ..manifests.rules import AUTOSCALING, HPA

#: Knative's ``autoscaling.TargetMin`` and the metric bucket size (``config.BucketSize``), seconds.
TARGET_MIN = 0.01
BUCKET_SIZE_S = 1.0
#: What the planner assumes when nothing says otherwise (not Knative settings: properties of the model).
DEFAULT_COLD_START_S = 10.0
DEFAULT_SERVICE_TIME_S = 0.05


@dataclass(frozen=True)
class Cluster:
    """Knative's ``config-autoscaler`` defaults (cluster-wide; the planner assumes an unchanged ConfigMap)."""

    container_concurrency_target_default: float = 100.0
    container_concurrency_target_fraction: float = 0.7
    target_utilization: float = 0.7
    rps_target_default: float = 200.0
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    panic_window_percentage: float = 10.0
    panic_threshold_percentage: float = 200.0
    stable_window_s: float = 60.0
    scale_to_zero_grace_period_s: float = 30.0
    scale_to_zero_pod_retention_period_s: float = 0.0
    scale_down_delay_s: float = 0.0
    initial_scale: int = 1
    allow_zero_initial_scale: bool = False
    enable_scale_to_zero: bool = True


@dataclass(frozen=True)
class Kpa:
    """One revision's effective autoscaling settings (what Knative's decider and PA reconciler use)."""

    metric: str  # "concurrency" | "rps"
    target: float  # per-pod target after utilisation (DeciderSpec.TargetValue)
    total: float  # per-pod total (DeciderSpec.TotalValue)
    panic_threshold: float  # a factor (2.0 = 200%)
    stable_window_s: float
    panic_window_s: float
    max_scale_up_rate: float
    max_scale_down_rate: float
    scale_down_delay_s: float
    grace_period_s: float
    retention_s: float
    min_scale: int
    max_scale: int  # 0: no bound
    initial_scale: int
    activation_scale: int
    container_concurrency: int  # 0: unlimited
    enable_scale_to_zero: bool = True


@dataclass(frozen=True)
class Model:
    """What the planner needs to know of the model itself: how long a pod takes to start, and a request."""

    cold_start_s: float = DEFAULT_COLD_START_S
    service_time_s: float = DEFAULT_SERVICE_TIME_S


@dataclass(frozen=True)
class ServiceSettings:
    name: str
    kpa: Kpa | None  # None: not run by Knative (a serviceUrl outside the description): never scaled
    model: Model = field(default_factory=Model)


def kpa_for(name: str, backend: Backend, cluster: Cluster, problems: list[Problem]) -> Kpa | None:
    """The settings Knative derives from the annotations and ``containerConcurrency`` ``manifests`` writes."""
    anns = {k[len(AUTOSCALING):]: v for k, v in scaling_annotations(backend, default_min=0).items()}
    at = f"services.{name}"
    if anns.get("class") == HPA or anns.get("class") == "hpa":
        problems.append(Problem(f"{at}.autoscaling.class", "the planner simulates Knative's KPA only, not the hpa "
                                "class: remove `class: hpa` to plan with the KPA"))
        return None
    cc = backend.container_concurrency or 0
    metric = anns.get("metric", "concurrency")
    target, total = _resolve_target(anns, metric, cc, cluster)
    stable = _duration(anns, "window", cluster.stable_window_s, at, problems)
    panic_pct = _float(anns, "panic-window-percentage", cluster.panic_window_percentage, at, problems)
    panic_window = max(BUCKET_SIZE_S, float(round(stable * panic_pct / 100.0)))
    initial = _int(anns, "initial-scale", cluster.initial_scale, at, problems)
    if initial == 0 and not cluster.allow_zero_initial_scale:
        problems.append(Problem(f"{at}.autoscaling.initial-scale", "initial-scale 0 needs the cluster's "
                                "allow-zero-initial-scale: \"true\" (Knative's default is false); use 1 or more"))
    return Kpa(
        metric=metric,
        target=target,
        total=total,
        panic_threshold=_float(anns, "panic-threshold-percentage", cluster.panic_threshold_percentage, at,
                               problems) / 100.0,
        stable_window_s=stable,
        panic_window_s=panic_window,
        max_scale_up_rate=cluster.max_scale_up_rate,
        max_scale_down_rate=cluster.max_scale_down_rate,
        scale_down_delay_s=_duration(anns, "scale-down-delay", cluster.scale_down_delay_s, at, problems),
        grace_period_s=cluster.scale_to_zero_grace_period_s,
        retention_s=_duration(anns, "scale-to-zero-pod-retention-period",
                              cluster.scale_to_zero_pod_retention_period_s, at, problems),
        min_scale=_int(anns, "min-scale", 0, at, problems),
        max_scale=_int(anns, "max-scale", 0, at, problems),
        initial_scale=initial,
        activation_scale=_int(anns, "activation-scale", 1, at, problems),
        container_concurrency=cc,
        enable_scale_to_zero=cluster.enable_scale_to_zero,
    )


def _resolve_target(anns: Mapping[str, str], metric: str, cc: int, cluster: Cluster) -> tuple[float, float]:
    """Knative ``ResolveMetricTarget``: (target per pod after utilisation, total per pod)."""
    if metric == "rps":
        total, tu = cluster.rps_target_default, cluster.target_utilization
    else:
        total = float(cc) if cc else cluster.container_concurrency_target_default
        tu = cluster.container_concurrency_target_fraction
    annotated = go_float(anns["target"]) if "target" in anns else None
    if annotated is not None:
        total = min(annotated, float(cc)) if metric == "concurrency" and cc else annotated
    if "target-utilization-percentage" in anns:
        pct = go_float(anns["target-utilization-percentage"])
        if pct is not None:
            tu = pct / 100.0
    return max(TARGET_MIN, total * tu), total


def _float(anns: Mapping[str, str], key: str, default: float, at: str, problems: list[Problem]) -> float:
    if key not in anns:
        return default
    value = go_float(anns[key])
    if value is None or math.isnan(value):
        problems.append(Problem(f"{at}.autoscaling.{key}", f"expected a number, got {anns[key]!r}"))
        return default
    return value


def _int(anns: Mapping[str, str], key: str, default: int, at: str, problems: list[Problem]) -> int:
    if key not in anns:
        return default
    value = go_int(anns[key])
    if value is None or value < 0:
        problems.append(Problem(f"{at}.{key}", f"expected a whole number >= 0, got {anns[key]!r}"))
        return default
    return value


def _duration(anns: Mapping[str, str], key: str, default: float, at: str, problems: list[Problem]) -> float:
    if key not in anns:
        return default
    ns = parse_go_duration(anns[key])
    if ns is None or ns < 0:
        problems.append(Problem(f"{at}.autoscaling.{key}", f"expected a duration such as 60s or 2m, got {anns[key]!r}"))
        return default
    return ns / 1e9
