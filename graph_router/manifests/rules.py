"""The rules KServe's and Knative's webhooks enforce and the CRD schemas do not, with their wording.

Each check takes the value(s) and a ``path`` (where the value lives in the user's file) and returns
:class:`~graph_router.errors.Problem` s. Messages quote upstream: knative/serving
``pkg/apis/autoscaling/annotation_validation.go``, ``pkg/apis/serving/v1/route_validation.go``,
``pkg/apis/serving/metadata_validation.go``; kserve ``pkg/apis/serving/v1beta1/component.go`` and
``inference_service_validation.go``; Kubernetes ``IsDNS1035Label``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import Problem
from .gonum import format_go_duration, go_float, go_g, go_int, parse_go_duration

AUTOSCALING = "autoscaling.knative.dev/"
KPA = "kpa.autoscaling.knative.dev"
HPA = "hpa.autoscaling.knative.dev"
WINDOW_MIN_NS = 6 * 10**9
WINDOW_MAX_NS = 3600 * 10**9
#: Knative's default ``max-revision-timeout-seconds`` and ``container-concurrency-max-limit``.
MAX_TIMEOUT_SECONDS = 600
MAX_CONTAINER_CONCURRENCY = 1000
DNS1035_MAX = 63
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS1035_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
    f"regex used for validation is '{DNS1035_FMT}')"
)
ISVC_NAME_MSG = (
    'the InferenceService "{}" is invalid: a InferenceService name must consist of lower case '
    "alphanumeric characters or '-', and must start with alphabetical character. "
    f'(e.g. "my-name" or "abc-123", regex used for validation is \'{DNS1035_FMT}\')'
)
#: Suffix of the Knative Service KServe creates for the predictor, and the traffic tags it adds:
#: ``prev`` while a canary runs, ``latest`` with ``serving.kserve.io/enable-tag-routing: "true"``.
#: A tag's host label is ``{tag}-{ksvc}``, which must also be a DNS label of at most 63 characters.
PREDICTOR_SUFFIX = "-predictor"
PathFn = Callable[[str], str]

# --- names ---------------------------------------------------------------------------------------


def check_dns1035(name: Any, path: str, *, max_len: int = DNS1035_MAX) -> list[Problem]:
    """Kubernetes ``IsDNS1035Label`` (plus a tighter length when a derived name must still fit)."""
    if not isinstance(name, str):
        return [Problem(path, f"must be a string, got {name!r}")]
    problems = []
    if len(name) > max_len:
        problems.append(Problem(path, f"must be no more than {max_len} characters"))
    if not _DNS1035.match(name):
        problems.append(Problem(path, DNS1035_MSG))
    return problems


def isvc_name_limit(*, canary: bool, tag_routing: bool) -> int:
    """Longest InferenceService name whose predictor (and its tag hosts) still fit a DNS label."""
    prefix = len("latest-") if tag_routing else len("prev-") if canary else 0
    return DNS1035_MAX - len(PREDICTOR_SUFFIX) - prefix


def check_isvc_name(name: str, path: str, *, canary: bool, tag_routing: bool) -> list[Problem]:
    """KServe's webhook regex and message; the length rule follows from the names KServe derives."""
    if not _DNS1035.match(name):
        return [Problem(path, ISVC_NAME_MSG.format(name))]
    limit = isvc_name_limit(canary=canary, tag_routing=tag_routing)
    if len(name) <= limit:
        return []
    if tag_routing:
        why = f'with tag routing on, the host label "latest-{name}{PREDICTOR_SUFFIX}"'
    elif canary:
        why = f'while a canary runs, the host label "prev-{name}{PREDICTOR_SUFFIX}"'
    else:
        why = f'the predictor\'s Knative Service "{name}{PREDICTOR_SUFFIX}"'
    return [
        Problem(
            path,
            f"must be no more than {limit} characters: {why} must be no more than {DNS1035_MAX} characters",
        )
    ]


# --- replicas, concurrency, timeouts -------------------------------------------------------------


def check_isvc_replicas(min_r: int | None, max_r: int | None, path: PathFn) -> list[Problem]:
    """KServe ``ComponentExtensionSpec`` checks (component.go), with KServe's messages."""
    problems = []
    if min_r is not None and min_r < 0:
        problems.append(Problem(path("minReplicas"), "'MinReplicas' cannot be less than 0"))
    if max_r is not None and max_r < 0:
        problems.append(Problem(path("maxReplicas"), "'MaxReplicas' cannot be less than 0"))
    if min_r is not None and max_r and min_r > max_r:
        problems.append(Problem(path("minReplicas"), "'MinReplicas' cannot be greater than MaxReplicas"))
    return problems


def check_container_concurrency(value: int | None, path: str) -> list[Problem]:
    """Knative ``ValidateContainerConcurrency`` with the default config (0 allowed, at most 1000)."""
    if value is not None and not 0 <= value <= MAX_CONTAINER_CONCURRENCY:
        return [Problem(path, f"expected 0 <= {value} <= {MAX_CONTAINER_CONCURRENCY}")]
    return []


def check_timeout(value: int | None, path: str) -> list[Problem]:
    """Knative's ``timeoutSeconds`` bound with the default ``max-revision-timeout-seconds``."""
    if value is not None and not 0 <= value <= MAX_TIMEOUT_SECONDS:
        return [Problem(path, f"expected 0 <= {value} <= {MAX_TIMEOUT_SECONDS}")]
    return []


def check_isvc_metric(metric: str | None, target: int | None, hpa: bool, path: PathFn) -> list[Problem]:
    """KServe ``validateScalingKPACompExtension`` / ``validateScalingHPACompExtension``."""
    chosen = metric or ("cpu" if hpa else "concurrency")
    allowed = ("cpu", "memory") if hpa else ("concurrency", "rps")
    if chosen not in allowed:
        return [Problem(path("scaleMetric"), f"[{chosen}] is not a supported metric")]
    if target is None:
        return []
    if not hpa and chosen == "rps" and target < 1:
        return [Problem(path("scaleTarget"), "the target for rps should be greater than 1")]
    if hpa and chosen == "cpu" and not 1 <= target <= 100:
        return [Problem(path("scaleTarget"), "the target utilization percentage should be a [1-100] integer")]
    return []


def check_canary_percent(value: int | None, path: str) -> list[Problem]:
    """KServe does not check this; Knative rejects the traffic block later, in status only."""
    if value is not None and not 0 <= value <= 100:
        return [Problem(path, f"expected 0 <= {value} <= 100")]
    return []


# --- traffic ---------------------------------------------------------------------------------------


def check_traffic(traffic: Sequence[Mapping[str, Any]], path: str, *, service: str) -> list[Problem]:
    """Knative ``validateTrafficList`` on a Service's ``spec.traffic``, with Knative's messages."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    total = 0
    for i, t in enumerate(traffic):
        at = f"{path}[{i}]"
        rev, latest, pct, tag = t.get("revisionName"), t.get("latestRevision"), t.get("percent"), t.get("tag")
        if latest is not None and bool(rev) == bool(latest):
            problems.append(
                Problem(
                    f"{at}.latestRevision",
                    f'may not set revisionName "{rev or ""}" when latestRevision is {str(bool(latest)).lower()}',
                )
            )
        if isinstance(pct, int):
            total += pct
            if not 0 <= pct <= 100:
                problems.append(Problem(f"{at}.percent", f"expected 0 <= {pct} <= 100"))
        if isinstance(rev, str) and rev and not rev.startswith(f"{service}-"):
            problems.append(
                Problem(
                    f"{at}.revisionName",
                    f'revision name "{rev}" must start with "{service}-" (the Service\'s name)',
                )
            )
        if not tag:
            continue
        if not isinstance(tag, str) or not _DNS1035.match(tag) or len(tag) > DNS1035_MAX:
            problems.append(Problem(f"{at}.tag", f"invalid value: not a DNS 1035 label: [{DNS1035_MSG}]"))
        if tag in seen:
            problems.append(
                Problem(
                    f"{at}.tag",
                    f'Multiple definitions for "{tag}" ({path}[{i}].tag, {path}[{seen[tag]}].tag)',
                )
            )
        else:
            seen[tag] = i
        if isinstance(tag, str) and len(f"{tag}-{service}") > DNS1035_MAX:
            problems.append(
                Problem(f"{at}.tag", f'host label "{tag}-{service}" must be no more than {DNS1035_MAX} characters')
            )
    if traffic and total != 100:
        problems.append(Problem(path, f"Traffic targets sum to {total}, want 100"))
    return problems


# --- autoscaling annotations (Knative's ValidateAnnotations) ----------------------------------------


def check_autoscaling_annotations(
    anns: Mapping[str, str], path: PathFn, *, warnings: list[str] | None = None
) -> list[Problem]:
    """Knative ``ValidateAnnotations`` over ``autoscaling.knative.dev/*`` keys (values as strings).

    ``path(key)`` maps the full annotation key to where the user wrote it. ``initial-scale: "0"``
    depends on the cluster's ``allow-zero-initial-scale`` (default false): reported as a warning.
    """
    problems: list[Problem] = []
    for key, value in anns.items():
        if key.startswith(AUTOSCALING) and not isinstance(value, str):
            problems.append(Problem(path(key), f"annotation values must be strings, got {value!r}"))
    a = {k: v for k, v in anns.items() if k.startswith(AUTOSCALING) and isinstance(v, str)}
    for fn in (_class, _min_max, _floats, _durations, _metric, _initial_scale):
        problems.extend(fn(a, path))
    if warnings is not None and a.get(AUTOSCALING + "class") == HPA and a.get(AUTOSCALING + "min-scale", "0") == "0":
        warnings.append(
            f"{path(AUTOSCALING + 'min-scale')}: the hpa class cannot scale to zero: "
            "Kubernetes' HPA keeps at least one pod"
        )
    init = a.get(AUTOSCALING + "initial-scale")
    if warnings is not None and init is not None and go_int(init) == 0:
        warnings.append(
            f"{path(AUTOSCALING + 'initial-scale')}: {AUTOSCALING}initial-scale=0 is rejected "
            'unless the cluster sets allow-zero-initial-scale: "true" in config-autoscaler'
        )
    return problems


def _invalid(v: str, k: str, path: PathFn) -> Problem:
    return Problem(path(k), f"invalid value: {v}")


def _class(a: Mapping[str, str], path: PathFn) -> list[Problem]:
    k = AUTOSCALING + "class"
    v = a.get(k)
    if v is not None and v.endswith("autoscaling.knative.dev") and v not in (KPA, HPA):
        return [_invalid(v, k, path)]
    return []


def _min_max(a: Mapping[str, str], path: PathFn) -> list[Problem]:
    problems: list[Problem] = []
    bounds: dict[str, int] = {}
    for name in ("min-scale", "max-scale"):
        k = AUTOSCALING + name
        if k not in a:
            continue
        i = go_int(a[k])
        if i is None:
            problems.append(_invalid(a[k], k, path))
        elif not 0 <= i <= 2**31 - 1:
            problems.append(Problem(path(k), f"expected 0 <= {a[k]} <= {2**31 - 1}"))
        else:
            bounds[name] = i
    lo, hi = bounds.get("min-scale", 0), bounds.get("max-scale", 0)
    if hi != 0 and hi < lo:
        problems.append(Problem(path(AUTOSCALING + "max-scale"), f"max-scale={hi} is less than min-scale={lo}"))
    k = AUTOSCALING + "activation-scale"
    if k in a:
        nz = go_int(a[k])
        if nz is None:
            problems.append(_invalid(a[k], k, path))
        elif lo > nz:
            problems.append(Problem(path(k), f"min-scale={lo} is greater than min-activate-scale={nz}"))
        elif hi != 0 and hi < nz:
            problems.append(Problem(path(k), f"max-scale={hi} is less than min-activate-scale={nz}"))
        elif nz < 2:
            problems.append(Problem(path(k), f"min-activate-scale={nz} must be greater than 1"))
    return problems


_FLOAT_BOUNDS = {
    "panic-window-percentage": (1.0, 100.0),
    "panic-threshold-percentage": (110.0, 1000.0),
    "target-utilization-percentage": (1.0, 100.0),
}


def _floats(a: Mapping[str, str], path: PathFn) -> list[Problem]:
    problems: list[Problem] = []
    for name, (lo, hi) in _FLOAT_BOUNDS.items():
        k = AUTOSCALING + name
        if k in a:
            f = go_float(a[k])
            if f is None or math.isnan(f):
                problems.append(_invalid(a[k], k, path))
            elif not lo <= f <= hi:
                problems.append(Problem(path(k), f"expected {go_g(lo)} <= {a[k]} <= {go_g(hi)}"))
    k = AUTOSCALING + "target"
    if k in a:
        f = go_float(a[k])
        if f is None:
            problems.append(_invalid(a[k], k, path))
        elif f < 0.01:
            problems.append(Problem(path(k), f"target {a[k]} should be at least 0.01"))
    k = AUTOSCALING + "target-burst-capacity"
    if k in a:
        f = go_float(a[k])
        if f is None or (f < 0 and f != -1):
            problems.append(_invalid(a[k], k, path))
    return problems


def _durations(a: Mapping[str, str], path: PathFn) -> list[Problem]:
    problems: list[Problem] = []
    hi = format_go_duration(WINDOW_MAX_NS)
    k = AUTOSCALING + "window"
    if k in a:
        d = parse_go_duration(a[k])
        if d is None:
            problems.append(_invalid(a[k], k, path))
        elif not WINDOW_MIN_NS <= d <= WINDOW_MAX_NS:
            problems.append(Problem(path(k), f"expected {format_go_duration(WINDOW_MIN_NS)} <= {a[k]} <= {hi}"))
        elif d % 10**9:
            problems.append(Problem(path(k), "must be specified with at most second precision"))
    for name in ("scale-down-delay", "scale-to-zero-pod-retention-period"):
        k = AUTOSCALING + name
        if k not in a:
            continue
        d = parse_go_duration(a[k])
        if d is None:
            problems.append(_invalid(a[k], k, path))
        elif not 0 <= d <= WINDOW_MAX_NS:
            problems.append(Problem(path(k), f"expected 0s <= {a[k]} <= {hi}"))
        elif name == "scale-down-delay" and d % 10**9:
            problems.append(Problem(path(k), "must be specified with at most second precision"))
    return problems


def _metric(a: Mapping[str, str], path: PathFn) -> list[Problem]:
    k = AUTOSCALING + "metric"
    metric = a.get(k)
    if metric is None:
        return []
    cls = a.get(AUTOSCALING + "class", KPA)
    if cls == KPA and metric not in ("concurrency", "rps"):
        return [_invalid(metric, k, path)]
    if cls == HPA and metric not in ("cpu", "memory"):
        # Knative lets the HPA class take custom metrics; KServe (and we) accept only cpu and memory.
        return [_invalid(metric, k, path)]
    return []


def _initial_scale(a: Mapping[str, str], path: PathFn) -> list[Problem]:
    k = AUTOSCALING + "initial-scale"
    if k not in a:
        return []
    i = go_int(a[k])
    if i is None:
        return [_invalid(a[k], k, path)]
    if i < 0:
        return [Problem(path(k), f"invalid value: {a[k]} ({k} must be greater than 0)")]
    return []


def check_no_autoscaling_on_service(anns: Mapping[str, Any], path: PathFn) -> list[Problem]:
    """Knative ``ValidateHasNoAutoscalingAnnotation`` on a Service's own metadata."""
    return [
        Problem(
            path(k),
            f'invalid key name "{k}": autoscaling annotations must be put under '
            '"spec.template.metadata.annotations" to work',
        )
        for k in anns
        if k.startswith(AUTOSCALING)
    ]
