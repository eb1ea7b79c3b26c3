"""The router's objects: ConfigMap with the graph, then a Knative Service or Deployment+Service+PDB."""

from __future__ import annotations

import hashlib
from typing import Any

import yaml

from ..spec import GraphDocument
from .deploy import RouterSettings
from .knative import env_list, knative_service, labels, scaling_annotations

GRAPH_DIR = "/etc/graph-router"
GRAPH_FILE = "graph.yaml"
PORT = 8080
GRAPH_HASH = "graph-router.dev/graph-sha256"
#: ``graph-router serve --drain-seconds`` default.
ROUTER_DRAIN_SECONDS = 30
Obj = dict[str, Any]


def graph_configmap(doc: GraphDocument, *, name: str, namespace: str) -> tuple[Obj, str]:
    """The ConfigMap holding the graph (extensions kept: our router runs it), and its content hash."""
    resource = {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "InferenceGraph",
        "metadata": {"name": doc.name},
        "spec": doc.wire(),
    }
    text = yaml.safe_dump(resource, sort_keys=False, default_flow_style=False)
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-graph", "namespace": namespace, "labels": labels(doc.name, "router")},
        "data": {GRAPH_FILE: text},
    }
    return cm, hashlib.sha256(text.encode()).hexdigest()


def _container(r: RouterSettings, urls: dict[str, str], *, deployment: bool) -> Obj:
    args = ["serve", f"{GRAPH_DIR}/{GRAPH_FILE}"]
    for svc, url in sorted(urls.items()):
        args += ["--service", f"{svc}={url}"]
    args += list(r.args or ())
    c: Obj = {"name": "router", "image": r.image, "command": ["graph-router"], "args": args}
    if r.env:
        c["env"] = env_list(r.env)
    c["ports"] = [{"containerPort": PORT, "name": "http" if deployment else "http1"}]
    ready: Obj = {"path": "/readyz"}
    live: Obj = {"path": "/healthz"}
    if deployment:  # Knative fills the probe port in itself (and rejects a different one)
        ready["port"] = live["port"] = PORT
    c["readinessProbe"] = {"httpGet": ready, "periodSeconds": 5}
    c["livenessProbe"] = {"httpGet": live, "periodSeconds": 10}
    if r.resources is not None and r.resources.wire():
        c["resources"] = r.resources.wire()
    c["volumeMounts"] = [{"name": "graph", "mountPath": GRAPH_DIR, "readOnly": True}]
    return c


def _volumes(cm_name: str) -> list[Obj]:
    return [{"name": "graph", "configMap": {"name": cm_name}}]


def knative_router(
    doc: GraphDocument, *, name: str, namespace: str, r: RouterSettings, urls: dict[str, str]
) -> list[Obj]:
    """ConfigMap + Knative Service; ``min-scale`` 1 by default so the entry point never cold-starts."""
    cm, digest = graph_configmap(doc, name=name, namespace=namespace)
    anns = scaling_annotations(r, default_min=1)
    # A ConfigMap change alone creates no new revision; the hash makes a graph change roll out.
    anns[GRAPH_HASH] = digest
    extra: Obj = {"volumes": _volumes(cm["metadata"]["name"])}
    if r.service_account_name:
        extra["serviceAccountName"] = r.service_account_name
    ksvc = knative_service(
        name,
        namespace,
        meta_labels=labels(doc.name, "router"),
        template_annotations=dict(sorted(anns.items())),
        container=_container(r, urls, deployment=False),
        scaling=r,
        extra_spec=extra,
    )
    return [cm, ksvc]


def deployment_router(
    doc: GraphDocument, *, name: str, namespace: str, r: RouterSettings, urls: dict[str, str]
) -> list[Obj]:
    """ConfigMap + Deployment + Service + PodDisruptionBudget: an always-on router."""
    cm, digest = graph_configmap(doc, name=name, namespace=namespace)
    lab = labels(doc.name, "router")
    selector = {"app.kubernetes.io/name": name, "app.kubernetes.io/component": "router"}
    pod_labels = {**lab, **selector}
    pod_spec: Obj = {
        "containers": [_container(r, urls, deployment=True)],
        "volumes": _volumes(cm["metadata"]["name"]),
    }
    if r.service_account_name:
        pod_spec["serviceAccountName"] = r.service_account_name
    # On SIGTERM the router keeps serving (readyz 503) for its drain time, then finishes in-flight
    # requests: Kubernetes' default 30 s would kill it mid-drain.
    pod_spec["terminationGracePeriodSeconds"] = ROUTER_DRAIN_SECONDS + (r.timeout or 60) + 5
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": pod_labels},
        "spec": {
            "replicas": r.replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": pod_labels, "annotations": {GRAPH_HASH: digest}},
                "spec": pod_spec,
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": pod_labels},
        "spec": {"selector": selector, "ports": [{"name": "http", "port": 80, "targetPort": PORT}]},
    }
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": namespace, "labels": pod_labels},
        # With one replica, minAvailable 1 would block every node drain: allow the disruption.
        "spec": {"minAvailable": 1 if r.replicas >= 2 else 0, "selector": {"matchLabels": selector}},
    }
    return [cm, deployment, service, pdb]
