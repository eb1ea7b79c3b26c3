"""Graph-aware prewarming, the compile-time half: which backends a request wakes when it starts.

A Sequence calls step 2 only once step 1 has answered, so behind Knative's activator a graph of
scaled-to-zero models pays one cold start per step, one after the other. The router knows at the
start of a request which backends it will call; waking them all at once overlaps the cold starts.
This module decides, once per graph, which steps those are (plain data on the compiled graph) and
what light request wakes each; :mod:`graph_router.waker` sends the requests.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .spec import GraphSpec, Prewarm, RouterType

#: Knative's defaults (config-autoscaler): ``stable-window`` 60 s, then ``scale-to-zero-grace-period``
#: 30 s before the last pod goes. A backend whose last answer is older may be at zero.
KNATIVE_STABLE_WINDOW = 60.0
KNATIVE_GRACE_PERIOD = 30.0
DEFAULT_IDLE = KNATIVE_STABLE_WINDOW + KNATIVE_GRACE_PERIOD
#: A warm-up request gives up after this long (it has woken the backend by then, or never will).
DEFAULT_TIMEOUT = 30.0

_V1 = re.compile(r"^(?P<base>.*/v1/models/[^/:]+):predict$")
_V2 = re.compile(r"^(?P<base>.*/v2/models/[^/]+(?:/versions/[^/]+)?)/infer$")


@dataclass(frozen=True, slots=True)
class PrewarmSettings:
    """What ``serve`` was told: the default mode, idle thresholds (default, and per service), timeout."""

    mode: Prewarm = Prewarm.CERTAIN
    idle: float = DEFAULT_IDLE
    #: Threshold by serviceName or URL host (``manifests`` passes each backend's autoscaling settings).
    idle_by_service: dict[str, float] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT

    def idle_for(self, service: str, host: str) -> float:
        got = self.idle_by_service.get(service)
        if got is None:
            got = self.idle_by_service.get(host)
        if got is None:
            got = self.idle_by_service.get(host.split(".", 1)[0])
        return self.idle if got is None else got


@dataclass(frozen=True, slots=True)
class WakeTarget:
    """One backend to wake: its identity (the URL steps call), its warm-up URL, and its service name."""

    key: str
    warmup_url: str
    service: str


class WarmState:
    """What the router knows of one backend's warmth: its last answer (monotonic seconds) and whether a
    warm-up is in flight. The engine stamps ``last`` where a call to the backend completes."""

    __slots__ = ("busy", "key", "last", "service", "threshold", "url")

    def __init__(self, key: str, url: str, service: str, threshold: float) -> None:
        self.key = key
        self.url = url
        self.service = service
        self.threshold = threshold
        self.last = float("-inf")
        self.busy = False


def warmup_url(step_url: str, explicit: str | None = None) -> str:
    """The light request that wakes a backend: v1 ``GET /v1/models/<m>``, v2 ``GET /v2/models/<m>/ready``.

    ``explicit`` (a step's ``warmupUrl``) wins; a path is resolved against the step's URL. Any other
    URL is woken with a GET of the URL itself (any answer, even 405, means the backend is up).
    """
    parts = urlsplit(step_url)
    if explicit:
        if explicit.startswith("/"):
            return f"{parts.scheme}://{parts.netloc}{explicit}"
        return explicit
    bare = f"{parts.scheme}://{parts.netloc}{parts.path}"
    m = _V1.match(bare)
    if m is not None:
        return m.group("base")
    m = _V2.match(bare)
    if m is not None:
        return m.group("base") + "/ready"
    return step_url


def wake_steps(spec: GraphSpec, mode: Prewarm) -> list[tuple[str, int]]:
    """``(node, step index)`` of the service steps a request wakes when it starts, in graph order.

    ``certain``: steps the request calls whenever it succeeds (Sequence steps up to the first
    condition, Ensemble members, recursively through nested nodes); ``all``: every service step the
    graph can reach (Switch and Splitter alternatives, conditional steps). Steps called the moment
    the request starts are left out: their own call wakes them.
    """
    if mode is Prewarm.OFF:
        return []
    reached = list(_reach(spec, "root", mode, set()))
    first = set(_immediate(spec, "root", set()))
    out: list[tuple[str, int]] = []
    for pos in reached:
        if pos not in first and pos not in out:
            out.append(pos)
    return out


def _reach(spec: GraphSpec, name: str, mode: Prewarm, seen: set[str]) -> Iterator[tuple[str, int]]:
    node = spec.nodes.get(name)
    if node is None or name in seen:
        return
    seen.add(name)
    if mode is Prewarm.CERTAIN and node.router_type in (RouterType.SWITCH, RouterType.SPLITTER):
        return
    for i, step in enumerate(node.steps):
        if mode is Prewarm.CERTAIN and node.router_type is RouterType.SEQUENCE and step.condition:
            return  # a condition that does not match ends the Sequence: nothing after it is certain
        if step.node_name:
            yield from _reach(spec, step.node_name, mode, seen)
        else:
            yield (name, i)


def _immediate(spec: GraphSpec, name: str, seen: set[str]) -> Iterator[tuple[str, int]]:
    """Service steps every request calls at once (before any backend has answered)."""
    node = spec.nodes.get(name)
    if node is None or name in seen or not node.steps:
        return
    seen.add(name)
    if node.router_type is RouterType.SEQUENCE:
        steps = node.steps[:1]
    elif node.router_type is RouterType.ENSEMBLE:
        steps = node.steps
    else:
        return
    for i, step in enumerate(steps):
        if step.node_name:
            yield from _immediate(spec, step.node_name, seen)
        else:
            yield (name, i)


def is_http(url: str) -> bool:
    return url.startswith(("http://", "https://"))
