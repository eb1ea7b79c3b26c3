"""Validating Kubernetes objects: the CRD JSON schemas (package data) plus the webhook rules.

Used on every generated object and by ``graph-router manifests --check FILE...`` on hand-written ones.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from importlib import resources
from typing import Any, Literal

from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from ..errors import Problem
from ..spec_checks import SpecChecker
from . import rules
from .rules import AUTOSCALING

Variant = Literal["strict", "faithful"]
SCHEMAS: dict[tuple[str, str], str] = {
    ("serving.kserve.io/v1beta1", "InferenceService"): "kserve-inferenceservice-v1beta1",
    ("serving.kserve.io/v1alpha1", "InferenceGraph"): "kserve-inferencegraph-v1alpha1",
    ("serving.knative.dev/v1", "Service"): "knative-service-v1",
}
DEPLOYMENT_MODES = ("Serverless", "Knative", "RawDeployment", "Standard", "ModelMesh")
AUTOSCALER_CLASSES = ("hpa", "keda", "external", "none")


@functools.cache
def validator(api_version: str, kind: str, variant: Variant = "strict") -> Draft202012Validator | None:
    """The schema validator for (apiVersion, kind), or None for kinds we have no schema for."""
    stem = SCHEMAS.get((api_version, kind))
    if stem is None:
        return None
    suffix = ".strict.json" if variant == "strict" else ".json"
    text = resources.files("graph_router").joinpath("schemas", stem + suffix).read_text(encoding="utf-8")
    return Draft202012Validator(json.loads(text))


def schema_problems(obj: Mapping[str, Any], variant: Variant = "strict") -> list[Problem]:
    v = validator(str(obj.get("apiVersion")), str(obj.get("kind")), variant)
    if v is None:
        return []
    out = []
    for err in sorted(v.iter_errors(obj), key=lambda e: [str(p) for p in e.absolute_path]):
        out.append(Problem(_dotted(err.absolute_path), err.message))
    return out


def _dotted(parts: Any) -> str:
    s = ""
    for p in parts:
        s += f"[{p}]" if isinstance(p, int) else (f".{p}" if s else str(p))
    return s


def check_object(obj: Mapping[str, Any], variant: Variant = "strict") -> list[Problem]:
    """Schema problems, then (if the shape is right) the webhook rules for the object's kind."""
    problems = schema_problems(obj, variant)
    if problems:
        return problems
    kind = obj.get("kind")
    if (obj.get("apiVersion"), kind) not in SCHEMAS:
        return []
    if kind == "InferenceService":
        return _isvc_rules(obj)
    if kind == "InferenceGraph":
        return _ig_rules(obj)
    return _ksvc_rules(obj)


def label(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    return f"{obj.get('kind', '?')}/{name or '?'}"


def _ann_path(prefix: str) -> rules.PathFn:
    return lambda key: f"{prefix}.{key}"


def _ksvc_rules(obj: Mapping[str, Any]) -> list[Problem]:
    name = obj["metadata"].get("name", "")
    spec = obj["spec"]
    template = spec.get("template", {})
    tmeta = template.get("metadata", {}) or {}
    tspec = template.get("spec", {}) or {}
    problems = rules.check_dns1035(name, "metadata.name")
    problems += rules.check_no_autoscaling_on_service(
        obj["metadata"].get("annotations") or {}, _ann_path("metadata.annotations")
    )
    problems += rules.check_autoscaling_annotations(
        tmeta.get("annotations") or {}, _ann_path("spec.template.metadata.annotations")
    )
    problems += rules.check_container_concurrency(
        tspec.get("containerConcurrency"), "spec.template.spec.containerConcurrency"
    )
    problems += rules.check_timeout(tspec.get("timeoutSeconds"), "spec.template.spec.timeoutSeconds")
    rev = tmeta.get("name")
    if rev and not str(rev).startswith(f"{name}-"):
        problems.append(Problem("spec.template.metadata.name", f'invalid value: "{rev}" must have prefix "{name}-"'))
    if spec.get("traffic"):
        problems += rules.check_traffic(spec["traffic"], "spec.traffic", service=name)
    return problems


def _isvc_rules(obj: Mapping[str, Any]) -> list[Problem]:
    meta = obj["metadata"]
    anns: Mapping[str, str] = meta.get("annotations") or {}
    predictor = obj["spec"].get("predictor", {})
    canary = predictor.get("canaryTrafficPercent") is not None
    tag_routing = anns.get("serving.kserve.io/enable-tag-routing") == "true"
    problems = rules.check_isvc_name(meta.get("name", ""), "metadata.name", canary=canary, tag_routing=tag_routing)
    p = "spec.predictor"
    problems += rules.check_isvc_replicas(
        predictor.get("minReplicas"), predictor.get("maxReplicas"), lambda f: f"{p}.{f}"
    )
    hpa = anns.get(AUTOSCALING + "class") == rules.HPA
    problems += rules.check_isvc_metric(
        predictor.get("scaleMetric"), predictor.get("scaleTarget"), hpa, lambda f: f"{p}.{f}"
    )
    problems += rules.check_container_concurrency(predictor.get("containerConcurrency"), f"{p}.containerConcurrency")
    problems += rules.check_timeout(predictor.get("timeout"), f"{p}.timeout")
    problems += rules.check_canary_percent(predictor.get("canaryTrafficPercent"), f"{p}.canaryTrafficPercent")
    problems += rules.check_autoscaling_annotations(anns, _ann_path("metadata.annotations"))
    mode = anns.get("serving.kserve.io/deploymentMode")
    if mode is not None and mode not in DEPLOYMENT_MODES:
        problems.append(
            Problem(
                "metadata.annotations.serving.kserve.io/deploymentMode",
                f'unknown deployment mode "{mode}": KServe silently falls back to the cluster '
                f"default; use one of {', '.join(DEPLOYMENT_MODES)}",
            )
        )
    cls = anns.get("serving.kserve.io/autoscalerClass")
    if cls is not None and cls not in AUTOSCALER_CLASSES:
        problems.append(
            Problem(
                "metadata.annotations.serving.kserve.io/autoscalerClass",
                f"[{cls}] is not a supported autoscaler class type",
            )
        )
    return problems


def _ig_rules(obj: Mapping[str, Any]) -> list[Problem]:
    name = obj["metadata"].get("name", "")
    problems = [
        Problem(p.path, p.message.replace("InferenceService", "InferenceGraph"))
        for p in rules.check_isvc_name(name, "metadata.name", canary=False, tag_routing=False)
    ]
    found = SpecChecker(graph_name=name).check(obj["spec"])
    problems += [Problem(f"spec.{q.path}" if q.path else "spec", q.message) for q in found]
    problems += rules.check_autoscaling_annotations(
        obj["metadata"].get("annotations") or {}, _ann_path("metadata.annotations")
    )
    return problems
