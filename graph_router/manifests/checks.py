"""Checks of a deployment description against its graphs (paths into ``deploy.yaml``).

The rules themselves (with KServe's and Knative's wording) are in :mod:`.rules`; the same rules run
over hand-written manifests in :mod:`.validate`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..errors import Problem
from ..spec import GraphDocument
from . import rules
from .deploy import Backend, DeploySpec, InferenceServiceBackend, KnativeBackend, RouterMode, Scaling
from .knative import scaling_annotations
from .resolve import RUNTIME_PROTOCOLS, isvc_model_name, isvc_protocol, predict_path
from .rules import AUTOSCALING, HPA

#: KServe ``SupportedStorageURIPrefixList``.
STORAGE_PREFIXES = (
    "gs://",
    "s3://",
    "pvc://",
    "file://",
    "https://",
    "http://",
    "hdfs://",
    "webhdfs://",
    "oci://",
    "oci+native://",
    "oci+fetch://",
    "hf://",
)
_SCHEME = re.compile(r"\w+?://")
_RFC1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ANNOTATION_FIELDS = {
    "min-scale": "minReplicas",
    "max-scale": "maxReplicas",
    "target": "scaleTarget",
    "metric": "scaleMetric",
}


def deploy_path(prefix: str) -> rules.PathFn:
    """Maps an ``autoscaling.knative.dev/<name>`` key back to where the description sets it."""

    def path(key: str) -> str:
        short = key.removeprefix(AUTOSCALING)
        field = _ANNOTATION_FIELDS.get(short)
        return f"{prefix}.{field}" if field else f"{prefix}.autoscaling.{short}"

    return path


def check_deploy(
    spec: DeploySpec,
    graphs: Sequence[GraphDocument],
    *,
    router_names: Sequence[str],
    namespace: str,
    mode: RouterMode,
) -> tuple[list[Problem], list[str]]:
    """Every problem of the description (errors), and warnings (e.g. services no graph uses)."""
    problems: list[Problem] = []
    warnings: list[str] = []
    if not _RFC1123.match(namespace) or len(namespace) > 63:
        problems.append(
            Problem(
                "namespace",
                "a lowercase RFC 1123 label must consist of lower case alphanumeric "
                "characters or '-', and must start and end with an alphanumeric "
                "character (e.g. 'my-name',  or '123-abc', regex used for validation "
                "is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            )
        )
    for name, backend in spec.services.items():
        problems.extend(check_backend(name, backend, warnings))
    for router_name in router_names:
        problems.extend(_check_router(spec, router_name, mode, warnings))
    problems.extend(_check_coverage(spec, graphs, warnings))
    # Several routers share the router settings: report each finding once.
    return list(dict.fromkeys(problems)), list(dict.fromkeys(warnings))


def check_backend(name: str, b: Backend, warnings: list[str]) -> list[Problem]:
    at = f"services.{name}"
    if isinstance(b, InferenceServiceBackend):
        return _check_isvc(name, b, at, warnings)
    return _check_ksvc(name, b, at, warnings)


def _common(b: Scaling, at: str, warnings: list[str], *, default_min: int) -> list[Problem]:
    problems = rules.check_container_concurrency(b.container_concurrency, f"{at}.containerConcurrency")
    problems += rules.check_timeout(b.timeout, f"{at}.timeout")
    problems += rules.check_autoscaling_annotations(
        scaling_annotations(b, default_min=default_min), deploy_path(at), warnings=warnings
    )
    return problems


def _check_isvc(name: str, b: InferenceServiceBackend, at: str, warnings: list[str]) -> list[Problem]:
    problems = rules.check_isvc_name(name, at, canary=b.canary is not None, tag_routing=b.tag_routing)
    problems += rules.check_isvc_replicas(b.min_replicas, b.max_replicas, lambda f: f"{at}.{f}")
    if isinstance(b.scale_target, float):
        problems.append(
            Problem(
                f"{at}.scaleTarget",
                f"must be an integer for an InferenceService (KServe's scaleTarget is an int32), got {b.scale_target}",
            )
        )
    hpa = b.autoscaling is not None and b.autoscaling.annotation_items().get("class") == HPA
    target = b.scale_target if isinstance(b.scale_target, int) else None
    problems += rules.check_isvc_metric(b.scale_metric, target, hpa, lambda f: f"{at}.{f}")
    problems += rules.check_container_concurrency(b.container_concurrency, f"{at}.containerConcurrency")
    problems += rules.check_timeout(b.timeout, f"{at}.timeout")
    # The annotations KServe derives must still pass Knative; replicas and metric were reported above
    # in KServe's wording.
    kserve_said = {f"{at}.minReplicas", f"{at}.maxReplicas", f"{at}.scaleMetric"}
    problems += [
        p
        for p in rules.check_autoscaling_annotations(
            scaling_annotations(b, default_min=0), deploy_path(at), warnings=warnings
        )
        if p.path not in kserve_said
    ]
    _warn_protocol(name, b, at, warnings)
    return problems + _check_storage(b, at)


def _warn_protocol(name: str, b: InferenceServiceBackend, at: str, warnings: list[str]) -> None:
    """KServe's controller takes the URL's protocol from an explicit runtime, not from protocolVersion."""
    if b.runtime is None:
        return
    if b.protocol == "grpc-v2":
        versions = RUNTIME_PROTOCOLS.get(b.runtime)
        if versions is not None and "v2" not in versions and "grpc-v2" not in versions:
            warnings.append(f"{at}.protocol: grpc-v2, but runtime {b.runtime} serves neither v2 nor grpc-v2 "
                            f"({', '.join(versions)}): the router's gRPC calls would find no endpoint")
        return
    if b.runtime not in RUNTIME_PROTOCOLS:
        warnings.append(
            f"{at}.runtime: {b.runtime} is not a KServe built-in runtime: KServe's controller takes the "
            f"protocol from its protocolVersions; the router assumes {b.protocol}"
        )
        return
    used = isvc_protocol(b)
    if used != b.protocol:
        path = predict_path(isvc_model_name(name, b), used)
        warnings.append(
            f"{at}.protocol: {b.protocol}, but runtime {b.runtime} lists {used} first, so KServe's "
            f"controller (and the router) call {path}; omit runtime to let the protocol choose"
        )


def _check_storage(b: InferenceServiceBackend, at: str) -> list[Problem]:
    """KServe's storageUri prefixes, and the canary's settings."""
    problems: list[Problem] = []
    for uri_at, uri in (
        (f"{at}.storageUri", b.storage_uri),
        (f"{at}.canary.storageUri", b.canary.storage_uri if b.canary else None),
    ):
        if uri and _SCHEME.search(uri) and not uri.startswith(STORAGE_PREFIXES) and "blob.core.windows.net" not in uri:
            problems.append(
                Problem(
                    uri_at,
                    f"storageUri, must be one of: [{', '.join(STORAGE_PREFIXES)}] or match "
                    "https://{}.blob.core.windows.net/{}/{} or be an absolute or relative "
                    f"local path. StorageUri [{uri}] is not supported",
                )
            )
    if b.canary is not None:
        problems += rules.check_canary_percent(b.canary.traffic_percent, f"{at}.canary.trafficPercent")
        if b.canary.storage_uri == b.storage_uri and b.canary.runtime in (None, b.runtime):
            problems.append(
                Problem(
                    f"{at}.canary.storageUri",
                    "the canary must differ from the stable model: same storageUri and runtime",
                )
            )
    return problems


def _check_ksvc(name: str, b: KnativeBackend, at: str, warnings: list[str]) -> list[Problem]:
    problems = rules.check_dns1035(name, at)
    problems += _common(b, at, warnings, default_min=0)
    if b.revision_name is not None and not b.revision_name.startswith(f"{name}-"):
        problems.append(Problem(f"{at}.revisionName", f'invalid value: "{b.revision_name}" must have prefix "{name}-"'))
    if b.traffic:
        problems += rules.check_traffic(
            [t.model_dump(by_alias=True, exclude_none=True) for t in b.traffic], f"{at}.traffic", service=name
        )
    if b.port is not None and not 1 <= b.port <= 65535:
        problems.append(Problem(f"{at}.port", f"expected 1 <= {b.port} <= 65535"))
    if b.path is not None and not b.path.startswith("/"):
        problems.append(Problem(f"{at}.path", f"must start with '/', got {b.path!r}"))
    return problems


def _check_router(spec: DeploySpec, router_name: str, mode: RouterMode, warnings: list[str]) -> list[Problem]:
    r = spec.router
    at = "router"
    name_at = f"{at}.name" if r.name else at
    if mode is RouterMode.KSERVE:
        problems = rules.check_isvc_name(router_name, name_at, canary=False, tag_routing=False)
        problems = [Problem(p.path, p.message.replace("InferenceService", "InferenceGraph")) for p in problems]
        if isinstance(r.scale_target, float):
            problems.append(
                Problem(f"{at}.scaleTarget", f"must be an integer for an InferenceGraph, got {r.scale_target}")
            )
    else:
        problems = rules.check_dns1035(router_name, name_at)
    if mode is RouterMode.DEPLOYMENT:
        if r.replicas < 1:
            problems.append(Problem(f"{at}.replicas", f"must be at least 1, got {r.replicas}"))
    else:
        problems += _common(r, at, warnings, default_min=1)
        if r.min_replicas == 0:
            warnings.append(
                "router.minReplicas: 0 lets the router scale to zero: every request after an idle "
                "period waits for a cold start before any backend is called"
            )
    for name, b in spec.services.items():
        taken = {name, f"{name}-predictor"} if isinstance(b, InferenceServiceBackend) else {name}
        if router_name in taken:
            problems.append(
                Problem(
                    name_at,
                    f'the router\'s name "{router_name}" collides with services.{name}; set router.name',
                )
            )
    return problems


def _check_coverage(spec: DeploySpec, graphs: Sequence[GraphDocument], warnings: list[str]) -> list[Problem]:
    problems: list[Problem] = []
    used: set[str] = set()
    for doc in graphs:
        for node_name, node in doc.spec.nodes.items():
            for i, step in enumerate(node.steps):
                shadow = step.mirror.service_name if step.mirror is not None else None
                for svc, at in ((step.service_name, ""), (shadow, ".mirror")):
                    if svc is None:
                        continue
                    used.add(svc)
                    if svc not in spec.services:
                        problems.append(
                            Problem(
                                f"services.{svc}",
                                f'not described: graph "{doc.name}" calls '
                                f'serviceName "{svc}" at nodes.{node_name}.steps[{i}]{at}',
                            )
                        )
    for name in spec.services:
        if name not in used:
            warnings.append(f'services.{name}: described, but no graph uses serviceName "{name}"')
    return list({(p.path, p.message): p for p in problems}.values())
