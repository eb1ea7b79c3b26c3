"""How a graph spreads its requests over its services: Sequence and Ensemble call every step, a
Splitter picks by weight, a Switch by its branch shares (given or measured, since its conditions
depend on the request bodies).

The graph becomes a tree of :class:`Leaf` (one call of a service), :class:`Seq` (one after the
other) and :class:`Par` (all at once, done when the slowest is); the choices of Splitter and Switch
nodes are expanded into :class:`Scenario` s: the graph as one kind of request sees it, with the
share of requests that take it. A step's ``mirror`` is a :class:`Shadow` after its :class:`Leaf`:
a share of what the step finished is copied to the shadow service, which nothing waits for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import Problem, SpecError
from ..spec import GraphDocument, MirrorSpec, RouterType, StepSpec

#: More combinations of branches than this is refused (the simulation walks every scenario).
MAX_SCENARIOS = 512


@dataclass(frozen=True)
class Leaf:
    service: str


@dataclass(frozen=True)
class Shadow:
    """A step's mirrored copies: ``fraction`` of the requests the step finished also go to ``service``.

    The router never waits for a shadow, so it adds load (and cold starts) to that service and
    nothing to the graph's latency. Mirrors are sent once the real call has answered by default
    (``mode: after``); ``alongside`` copies leave up to a service time earlier, which a simulation
    in whole seconds does not tell apart. A full mirror queue drops copies in the router; that is
    not simulated (every copy arrives).
    """

    service: str
    fraction: float


@dataclass(frozen=True)
class Seq:
    children: tuple[Tree, ...]


@dataclass(frozen=True)
class Par:
    children: tuple[Tree, ...]


Tree = Leaf | Shadow | Seq | Par


@dataclass(frozen=True)
class Scenario:
    share: float
    tree: Tree
    route: str  # the branches taken, e.g. "breed-switch.dog"


def service_name(step: StepSpec | MirrorSpec) -> str:
    """A step's (or its shadow's) service as the report names it: ``serviceName``, or the host of ``serviceUrl``."""
    if step.service_name:
        return step.service_name
    return urlsplit(step.service_url or "").hostname or (step.service_url or "")


def scenarios(doc: GraphDocument, shares: Mapping[str, float], warnings: list[str]) -> list[Scenario]:
    """Every way through the graph with its share of requests (shares sum to at most 1)."""
    problems: list[Problem] = []
    out = [Scenario(p, t, ",".join(r)) for p, t, r in _node(doc, "root", shares, warnings, problems)]
    unknown = sorted(set(shares) - _share_keys(doc))
    problems.extend(Problem(f"shares.{k}", "no Switch, Splitter or Sequence step of this graph is called "
                            f"that (known: {', '.join(sorted(_share_keys(doc))) or 'none'})") for k in unknown)
    if problems:
        raise SpecError(problems, source="branch shares")
    return [s for s in out if s.share > 0]


def calls_per_request(scens: list[Scenario]) -> dict[str, float]:
    """How many calls each service gets per graph request, on average (mirrored copies included)."""
    calls: dict[str, float] = {}
    for s in scens:
        for leaf in leaves(s.tree):
            share = s.share * leaf.fraction if isinstance(leaf, Shadow) else s.share
            calls[leaf.service] = calls.get(leaf.service, 0.0) + share
    return calls


def leaves(tree: Tree) -> list[Leaf | Shadow]:
    """Every call of a service in the tree, shadows included."""
    if isinstance(tree, Leaf | Shadow):
        return [tree]
    return [leaf for c in tree.children for leaf in leaves(c)]


def _share_keys(doc: GraphDocument) -> set[str]:
    return {f"{name}.{s.name or i}" for name, n in doc.spec.nodes.items() for i, s in enumerate(n.steps)}


Expanded = list[tuple[float, Tree, tuple[str, ...]]]


def _step(doc: GraphDocument, step: StepSpec, shares: Mapping[str, float], warnings: list[str],
          problems: list[Problem]) -> Expanded:
    if step.node_name:
        return _node(doc, step.node_name, shares, warnings, problems)
    leaf = Leaf(service_name(step))
    mirror = step.mirror
    if mirror is None or mirror.percent <= 0:
        return [(1.0, leaf, ())]
    shadow = Shadow(service_name(mirror), mirror.percent / 100.0)  # percent: 0-100, checked at load
    return [(1.0, Seq((leaf, shadow)), ())]


def _node(doc: GraphDocument, name: str, shares: Mapping[str, float], warnings: list[str],
          problems: list[Problem]) -> Expanded:
    node = doc.spec.nodes[name]
    steps = [(f"{name}.{s.name or i}", s) for i, s in enumerate(node.steps)]
    if node.router_type in (RouterType.SEQUENCE, RouterType.ENSEMBLE):
        combine = Seq if node.router_type == RouterType.SEQUENCE else Par
        acc: Expanded = [(1.0, combine(()), ())]
        for key, step in steps:
            options = _step(doc, step, shares, warnings, problems)
            if key in shares:  # a conditional Sequence step: runs for this share of requests
                options = [(p * shares[key], t, r) for p, t, r in options] + [(1.0 - shares[key], combine(()), ())]
            acc = [(p * q, _join(combine, a, b), ra + rb) for p, a, ra in acc for q, b, rb in options]
            _cap(acc, name, problems)
        return acc
    if node.router_type == RouterType.SPLITTER:
        weights = {key: (s.weight or 0) / 100.0 for key, s in steps}
        if any(key in shares for key in weights):
            warnings.append(f"Splitter {name!r}: branch shares given for its steps are ignored: its weights decide")
    else:
        weights = _switch_shares(name, [k for k, _ in steps], shares, warnings, problems)
    out: Expanded = []
    for key, step in steps:
        for p, tree, route in _step(doc, step, shares, warnings, problems):
            out.append((weights[key] * p, tree, (key, *route)))
    _cap(out, name, problems)
    return out


def _join(combine: type[Seq] | type[Par], a: Tree, b: Tree) -> Tree:
    assert isinstance(a, combine)
    if isinstance(b, combine) and not b.children:
        return a
    return combine((*a.children, b))


def _switch_shares(node: str, keys: list[str], shares: Mapping[str, float], warnings: list[str],
                   problems: list[Problem]) -> dict[str, float]:
    given = {k: shares[k] for k in keys if k in shares}
    total = sum(given.values())
    if total > 1.0 + 1e-9:
        problems.append(Problem(f"shares.{node}", f"the shares of Switch {node!r} add up to {total:g}, more "
                                "than 1: give each step the fraction of requests it takes"))
    rest = [k for k in keys if k not in given]
    if rest and total < 1.0:
        if not given:
            warnings.append(f"Switch {node!r}: no branch shares given, assuming an equal share per step "
                            f"(set them with --share {keys[0]}=0.5 or a '# share' line in the traffic file)")
        for k in rest:
            given[k] = (1.0 - total) / len(rest)
    return {k: given.get(k, 0.0) for k in keys}


def _cap(acc: Expanded, node: str, problems: list[Problem]) -> None:
    if len(acc) > MAX_SCENARIOS:
        problems.append(Problem(f"nodes.{node}", f"more than {MAX_SCENARIOS} combinations of branches: "
                                "the planner cannot walk them all"))
        del acc[MAX_SCENARIOS:]
