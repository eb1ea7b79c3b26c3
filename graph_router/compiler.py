"""Turns a validated :class:`GraphDocument` into data the engine runs without further decisions.

Conditions are compiled, node references resolved, backends bound, weights accumulated and retry
policies chosen here, once, at load time. The result is plain data: the engine
(:mod:`graph_router.engine`) interprets it, dispatching on each node's ``router_type``; nothing
here imports the engine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .backend import DEFAULT_RETRY_WINDOW, NO_RETRY, Backend, InProcessBackend, RetryPolicy, safe_retry
from .conditions import Condition, compile_condition
from .errors import Problem, SpecError
from .headers import header_safe
from .mirror import Mirror, Shadows, shadow_label
from .prewarm import WakeTarget, WarmState, is_http, wake_steps, warmup_url
from .selection import Selection, compile_selection
from .spec import Aggregate, GraphDocument, MirrorSpec, NodeSpec, Prewarm, RetryConfig, RouterType, StepSpec

ServiceTarget = str | Backend | Callable[..., Any]


@dataclass
class Resolver:
    """serviceName / serviceUrl -> Backend, as KServe's controller resolves names, with overrides.

    ``services`` maps a serviceName (or an exact serviceUrl) to a URL, a Backend, or a Python callable.
    ``http`` builds an HTTP backend for a URL (the composition root passes the transport's factory);
    ``grpc`` builds the backend of a ``grpc://`` / ``grpcs://`` URL.
    """

    namespace: str = "default"
    protocol: str = "v1"
    services: Mapping[str, ServiceTarget] = field(default_factory=dict)
    http: Callable[[str], Backend] | None = None
    grpc: Callable[[str], Backend] | None = None
    _cache: dict[str, Backend] = field(default_factory=dict)

    def service_url(self, name: str) -> str:
        if self.protocol == "grpc":  # Knative/KServe route h2c (the gRPC port) on the service's port 80
            return f"grpc://{name}.{self.namespace}.svc.cluster.local:80/{name}"
        host = f"http://{name}.{self.namespace}.svc.cluster.local"
        if self.protocol == "v2":
            return f"{host}/v2/models/{name}/infer"
        return f"{host}/v1/models/{name}:predict"

    def resolve(self, step: StepSpec) -> Backend:
        key = step.service_name or step.service_url or ""
        override = self.services.get(key)
        if override is None and step.service_name:
            return self._url(self.service_url(step.service_name))
        if override is None:
            return self._url(key)
        if isinstance(override, str):
            return self._url(override)
        if isinstance(override, Backend):
            return override
        if callable(override):
            return InProcessBackend(override, name=key)
        raise TypeError(f"service {key!r}: expected a URL, a Backend or a callable, got {type(override).__name__}")

    def _url(self, url: str) -> Backend:
        backend = self._cache.get(url)
        if backend is None and url[:7].lower() in ("grpc://", "grpcs:/"):
            if self.grpc is None:
                raise ValueError(f"{url}: no gRPC transport configured")
            backend = self._cache[url] = self.grpc(url)
        if backend is None:
            if self.http is None:
                raise ValueError(f"no HTTP transport configured for {url}")
            backend = self._cache[url] = self.http(url)
        return backend


@dataclass(slots=True, eq=False)
class CompiledStep:
    """One step, decided once: its backend or nested node, condition, input selection and retry policy.

    Data only, except ``warm``: the prewarmer binds a backend's warmth after compiling (it outlives
    reloads) and the engine stamps it. ``node`` is set while compiling, once the nested node is built.
    Identity-hashed (telemetry caches per step).
    """

    index: int
    label: str
    target: str
    spec: StepSpec
    backend: Backend | None
    node: CompiledNode | None
    condition: Condition | None
    selection: Selection | None
    uses_response: bool
    map_predictions: bool
    map_outputs: bool
    hard: bool
    weight: int | None
    timeout: float | None
    client_timeout: float | None
    retry: RetryPolicy
    #: ``node>step:target`` for X-Graph-Route, header-safe, built once
    route_entry: str = ""
    #: Extension: the step's shadow (``mirror``), or None
    mirror: Mirror | None = None
    #: the input must be selected or rewritten (decided once, read per request)
    needs_input_work: bool = False
    #: the backend's warmth, stamped when a call completes (bound by the prewarmer; None: not tracked)
    warm: WarmState | None = None

    def __post_init__(self) -> None:
        self.needs_input_work = self.selection is not None or self.map_predictions or self.map_outputs


@dataclass(frozen=True, slots=True, eq=False)
class CompiledNode:
    """One node: its router type (what the engine dispatches on), its steps and their derived tables."""

    name: str
    router_type: RouterType
    steps: tuple[CompiledStep, ...] = ()
    #: Ensemble: each step's key in the merged answer (its name, or its index)
    keys: tuple[str, ...] = ()
    aggregate: Aggregate | None = None
    sticky_header: str | None = None
    #: Splitter: running totals of the steps' weights
    cumulative: tuple[int, ...] = ()

    def pick(self, point: int) -> CompiledStep:
        """Splitter: walk the cumulative weights for ``point`` in [0, 100)."""
        for step, end in zip(self.steps, self.cumulative, strict=True):
            if point < end:
                return step
        return self.steps[-1]  # unreachable for weights summing to 100 (validated)

    @staticmethod
    def sticky_point(value: str) -> int:
        """A stable point in [0, 100) for a sticky header value (same value, same branch)."""
        digest = hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        return int.from_bytes(digest, "big") % 100


@dataclass(frozen=True, slots=True, eq=False)
class CompiledGraph:
    name: str
    doc: GraphDocument
    root: CompiledNode
    nodes: dict[str, CompiledNode]
    timeout: float | None
    backends: list[Backend]
    #: backends a request wakes when it starts (``prewarm``), decided here once
    wake: tuple[WakeTarget, ...] = ()


def retry_policy(cfg: RetryConfig | None, *, default_retry: bool,
                 window: float = DEFAULT_RETRY_WINDOW) -> RetryPolicy:
    if cfg is None:
        return safe_retry(window) if default_retry else NO_RETRY
    return RetryPolicy(max_retries=cfg.max_retries, initial_delay_ms=cfg.initial_delay_ms,
                       max_delay_ms=cfg.max_delay_ms, on=frozenset(cfg.retry_on))


def compile_graph(doc: GraphDocument, resolver: Resolver, *, default_retry: bool = True,
                  route_urls: bool = True, retry_window: float = DEFAULT_RETRY_WINDOW,
                  prewarm: Prewarm = Prewarm.CERTAIN, shadows: Shadows | None = None) -> CompiledGraph:
    """Bind every step of ``doc`` to its backend or node. Raises SpecError for unresolvable targets.

    ``route_urls`` False: a step called by URL shows as ``node>step`` in the route, without the URL.
    ``shadows``: where steps' mirrors keep their lanes and report (a private one when not given).
    """
    spec = doc.spec
    rt = spec.router_timeouts
    client_timeout = float(rt.service_client) if rt and rt.service_client else None
    problems: list[Problem] = []
    backends: list[Backend] = []
    # First every step's own parts, in document order (so problems are listed in that order) ...
    parts: dict[str, list[CompiledStep]] = {}
    for name, n in spec.nodes.items():
        steps = parts[name] = []
        for i, s in enumerate(n.steps):
            backend = None
            if not s.node_name:
                try:
                    backend = resolver.resolve(s)
                except (ValueError, TypeError) as exc:
                    problems.append(Problem(f"nodes.{name}.steps[{i}]", str(exc)))
                    continue
                backends.append(backend)
            steps.append(_step(name, n, i, s, backend, client_timeout, route_urls,
                               retry_policy(s.retry or spec.default_retry, default_retry=default_retry,
                                            window=retry_window)))
        for st in steps:
            if st.spec.mirror is not None:
                shadows = shadows or Shadows()
                st.mirror = _mirror(doc.name, name, st.index, st.label, st.spec.mirror, resolver, shadows,
                                    backends, problems)
    if problems:
        raise SpecError(problems, source=doc.source)
    # ... then the nodes, nested ones first: each node is built whole, once.
    nodes: dict[str, CompiledNode] = {}
    building: set[str] = set()

    def build(name: str) -> CompiledNode:
        node = nodes.get(name)
        if node is None:
            if name in building:  # validation rejects cycles; a document built by hand may still hold one
                raise SpecError([Problem(f"nodes.{name}", "nodes form a cycle")], source=doc.source)
            building.add(name)
            n = spec.nodes[name]
            steps = tuple(parts[name])
            for st in steps:
                if st.spec.node_name:
                    st.node = build(st.spec.node_name)
            cumulative, total = [], 0
            for st in steps:
                total += st.weight or 0
                cumulative.append(total)
            node = nodes[name] = CompiledNode(
                name, n.router_type, steps, tuple(st.spec.name or str(st.index) for st in steps),
                n.aggregate, n.sticky_header, tuple(cumulative))
        return node

    for name in spec.nodes:
        build(name)
    nodes = {name: nodes[name] for name in spec.nodes}  # document order
    return CompiledGraph(doc.name, doc, nodes["root"], nodes, float(spec.timeout) if spec.timeout else None,
                         backends, wake_targets(doc, nodes, spec.prewarm or prewarm))


def _step(node: str, n: NodeSpec, i: int, s: StepSpec, backend: Backend | None, client_timeout: float | None,
          route_urls: bool, retry: RetryPolicy) -> CompiledStep:
    """A step decided from its spec; its nested node (``node``) is set once that node is built."""
    data = s.data or ""
    label = s.name or str(i)
    target = s.node_name or s.service_name or backend_target(backend)
    shown = target if route_urls or "://" not in target else ""
    return CompiledStep(
        index=i,
        label=label,
        target=target,
        spec=s,
        backend=backend,
        condition=compile_condition(s.condition) if s.condition and
        n.router_type in (RouterType.SEQUENCE, RouterType.SWITCH) else None,
        selection=compile_selection(data) if (data.startswith("$request") and data != "$request")
        or (data.startswith("$response") and data != "$response") else None,
        uses_response=data.startswith("$response") and n.router_type == RouterType.SEQUENCE and i > 0,
        map_predictions=bool(s.map_predictions_to_instances),
        map_outputs=bool(s.map_outputs_to_inputs),
        hard=s.hard,
        weight=s.weight,
        timeout=s.timeout,
        client_timeout=client_timeout,
        retry=retry,
        route_entry=header_safe(f"{node}>{label}:{shown}" if shown else f"{node}>{label}"),
        node=None)


def wake_targets(doc: GraphDocument, nodes: Mapping[str, CompiledNode], mode: Prewarm) -> tuple[WakeTarget, ...]:
    """The HTTP backends to wake at request start, once each (in-process backends need no waking)."""
    out: dict[str, WakeTarget] = {}
    for name, i in wake_steps(doc.spec, mode):
        step = nodes[name].steps[i]
        key = backend_target(step.backend)
        if is_http(key) and key not in out:
            out[key] = WakeTarget(key, warmup_url(key, step.spec.warmup_url), step.spec.service_name or "")
    return tuple(out.values())


def _mirror(graph: str, node: str, index: int, label: str, spec: MirrorSpec, resolver: Resolver,
            shadows: Shadows, backends: list[Backend], problems: list[Problem]) -> Mirror | None:
    """A step's shadow, bound to its backend through the same resolver (and pool) as every step."""
    try:
        backend = resolver.resolve(StepSpec(service_name=spec.service_name, serviceUrl=spec.service_url))
    except (ValueError, TypeError) as exc:
        problems.append(Problem(f"nodes.{node}.steps[{index}].mirror", str(exc)))
        return None
    backends.append(backend)
    return shadows.mirror((graph, node, label, shadow_label(spec)), spec, backend)


def backend_target(backend: Backend | None) -> str:
    return backend.target if backend is not None else ""
