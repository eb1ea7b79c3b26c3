"""``rollout shadow-to-canary`` / ``canary-to-shadow``: a step's shadow becomes a canary of it, and back.

Pure functions on a graph's wire spec. A step mirrored to SERVICE becomes a step calling a new
Splitter node, ``<node>-<step>-canary``, whose two steps call the step's service (weight 100-N,
name ``stable``) and SERVICE (weight N, name ``canary``), with the step's ``timeout`` and ``retry``;
what decides the step's input (name, data, condition, dependency, weight, input mappings) stays
on the step. The mirror's settings are kept in a resource annotation,
``shadow.graph-router.dev/<SERVICE>``, so that ``canary-to-shadow`` can restore them.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from ..errors import Problem, SpecError

Obj = dict[str, Any]
ANNOTATION = "shadow.graph-router.dev/"
#: A step's fields that belong to the call itself (they move into the Splitter's steps).
CALL_FIELDS = ("timeout", "retry")
_TARGETS = ("serviceName", "serviceUrl")
_NODE_NAME = re.compile(r"[^a-z0-9-]+")


def _fail(path: str, message: str) -> SpecError:
    return SpecError(Problem(path, message), source="rollout")


def _calls(step: Any, service: str) -> bool:
    return isinstance(step, dict) and service in (step.get("serviceName"), step.get("serviceUrl"))


def _target(step: Obj) -> Obj:
    return {k: step[k] for k in _TARGETS if step.get(k)}


def shadow_to_canary(resource: Obj, service: str, percent: int) -> Obj:
    """The graph (a whole InferenceGraph or a bare spec) with the step mirrored to ``service`` split N/100-N."""
    if not 1 <= percent <= 99:
        raise _fail("--percent", f"expected 1 <= {percent} <= 99 (0 is the shadow, 100 is a promotion: edit "
                                 f"the step's serviceName)")
    out = copy.deepcopy(resource)
    spec = out.get("spec", out)
    found = [(n, i, s) for n, node in spec["nodes"].items() for i, s in enumerate(node.get("steps", []))
             if _calls(s.get("mirror"), service)]
    if len(found) != 1:
        where = ", ".join(f"nodes.{n}.steps[{i}]" for n, i, _ in found)
        raise _fail("", f'expected one step mirrored to "{service}", found {len(found)}'
                        + (f" ({where})" if where else "; check the service name and the graph"))
    node_name, index, step = found[0]
    mirror = step.pop("mirror")
    split = _unused(spec, _NODE_NAME.sub("-", f"{node_name}-{step.get('name') or index}-canary".lower()))
    calls = {k: step.pop(k) for k in CALL_FIELDS if k in step}
    stable = {"name": "stable", **_target(step), **calls, "weight": 100 - percent}
    canary = {"name": "canary", **_target(mirror), **calls, "weight": percent}
    for k in _TARGETS:
        step.pop(k, None)
    step["nodeName"] = split
    spec["nodes"][split] = {"routerType": "Splitter", "steps": [stable, canary]}
    if "spec" in out:
        anns = out.setdefault("metadata", {}).setdefault("annotations", {})
        anns[ANNOTATION + service] = json.dumps(mirror, separators=(",", ":"), sort_keys=True)
    return out


def canary_to_shadow(resource: Obj, service: str, percent: float | None = None,
                     compare: str | None = None) -> Obj:
    """The graph with the Splitter that canaries ``service`` folded back into a step mirrored to it."""
    out = copy.deepcopy(resource)
    spec = out.get("spec", out)
    nodes: Obj = spec["nodes"]
    found = [n for n, node in nodes.items() if node.get("routerType") == "Splitter"
             and len(node.get("steps", [])) == 2 and any(_calls(s, service) for s in node["steps"])]
    if len(found) != 1:
        raise _fail("", f'expected one Splitter node of two steps, one of them calling "{service}"; found '
                        f"{len(found)}{' (' + ', '.join(found) + ')' if found else ''}")
    split = found[0]
    canary, stable = sorted(nodes[split]["steps"], key=lambda s: not _calls(s, service))
    if not _target(stable):
        raise _fail(f"nodes.{split}", "the other step calls a node, not a service: nothing to put the mirror on")
    anns = (out.get("metadata") or {}).get("annotations") or {}
    saved = anns.pop(ANNOTATION + service, None)
    mirror: Obj = json.loads(saved) if isinstance(saved, str) else {}
    mirror = {**_target(canary), **{k: v for k, v in mirror.items() if k not in _TARGETS}}
    if percent is not None:
        mirror["percent"] = percent
    if compare is not None:
        mirror["compare"] = compare
    call = {**_target(stable), **{k: stable[k] for k in CALL_FIELDS if k in stable}, "mirror": mirror}
    parents = [(n, s) for n, node in nodes.items() for s in node.get("steps", []) if s.get("nodeName") == split]
    if len(parents) > 1:
        raise _fail(f"nodes.{split}", f"{len(parents)} steps call this node; fold it back by hand")
    if parents:
        parent = parents[0][1]
        del parent["nodeName"]
        parent.update(call)
        del nodes[split]
    else:  # the Splitter is the root: a Sequence of one mirrored step
        nodes[split] = {"routerType": "Sequence", "steps": [{"name": stable.get("name", "stable"), **call}]}
    if "metadata" in out and not anns and "annotations" in out["metadata"]:
        del out["metadata"]["annotations"]
    return out


def _unused(spec: Obj, name: str) -> str:
    candidate, n = name, 2
    while candidate in spec["nodes"]:
        candidate, n = f"{name}-{n}", n + 1
    return candidate
