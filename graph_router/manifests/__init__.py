"""Kubernetes manifests for a graph and its backends (KServe InferenceServices, Knative Services),
the checks KServe's and Knative's webhooks would make, and canary rollouts. Pure functions: dicts out.
"""

from __future__ import annotations

from .build import Manifests, build_manifests, resolve_namespace
from .deploy import DEFAULT_ROUTER_IMAGE, DeploySpec, RouterMode, load_deploy, parse_deploy
from .validate import check_object

__all__ = [
    "DEFAULT_ROUTER_IMAGE",
    "DeploySpec",
    "Manifests",
    "RouterMode",
    "build_manifests",
    "check_object",
    "load_deploy",
    "parse_deploy",
    "resolve_namespace",
]
