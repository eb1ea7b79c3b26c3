"""KServe objects: InferenceServices in Serverless mode, and the InferenceGraph for KServe's own router."""

from __future__ import annotations

import copy
from typing import Any

from ..spec import EXTENSION_FIELDS, GraphDocument
from .deploy import DEFAULT_ROUTER_IMAGE, GRPC_PORT, InferenceServiceBackend, KnativeBackend, RouterSettings
from .knative import labels, scaling_annotations
from .rules import AUTOSCALING

ISVC_API = "serving.kserve.io/v1beta1"
IG_API = "serving.kserve.io/v1alpha1"
DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
TAG_ROUTING = "serving.kserve.io/enable-tag-routing"
Obj = dict[str, Any]

#: Why each extension field cannot go to KServe's router (printed with each removal).
REMOVAL_REASONS = {
    "retry": "KServe's router has no retries",
    "defaultRetry": "KServe's router has no retries",
    "timeout": "KServe's router has no per-step timeout (spec.routerTimeouts.serviceClient is global)",
    "mapOutputsToInputs": "KServe's router has no output-to-input mapping",
    "aggregate": "KServe's Ensemble always merges responses keyed by step name",
    "stickyHeader": "KServe's Splitter has no sticky routing",
    "propagateHeaders": "KServe's router takes headers.propagate from the inferenceservice-config ConfigMap",
    "prewarm": "KServe's router does not wake later steps; each scaled-to-zero step pays its own cold start",
    "warmupUrl": "KServe's router does not wake later steps",
    "mirror": "KServe's router has no shadow traffic (the shadow's service is still deployed)",
}


def inference_service(name: str, b: InferenceServiceBackend, *, namespace: str, graph: str) -> Obj:
    """An InferenceService in Serverless mode running the stable model version."""
    annotations = {DEPLOYMENT_MODE: "Serverless"}
    if b.tag_routing:
        annotations[TAG_ROUTING] = "true"
    if b.autoscaling is not None:
        # KServe copies the InferenceService's annotations onto the predictor's revision template.
        annotations.update({AUTOSCALING + k: v for k, v in b.autoscaling.annotation_items().items()})
    model: Obj = {"modelFormat": {"name": b.model_format}}
    if b.model_format_version:
        model["modelFormat"]["version"] = b.model_format_version
    if b.protocol in ("v2", "grpc-v2"):
        # KServe's documented gRPC setup: protocolVersion v2 (what the runtimes list) plus an h2c port
        model["protocolVersion"] = "v2"
    if b.runtime:
        model["runtime"] = b.runtime
    if b.runtime_version:
        model["runtimeVersion"] = b.runtime_version
    model["storageUri"] = b.storage_uri
    if b.args:
        model["args"] = list(b.args)
    if b.env:
        model["env"] = [{"name": k, "value": v} for k, v in b.env.items()]
    if b.protocol == "grpc-v2":
        model["ports"] = [{"name": "h2c", "protocol": "TCP", "containerPort": GRPC_PORT}]
    if b.resources is not None and b.resources.wire():
        model["resources"] = b.resources.wire()
    predictor: Obj = {"minReplicas": b.min_replicas if b.min_replicas is not None else 0}
    for key, value in (
        ("maxReplicas", b.max_replicas),
        ("scaleTarget", b.scale_target),
        ("scaleMetric", b.scale_metric),
        ("containerConcurrency", b.container_concurrency),
        ("timeout", b.timeout),
        ("serviceAccountName", b.service_account_name),
    ):
        if value is not None:
            predictor[key] = value
    predictor["model"] = model
    return {
        "apiVersion": ISVC_API,
        "kind": "InferenceService",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels(graph, "backend"),
            "annotations": dict(sorted(annotations.items())),
        },
        "spec": {"predictor": predictor},
    }


def apply_isvc_canary(isvc: Obj, b: InferenceServiceBackend, percent: int) -> Obj:
    """The InferenceService with the canary model as latest revision, given ``percent`` of traffic."""
    out = copy.deepcopy(isvc)
    predictor = out["spec"]["predictor"]
    if b.canary is not None:
        model = predictor["model"]
        model["storageUri"] = b.canary.storage_uri
        if b.canary.runtime:
            model["runtime"] = b.canary.runtime
        if b.canary.runtime_version:
            model["runtimeVersion"] = b.canary.runtime_version
    predictor["canaryTrafficPercent"] = percent
    return out


def inference_graph(
    doc: GraphDocument,
    *,
    name: str,
    namespace: str,
    router: RouterSettings,
    knative_urls: dict[str, str],
    warnings: list[str],
) -> Obj:
    """KServe's InferenceGraph: our extension fields removed, each removal reported in ``warnings``.

    KServe resolves ``serviceName`` only to an InferenceService of that name, so steps naming a
    plain Knative Service get its cluster-local URL as ``serviceUrl`` instead.
    """
    spec = strip_extensions(doc.wire(), warnings)
    _knative_steps_as_urls(spec, knative_urls, warnings)
    for key, value in (
        ("minReplicas", router.min_replicas if router.min_replicas is not None else 1),
        ("maxReplicas", router.max_replicas),
        ("scaleTarget", router.scale_target),
        ("scaleMetric", router.scale_metric),
        ("timeout", router.timeout),
        ("serviceAccountName", router.service_account_name),
    ):
        if value is not None:
            spec[key] = value
    if router.resources is not None and router.resources.wire():
        spec["resources"] = router.resources.wire()
    # KServe copies the InferenceGraph's annotations onto its router's revision template; min-scale
    # there works on every KServe version (older ones ignore spec.minReplicas and default to 1).
    annotations = {DEPLOYMENT_MODE: "Serverless", **scaling_annotations(router, default_min=1)}
    warnings.extend(_ignored_router_settings(router))
    return {
        "apiVersion": IG_API,
        "kind": "InferenceGraph",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels(doc.name, "router"),
            "annotations": dict(sorted(annotations.items())),
        },
        "spec": spec,
    }


def _knative_steps_as_urls(spec: Obj, knative_urls: dict[str, str], warnings: list[str]) -> None:
    for node_name, node in spec.get("nodes", {}).items():
        for i, step in enumerate(node.get("steps", [])):
            svc = step.get("serviceName")
            if svc in knative_urls:
                del step["serviceName"]
                step["serviceUrl"] = knative_urls[svc]
                warnings.append(
                    f'nodes.{node_name}.steps[{i}].serviceName "{svc}" replaced by serviceUrl '
                    f"{knative_urls[svc]}: KServe resolves serviceName only to InferenceServices"
                )


def _ignored_router_settings(r: RouterSettings) -> list[str]:
    """Router settings an InferenceGraph cannot carry: KServe's controller decides them."""
    ignored = []
    if r.image != DEFAULT_ROUTER_IMAGE:
        ignored.append("router.image ignored: KServe's router image is set in the inferenceservice-config ConfigMap")
    for key, value in (("env", r.env), ("args", r.args), ("containerConcurrency", r.container_concurrency)):
        if value:
            ignored.append(f"router.{key} ignored: an InferenceGraph has no such field")
    return ignored


def strip_extensions(wire: Obj, warnings: list[str]) -> Obj:
    """A copy of the wire spec without our additive fields (EXTENSION_FIELDS), each removal reported."""
    spec = copy.deepcopy(wire)
    for key in sorted(EXTENSION_FIELDS["graph"] & spec.keys()):
        del spec[key]
        warnings.append(f"{key} removed: {_reason(key)}")
    for node_name, node in spec.get("nodes", {}).items():
        for key in sorted(EXTENSION_FIELDS["node"] & node.keys()):
            del node[key]
            warnings.append(f"nodes.{node_name}.{key} removed: {_reason(key)}")
        for i, step in enumerate(node.get("steps", [])):
            for key in sorted(EXTENSION_FIELDS["step"] & step.keys()):
                del step[key]
                warnings.append(f"nodes.{node_name}.steps[{i}].{key} removed: {_reason(key)}")
    return spec


def _reason(key: str) -> str:
    return REMOVAL_REASONS.get(key, "not part of KServe's InferenceGraph")


def knative_backend_names(services: dict[str, InferenceServiceBackend | KnativeBackend]) -> set[str]:
    return {n for n, b in services.items() if isinstance(b, KnativeBackend)}
