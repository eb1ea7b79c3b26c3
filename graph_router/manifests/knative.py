"""Knative Services (serving.knative.dev/v1): plain backends and the router's own Service.

Autoscaling annotations go on ``spec.template.metadata.annotations`` only: Knative rejects
``autoscaling.knative.dev/*`` on the Service's own metadata.
"""

from __future__ import annotations

from typing import Any

from .deploy import KnativeBackend, Scaling
from .rules import AUTOSCALING

KNATIVE_API = "serving.knative.dev/v1"
PART_OF = "app.kubernetes.io/part-of"
MANAGED_BY = "app.kubernetes.io/managed-by"
Obj = dict[str, Any]


def labels(graph: str, component: str) -> dict[str, str]:
    return {PART_OF: graph, "app.kubernetes.io/component": component, MANAGED_BY: "graph-router"}


def scaling_annotations(s: Scaling, *, default_min: int) -> dict[str, str]:
    """The ``autoscaling.knative.dev/*`` annotations a Knative revision gets for these settings.

    ``min-scale`` is always written: KServe's default is 1, which never scales to zero; ours is
    explicit so the file says what will happen.
    """
    anns = {AUTOSCALING + "min-scale": str(s.min_replicas if s.min_replicas is not None else default_min)}
    if s.max_replicas:
        anns[AUTOSCALING + "max-scale"] = str(s.max_replicas)
    if s.scale_target is not None:
        anns[AUTOSCALING + "target"] = _num(s.scale_target)
    if s.scale_metric is not None:
        anns[AUTOSCALING + "metric"] = s.scale_metric
    if s.autoscaling is not None:
        anns.update({AUTOSCALING + k: v for k, v in s.autoscaling.annotation_items().items()})
    return dict(sorted(anns.items()))


def _num(x: int | float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def env_list(env: dict[str, str] | None) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in (env or {}).items()]


def knative_service(
    name: str,
    namespace: str,
    *,
    meta_labels: dict[str, str],
    template_annotations: dict[str, str],
    container: Obj,
    scaling: Scaling,
    extra_spec: Obj | None = None,
    revision_name: str | None = None,
    traffic: list[Obj] | None = None,
) -> Obj:
    """A Knative Service with one container; ``extra_spec`` adds PodSpec fields (volumes, ...)."""
    template_meta: Obj = {"labels": dict(meta_labels), "annotations": template_annotations}
    if revision_name:
        template_meta = {"name": revision_name, **template_meta}
    tspec: Obj = {}
    if scaling.container_concurrency is not None:
        tspec["containerConcurrency"] = scaling.container_concurrency
    if scaling.timeout is not None:
        tspec["timeoutSeconds"] = scaling.timeout
    tspec["containers"] = [container]
    tspec.update(extra_spec or {})
    spec: Obj = {"template": {"metadata": template_meta, "spec": tspec}}
    if traffic:
        spec["traffic"] = traffic
    return {
        "apiVersion": KNATIVE_API,
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(meta_labels)},
        "spec": spec,
    }


def backend_service(name: str, b: KnativeBackend, *, namespace: str, graph: str) -> Obj:
    """A plain Knative Service running the user's image (pre/post-processors, custom models)."""
    container: Obj = {"name": "user-container", "image": b.image}
    if b.command:
        container["command"] = list(b.command)
    if b.args:
        container["args"] = list(b.args)
    if b.env:
        container["env"] = env_list(b.env)
    # Knative routes a port named h2c as HTTP/2 cleartext (gRPC); http1 otherwise
    container["ports"] = [{"containerPort": b.container_port, "name": "h2c" if b.protocol == "grpc-v2" else "http1"}]
    if b.resources is not None and b.resources.wire():
        container["resources"] = b.resources.wire()
    extra: Obj = {"serviceAccountName": b.service_account_name} if b.service_account_name else {}
    traffic = [t.model_dump(by_alias=True, exclude_none=True) for t in b.traffic] if b.traffic else None
    return knative_service(
        name,
        namespace,
        meta_labels=labels(graph, "backend"),
        template_annotations=scaling_annotations(b, default_min=0),
        container=container,
        scaling=b,
        extra_spec=extra,
        revision_name=b.revision_name,
        traffic=traffic,
    )
