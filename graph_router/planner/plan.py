"""A plan: the graph, its deployment description and its traffic in; a simulation per what-if out.

``--set SERVICE.KEY=VALUE`` changes the description as if the user had edited ``deploy.yaml`` (the
same structure and Knative checks run on the result), or one of the planner's own model inputs
(``coldStart``, ``serviceTime``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..errors import Problem, SpecError
from ..manifests.checks import check_deploy
from ..manifests.deploy import Autoscaling, DeploySpec, parse_deploy
from ..manifests.gonum import parse_go_duration
from ..spec import GraphDocument
from ..spec_checks import did_you_mean
from .fanout import Scenario, calls_per_request, leaves, scenarios
from .settings import DEFAULT_COLD_START_S, DEFAULT_SERVICE_TIME_S, Cluster, Model, ServiceSettings, kpa_for
from .simulate import Progress, Result, simulate
from .traffic import Traffic, discretize

SCALING_KEYS = ("minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "containerConcurrency")
AUTOSCALING_KEYS = tuple(f.alias or n for n, f in Autoscaling.model_fields.items())
MODEL_KEYS = {"coldStart": "cold_start_s", "serviceTime": "service_time_s"}


@dataclass(frozen=True)
class Setting:
    """One ``--set SERVICE.KEY=VALUE``."""

    service: str
    key: str
    value: Any
    text: str


@dataclass
class ModelInputs:
    """Cold start and service time: ``{service: seconds}``, with ``"*"`` for every service."""

    cold_start_s: dict[str, float] = field(default_factory=dict)
    service_time_s: dict[str, float] = field(default_factory=dict)

    def model(self, name: str, measured: Mapping[str, float]) -> Model:
        cold = self.cold_start_s.get(name, self.cold_start_s.get("*", DEFAULT_COLD_START_S))
        if name in self.service_time_s:
            service = self.service_time_s[name]
        else:
            service = measured.get(name, self.service_time_s.get("*", DEFAULT_SERVICE_TIME_S))
        return Model(cold_start_s=cold, service_time_s=service)


@dataclass
class Plan:
    """One simulated run and what it was run with."""

    result: Result
    settings: dict[str, ServiceSettings]
    calls: dict[str, float]
    scenarios: list[Scenario]


def parse_seconds(text: str) -> float | None:
    """``10s``, ``250ms``, ``2m`` (Go durations) or a bare number of seconds; None when neither."""
    try:
        value = float(text)
    except ValueError:
        ns = parse_go_duration(text.strip())
        return ns / 1e9 if ns is not None and ns >= 0 else None
    return value if value >= 0 else None


def parse_setting(text: str) -> Setting:
    """``SERVICE.KEY=VALUE``; the value is read as YAML (``1`` is a number, ``60s`` a string)."""
    where = f"--set {text}"
    target, sep, raw = text.partition("=")
    service, dot, key = target.rpartition(".")
    if not sep or not dot or not service or not key:
        raise SpecError(Problem(where, "expected SERVICE.KEY=VALUE, e.g. --set fraud-model.minReplicas=1"))
    known = (*SCALING_KEYS, *AUTOSCALING_KEYS, *MODEL_KEYS)
    if key not in known:
        raise SpecError(Problem(where, f"unknown key {key!r}{did_you_mean(key, known)}; known: {', '.join(known)}"))
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    if key in MODEL_KEYS:
        seconds = parse_seconds(str(value))
        if seconds is None:
            raise SpecError(Problem(where, f"{key} is a duration such as 20s or 150ms, got {raw!r}"))
        value = seconds
    return Setting(service, key, value, text)


def apply_settings(raw_deploy: Mapping[str, Any], sets: Sequence[Setting]) -> dict[str, Any]:
    """The description with each deployment key of ``sets`` changed (model keys are not in it)."""
    data = copy.deepcopy(dict(raw_deploy))
    services = data.get("services") or {}
    for s in sets:
        if s.service not in services:
            known = ", ".join(services) or "none"
            raise SpecError(Problem(f"--set {s.text}", f"no service {s.service!r} in the deployment description "
                                    f"(services: {known}){did_you_mean(s.service, services)}"))
        if s.key in MODEL_KEYS:
            continue
        entry = services[s.service]
        if s.key in AUTOSCALING_KEYS:
            entry.setdefault("autoscaling", {})[s.key] = s.value
        else:
            entry[s.key] = s.value
    return data


def load_deploy_checked(raw: Any, doc: GraphDocument, *, source: str, warnings: list[str]) -> DeploySpec:
    """Structure, then the checks ``graph-router manifests`` runs (Knative's and KServe's rules)."""
    spec = parse_deploy(raw, source=source)
    problems, warns = check_deploy(spec, [doc], router_names=[spec.router.name or doc.name],
                                   namespace=spec.namespace or doc.namespace or "default", mode=spec.router.mode)
    if problems:
        raise SpecError(problems, source=source)
    warnings.extend(warns)
    return spec


def service_settings(
    scens: Sequence[Scenario],
    spec: DeploySpec,
    inputs: ModelInputs,
    measured: Mapping[str, float],
    *,
    cluster: Cluster,
    warnings: list[str],
    source: str,
) -> dict[str, ServiceSettings]:
    """Each service the scenarios call, with its KPA settings (None: not run by Knative)."""
    problems: list[Problem] = []
    out: dict[str, ServiceSettings] = {}
    for name in dict.fromkeys(leaf.service for s in scens for leaf in leaves(s.tree)):
        backend = spec.services.get(name) or _by_host(name, spec)
        kpa = kpa_for(name, backend, cluster, problems) if backend is not None else None
        if backend is None:
            warnings.append(f"{name}: not in the deployment description: simulated as always ready, never scaled")
        out[name] = ServiceSettings(name, kpa, inputs.model(name, measured))
    if problems:
        raise SpecError(problems, source=source)
    return out


def _by_host(host: str, spec: DeploySpec) -> Any:
    """A ``serviceUrl`` at a described service's cluster address (``<name>.<namespace>.svc...``)."""
    first, _, rest = host.partition(".")
    cluster_local = rest.endswith((".svc", ".svc.cluster.local")) or (rest and "." not in rest)
    return spec.services.get(first) if cluster_local else None


def run(
    doc: GraphDocument,
    spec: DeploySpec,
    traffic: Traffic,
    inputs: ModelInputs,
    *,
    shares: Mapping[str, float],
    warnings: list[str],
    source: str,
    progress: Progress | None = None,
    cluster: Cluster | None = None,
    seed: int = 0,
) -> Plan:
    scens = scenarios(doc, {**traffic.shares, **shares}, warnings)
    settings = service_settings(scens, spec, inputs, traffic.service_times, cluster=cluster or Cluster(),
                                warnings=warnings, source=source)
    rps = traffic.rps if traffic.kind == "log" else discretize(traffic.rps, seed=seed)
    result = simulate(scens, settings, rps, progress)
    return Plan(result, settings, calls_per_request(scens), scens)


def with_model_sets(inputs: ModelInputs, sets: Sequence[Setting]) -> ModelInputs:
    """The model inputs with the ``coldStart``/``serviceTime`` what-ifs applied."""
    out = ModelInputs(dict(inputs.cold_start_s), dict(inputs.service_time_s))
    for s in sets:
        if s.key == "coldStart":
            out.cold_start_s[s.service] = float(s.value)
        elif s.key == "serviceTime":
            out.service_time_s[s.service] = float(s.value)
    return out
