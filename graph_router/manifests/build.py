"""graph + deployment description -> Kubernetes objects (plain dicts), checked before and after."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import Problem, SpecError
from ..spec import GraphDocument
from .checks import check_deploy
from .deploy import DeploySpec, InferenceServiceBackend, KnativeBackend, RouterMode
from .knative import backend_service
from .kserve import inference_graph, inference_service
from .prewarm import prewarm_args
from .resolve import backend_url
from .router import deployment_router, knative_router
from .validate import check_object, label

Obj = dict[str, Any]


@dataclass
class Manifests:
    """The objects to apply, in apply order, and what the user should know (printed on stderr)."""

    objects: list[Obj]
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def resolve_namespace(cli: str | None, spec: DeploySpec, graphs: Sequence[GraphDocument]) -> str:
    """``--namespace``, else the description's, else the graph's, else ``default``."""
    for ns in (cli, spec.namespace, *(g.namespace for g in graphs)):
        if ns:
            return ns
    return "default"


def build_manifests(
    graphs: Sequence[GraphDocument],
    spec: DeploySpec,
    *,
    namespace: str | None = None,
    mode: RouterMode | None = None,
    source: str | None = None,
) -> Manifests:
    """Every backend, then the router for each graph. Raises SpecError listing every problem."""
    if not graphs:
        raise SpecError(Problem("", "no graph given"), source=source)
    if len(graphs) != 1 and spec.router.name:
        raise SpecError(Problem("router.name", "set only with a single graph"), source=source)
    mode = mode or spec.router.mode
    ns = resolve_namespace(namespace, spec, graphs)
    names = {g.name: spec.router.name or g.name for g in graphs}
    problems, warnings = check_deploy(spec, graphs, router_names=list(names.values()), namespace=ns, mode=mode)
    if problems:
        raise SpecError(problems, source=source)
    out = Manifests(objects=[], warnings=warnings)
    for name, b in spec.services.items():
        graph_label = next((g.name for g in graphs if name in g.service_names()), graphs[0].name)
        if isinstance(b, InferenceServiceBackend):
            out.objects.append(inference_service(name, b, namespace=ns, graph=graph_label))
            if b.canary is not None:
                out.notes.append(
                    f"{name}: the canary ({b.canary.storage_uri}, {b.canary.traffic_percent}%) is not "
                    f"in this output; once {name} is Ready, start it with "
                    f"`graph-router rollout canary {name} --deploy DEPLOY`"
                )
        else:
            out.objects.append(backend_service(name, b, namespace=ns, graph=graph_label))
    for g in graphs:
        warned: list[str] = []
        out.objects.extend(_router_objects(g, spec, names[g.name], ns, mode, warned))
        # With several graphs, say which one a removal is from.
        out.warnings.extend(f"{g.name}: {w}" if len(graphs) > 1 else w for w in warned)
    _self_check(out.objects)
    return out


def _router_objects(
    g: GraphDocument, spec: DeploySpec, name: str, ns: str, mode: RouterMode, warnings: list[str]
) -> list[Obj]:
    used = g.service_names()
    urls = {svc: backend_url(svc, b, ns) for svc, b in spec.services.items() if svc in used}
    if mode is RouterMode.KSERVE:
        warnings.extend(_kserve_grpc_warnings(spec, sorted(urls)))
        knative_urls = {s: u for s, u in urls.items() if isinstance(spec.services[s], KnativeBackend)}
        return [
            inference_graph(
                g, name=name, namespace=ns, router=spec.router, knative_urls=knative_urls, warnings=warnings
            )
        ]
    # each backend's own scale-to-zero horizon for prewarming (the user's own args come after, and win)
    idle = prewarm_args(spec.services, used)
    r = spec.router.model_copy(update={"args": (*idle, *(spec.router.args or ()))}) if idle else spec.router
    if mode is RouterMode.DEPLOYMENT:
        return deployment_router(g, name=name, namespace=ns, r=r, urls=urls)
    return knative_router(g, name=name, namespace=ns, r=r, urls=urls)


def _kserve_grpc_warnings(spec: DeploySpec, names: Sequence[str]) -> list[str]:
    """KServe's router calls every step over HTTP: say what that means for a backend declaring gRPC."""
    out = []
    for svc in names:
        b = spec.services[svc]
        if b.protocol != "grpc-v2":
            continue
        if isinstance(b, InferenceServiceBackend):
            out.append(f"services.{svc}.protocol grpc-v2: KServe's router calls steps over HTTP only, so it calls "
                       "this InferenceService's HTTP v2 endpoint; --router knative or deployment calls it over gRPC")
        else:
            out.append(f"services.{svc}.protocol grpc-v2: KServe's router calls steps over HTTP only and cannot "
                       "call this gRPC-only Knative Service; use --router knative or deployment")
    return out


def _self_check(objects: Sequence[Obj]) -> None:
    """A generated object the API server or a webhook would reject is our bug: never print it."""
    problems = [Problem(f"{label(o)}: {p.path}", p.message) for o in objects for p in check_object(o)]
    if problems:
        raise SpecError(problems, source="generated manifests (a graph-router bug, please report it)")
