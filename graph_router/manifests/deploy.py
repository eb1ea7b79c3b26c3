"""The deployment description (``deploy.yaml``): how each ``serviceName`` of a graph runs, and the router.

Structure only: types, required fields, unknown keys (with a "did you mean"). The semantic checks
(KServe's and Knative's rules) are in :mod:`.checks`. Keys are camelCase like the CRDs; the KPA
annotations under ``autoscaling`` keep Knative's kebab-case names.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from ..errors import Problem, SpecError
from ..spec_checks import did_you_mean

DEFAULT_ROUTER_IMAGE = "ghcr.io/graph-router/graph-router:0.1.0"
#: KServe's model servers answer gRPC on 8081; Knative routes HTTP/2 cleartext to a port named ``h2c``.
GRPC_PORT = 8081
Scalar = str | int | float


class RouterMode(StrEnum):
    KNATIVE = "knative"
    DEPLOYMENT = "deployment"
    KSERVE = "kserve"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)


class Autoscaling(BaseModel):
    """Knative Pod Autoscaler annotations, by their Knative names (``autoscaling.knative.dev/<name>``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    class_: str | None = Field(default=None, alias="class")
    window: Scalar | None = None
    panic_window_percentage: Scalar | None = Field(default=None, alias="panic-window-percentage")
    panic_threshold_percentage: Scalar | None = Field(default=None, alias="panic-threshold-percentage")
    scale_down_delay: Scalar | None = Field(default=None, alias="scale-down-delay")
    initial_scale: Scalar | None = Field(default=None, alias="initial-scale")
    activation_scale: Scalar | None = Field(default=None, alias="activation-scale")
    target_utilization_percentage: Scalar | None = Field(default=None, alias="target-utilization-percentage")
    target_burst_capacity: Scalar | None = Field(default=None, alias="target-burst-capacity")
    scale_to_zero_pod_retention_period: Scalar | None = Field(default=None, alias="scale-to-zero-pod-retention-period")
    metric_aggregation_algorithm: str | None = Field(default=None, alias="metric-aggregation-algorithm")

    def annotation_items(self) -> dict[str, str]:
        """Set fields as ``{knative-name: string value}`` (``class: kpa|hpa`` expanded)."""
        out: dict[str, str] = {}
        for name, value in self.model_dump(by_alias=True, exclude_none=True).items():
            if name == "class" and value in ("kpa", "hpa"):
                value = f"{value}.autoscaling.knative.dev"
            out[name] = scalar_str(value)
        return out


def scalar_str(value: Scalar) -> str:
    """A YAML scalar as the string Kubernetes needs (``5`` -> ``"5"``, ``0.5`` -> ``"0.5"``)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class Resources(_Model):
    requests: dict[str, Scalar] | None = None
    limits: dict[str, Scalar] | None = None

    def wire(self) -> dict[str, dict[str, str]]:
        """Quantities as strings: the API server rejects floats such as ``cpu: 0.5`` in a CRD."""
        out: dict[str, dict[str, str]] = {}
        for key in ("requests", "limits"):
            values: dict[str, Scalar] | None = getattr(self, key)
            if values:
                out[key] = {k: scalar_str(v) for k, v in values.items()}
        return out


class Scaling(_Model):
    """Serverless settings shared by backends and the router."""

    min_replicas: int | None = None
    max_replicas: int | None = None
    scale_target: int | float | None = None
    scale_metric: str | None = None
    container_concurrency: int | None = None
    timeout: int | None = None
    autoscaling: Autoscaling | None = None
    resources: Resources | None = None


class IsvcCanary(_Model):
    """The candidate model version, rolled out with KServe's ``canaryTrafficPercent``."""

    storage_uri: str
    runtime: str | None = None
    runtime_version: str | None = None
    traffic_percent: int = 10


class InferenceServiceBackend(Scaling):
    kind: Literal["InferenceService"] = "InferenceService"
    model_format: str
    model_format_version: str | None = None
    storage_uri: str
    runtime: str | None = None
    runtime_version: str | None = None
    #: ``grpc-v2``: the router calls the model's Open Inference Protocol gRPC endpoint (``h2c`` port 8081).
    protocol: Literal["v1", "v2", "grpc-v2"] = "v1"
    env: dict[str, str] | None = None
    args: tuple[str, ...] | None = None
    tag_routing: bool = False
    canary: IsvcCanary | None = None
    service_account_name: str | None = None


class TrafficTarget(_Model):
    revision_name: str | None = None
    latest_revision: bool | None = None
    percent: int | None = None
    tag: str | None = None


class KnativeBackend(Scaling):
    kind: Literal["KnativeService"] = "KnativeService"
    image: str
    #: The container port; default 8080, or 8081 (KServe's gRPC port) with ``protocol: grpc-v2``.
    port: int | None = None
    command: tuple[str, ...] | None = None
    args: tuple[str, ...] | None = None
    env: dict[str, str] | None = None
    #: ``grpc-v2``: the container serves the Open Inference Protocol over gRPC (Knative's ``h2c`` port name).
    protocol: Literal["v1", "v2", "grpc-v2"] = "v1"
    #: Path the router POSTs to; default: the protocol's predict path for the service's name.
    path: str | None = None
    model_name: str | None = None
    revision_name: str | None = None
    traffic: tuple[TrafficTarget, ...] | None = None
    service_account_name: str | None = None


    @property
    def container_port(self) -> int:
        if self.port is not None:
            return self.port
        return GRPC_PORT if self.protocol == "grpc-v2" else 8080


Backend = InferenceServiceBackend | KnativeBackend


class RouterSettings(Scaling):
    name: str | None = None
    image: str = DEFAULT_ROUTER_IMAGE
    mode: RouterMode = RouterMode.KNATIVE
    #: Deployment mode only (Knative scales by minReplicas/maxReplicas).
    replicas: int = 2
    env: dict[str, str] | None = None
    args: tuple[str, ...] | None = None
    service_account_name: str | None = None


class DeploySpec(_Model):
    namespace: str | None = None
    router: RouterSettings = RouterSettings()
    services: dict[str, Backend] = {}


BACKEND_KINDS: dict[str, type[InferenceServiceBackend] | type[KnativeBackend]] = {
    "InferenceService": InferenceServiceBackend,
    "KnativeService": KnativeBackend,
}


def load_deploy(path: str | Path) -> DeploySpec:
    """Read and structurally validate a deployment description; SpecError lists every problem."""
    source = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(Problem("", f"cannot read file: {exc}"), source=source) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(Problem("", f"{where}invalid YAML: {problem}"), source=source) from exc
    return parse_deploy(data, source=source)


def parse_deploy(data: Any, *, source: str = "<deploy>") -> DeploySpec:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise SpecError(Problem("", f"expected a mapping, got {type(data).__name__}"), source=source)
    problems: list[Problem] = []
    services: dict[str, Backend] = {}
    raw_services = data.get("services") or {}
    if not isinstance(raw_services, Mapping):
        problems.append(Problem("services", "expected a mapping of serviceName -> description"))
        raw_services = {}
    for name, raw in raw_services.items():
        backend = _parse_backend(str(name), raw, problems)
        if backend is not None:
            services[str(name)] = backend
    rest = {k: v for k, v in data.items() if k != "services"}
    spec: DeploySpec | None = None
    try:
        spec = DeploySpec.model_validate(rest)
    except ValidationError as exc:
        problems.extend(_problems(exc, "", DeploySpec))
    if problems or spec is None:
        raise SpecError(problems, source=source)
    return spec.model_copy(update={"services": services})


def _parse_backend(name: str, raw: Any, problems: list[Problem]) -> Backend | None:
    path = f"services.{name}"
    if not isinstance(raw, Mapping):
        problems.append(Problem(path, f"expected a mapping, got {type(raw).__name__}"))
        return None
    kind = raw.get("kind", "InferenceService")
    model = BACKEND_KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        problems.append(Problem(f"{path}.kind", f"must be one of InferenceService, KnativeService, got {kind!r}"))
        return None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems.extend(_problems(exc, path, model))
        return None


def _problems(exc: ValidationError, prefix: str, model: type[BaseModel]) -> list[Problem]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"] if not str(p).startswith(("function-", "tagged-union"))]
        path = ".".join(([prefix] if prefix else []) + loc)
        path = path.replace(".[", "[")
        msg = err["msg"]
        if err["type"] == "extra_forbidden" and loc:
            msg = "unknown field" + did_you_mean(loc[-1], _known_fields(model, loc[:-1]))
        out.append(Problem(path, msg))
    return out


def _known_fields(model: type[BaseModel], loc: list[str]) -> list[str]:
    """Field names (aliases) of the model found by walking ``loc``; [] when the walk gets lost."""
    current: Any = model
    for part in loc:
        fields = getattr(current, "model_fields", None)
        if fields is None:
            return []
        match = next((f for n, f in fields.items() if (f.alias or n) == part), None)
        if match is None:
            return []
        current = _inner_model(match.annotation)
    fields = getattr(current, "model_fields", None) or {}
    return [f.alias or n for n, f in fields.items()]


def _inner_model(annotation: Any) -> Any:
    for arg in getattr(annotation, "__args__", ()) or ():
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return annotation
