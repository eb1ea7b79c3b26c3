"""Checks on a raw InferenceGraph spec: KServe's webhook checks (with its messages) and ours.

Works on the raw mapping so that every problem is found in one pass, each with its path.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import Problem, SpecError

GRAPH_FIELDS = (
    "nodes", "timeout", "routerTimeouts", "minReplicas", "maxReplicas", "scaleTarget", "scaleMetric",
    "resources", "affinity", "tolerations", "nodeSelector", "nodeName", "serviceAccountName",
    "defaultRetry", "propagateHeaders", "prewarm",
)
NODE_FIELDS = ("routerType", "steps", "aggregate", "stickyHeader")
STEP_FIELDS = (
    "name", "nodeName", "serviceName", "serviceUrl", "data", "condition", "weight", "dependency",
    "mapPredictionsToInstances", "timeout", "retry", "mapOutputsToInputs", "warmupUrl", "mirror",
)
MIRROR_FIELDS = ("serviceName", "serviceUrl", "percent", "compare", "tolerance", "mode", "maxConcurrency",
                 "queueSize", "timeout")
RETRY_FIELDS = ("maxRetries", "initialDelayMs", "maxDelayMs", "retryOn")
RETRY_ON = ("connect-failure", "reset", "timeout", "502", "503", "504")
TIMEOUT_FIELDS = ("serverRead", "serverWrite", "serverIdle", "serviceClient")
ROUTER_TYPES = ("Sequence", "Switch", "Ensemble", "Splitter")
AGGREGATES = ("merge", "mean", "vote", "weighted")
PREWARM = ("off", "certain", "all")
SCALE_METRICS = ("cpu", "memory", "concurrency", "rps")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")


def _words(name: str) -> set[str]:
    """The words of a camelCase, snake_case or kebab-case name, lower case (``nextNode`` -> next, node)."""
    return {w.lower() for w in _WORD.findall(name) if len(w) >= 3}


def did_you_mean(key: str, known: Iterable[str]) -> str:
    """`` (did you mean 'serviceUrl'?)`` for near misses, else ''.

    A spelling slip (difflib) first; else the one known name sharing a word with ``key``, as in
    ``nextNode`` for ``nodeName``, a field other routers' users reach for.
    """
    known = list(known)
    for k in known:
        if k.lower() == key.lower():
            return f" (did you mean {k!r}?)"
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.7)
    if close:
        return f" (did you mean {close[0]!r}?)"
    words = _words(key)
    sharing = [k for k in known if words & _words(k)]
    return f" (did you mean {sharing[0]!r}?)" if len(sharing) == 1 else ""


def _type(v: Any) -> str:
    return "nothing" if v is None else {"str": "a string", "int": "an integer", "float": "a number",
                                        "bool": "a boolean", "list": "a list", "dict": "a mapping"}.get(
        type(v).__name__, type(v).__name__)


def _is_int(v: Any) -> bool:
    """An integer Go's int64 unmarshal accepts (larger ones are refused, as the API server does)."""
    return isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63


class SpecChecker:
    """Collects every problem of one spec. Paths are relative to the spec (``nodes.root.steps[1]``)."""

    def __init__(self, graph_name: str) -> None:
        self.graph = graph_name
        self.problems: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def check(self, spec: Mapping[str, Any]) -> list[Problem]:
        self._unknown(spec, GRAPH_FIELDS, "")
        self._graph_fields(spec)
        nodes = spec.get("nodes")
        if nodes is None:
            self.add("nodes", "missing: a graph needs 'nodes' with a node named 'root'")
            return self.problems
        if not isinstance(nodes, Mapping):
            self.add("nodes", f"expected a mapping of node name to node, got {_type(nodes)}")
            return self.problems
        if "root" not in nodes:
            self.add("nodes", "root node not found, InferenceGraph needs a node with name 'root' as the root "
                              "node of the graph")
        for name, node in nodes.items():
            self._node(str(name), node, nodes)
        self._cycles(nodes)
        return self.problems

    # --- graph level ---------------------------------------------------------------------------

    def _graph_fields(self, spec: Mapping[str, Any]) -> None:
        for key in ("timeout", "minReplicas", "maxReplicas", "scaleTarget"):
            v = spec.get(key)
            if v is not None and (not _is_int(v) or v < 0 or (key == "timeout" and v == 0)):
                self.add(key, f"expected a {'positive' if key == 'timeout' else 'non-negative'} integer, "
                              f"got {v!r}")
        sm = spec.get("scaleMetric")
        if sm is not None and sm not in SCALE_METRICS:
            self.add("scaleMetric", f"unsupported value {sm!r}: one of {', '.join(SCALE_METRICS)}")
        rt = spec.get("routerTimeouts")
        if rt is not None:
            if not isinstance(rt, Mapping):
                self.add("routerTimeouts", f"expected a mapping, got {_type(rt)}")
            else:
                self._unknown(rt, TIMEOUT_FIELDS, "routerTimeouts")
                for k in TIMEOUT_FIELDS:
                    v = rt.get(k)
                    if v is not None and (not _is_int(v) or v < 0):
                        self.add(f"routerTimeouts.{k}", f"expected whole seconds (an integer >= 0), got {v!r}")
        if spec.get("defaultRetry") is not None:
            self._retry(spec["defaultRetry"], "defaultRetry")
        ph = spec.get("propagateHeaders")
        if ph is not None:
            if not isinstance(ph, list):
                self.add("propagateHeaders", f"expected a list of regular expressions, got {_type(ph)}")
            else:
                for i, pat in enumerate(ph):
                    self._regex(pat, f"propagateHeaders[{i}]")
        pw = spec.get("prewarm")
        if pw is not None and pw not in PREWARM:
            self.add("prewarm", f"unsupported value {pw!r}{did_you_mean(str(pw), PREWARM)}: "
                                f"one of {', '.join(PREWARM)}")
        for key in ("resources", "affinity", "nodeSelector"):
            v = spec.get(key)
            if v is not None and not isinstance(v, Mapping):
                self.add(key, f"expected a mapping, got {_type(v)}")
        tol = spec.get("tolerations")
        if tol is not None and not (isinstance(tol, list) and all(isinstance(t, Mapping) for t in tol)):
            self.add("tolerations", "expected a list of mappings")
        for key in ("nodeName", "serviceAccountName"):
            v = spec.get(key)
            if v is not None and not isinstance(v, str):
                self.add(key, f"expected a string, got {_type(v)}")

    def _regex(self, pat: Any, path: str) -> None:
        if not isinstance(pat, str):
            self.add(path, f"expected a regular expression string, got {_type(pat)}")
            return
        try:
            re.compile(pat)
        except re.error as exc:
            self.add(path, f"invalid regular expression {pat!r}: {exc}")

    def _retry(self, r: Any, path: str) -> None:
        if not isinstance(r, Mapping):
            self.add(path, f"expected a mapping with maxRetries, initialDelayMs, maxDelayMs, retryOn; got {_type(r)}")
            return
        self._unknown(r, RETRY_FIELDS, path)
        mr = r.get("maxRetries")
        if mr is not None and (not _is_int(mr) or not 0 <= mr <= 10):
            self.add(f"{path}.maxRetries", f"expected an integer from 0 to 10, got {mr!r}")
        for k in ("initialDelayMs", "maxDelayMs"):
            v = r.get(k)
            if v is not None and (not _is_int(v) or v < 0):
                self.add(f"{path}.{k}", f"expected milliseconds (an integer >= 0), got {v!r}")
        i, m = r.get("initialDelayMs", 100), r.get("maxDelayMs", 300_000)
        if _is_int(i) and _is_int(m) and m < i:
            self.add(f"{path}.maxDelayMs", f"must be >= initialDelayMs ({i}), got {m}")
        on = r.get("retryOn")
        if on is not None:
            if not isinstance(on, list):
                self.add(f"{path}.retryOn", f"expected a list, got {_type(on)}")
            else:
                for j, v in enumerate(on):
                    sv = str(v)
                    if sv not in RETRY_ON:
                        why = " (4xx answers are never retried)" if sv.startswith("4") else ""
                        self.add(f"{path}.retryOn[{j}]", f"unsupported value {v!r}{why}: one of {', '.join(RETRY_ON)}")

    # --- nodes and steps -----------------------------------------------------------------------

    def _node(self, name: str, node: Any, nodes: Mapping[str, Any]) -> None:
        path = f"nodes.{name}"
        if not isinstance(node, Mapping):
            self.add(path, f"expected a mapping with routerType and steps, got {_type(node)}")
            return
        self._unknown(node, NODE_FIELDS, path)
        rtype = node.get("routerType")
        if rtype is None:
            self.add(f"{path}.routerType", f"missing: one of {', '.join(ROUTER_TYPES)}")
        elif rtype not in ROUTER_TYPES:
            self.add(f"{path}.routerType", f"unsupported value {rtype!r}{did_you_mean(str(rtype), ROUTER_TYPES)}: "
                                           f"one of {', '.join(ROUTER_TYPES)}")
        steps = node.get("steps")
        if steps is None or (isinstance(steps, list) and not steps):
            self.add(f"{path}.steps", "a node needs at least one step")
            return
        if not isinstance(steps, list):
            self.add(f"{path}.steps", f"expected a list of steps, got {_type(steps)}")
            return
        self._node_extensions(node, rtype, path, steps)
        seen: set[str] = set()
        for i, step in enumerate(steps):
            spath = f"{path}.steps[{i}]"
            if not isinstance(step, Mapping):
                self.add(spath, f"expected a mapping, got {_type(step)}")
                continue
            sname = step.get("name")
            if isinstance(sname, str) and sname:
                if sname in seen:
                    self.add(f"{spath}.name", f'Node "{name}" of InferenceGraph "{self.graph}" contains more than '
                                              f'one step with name "{sname}"')
                seen.add(sname)
            self._step(name, i, step, spath, rtype, nodes)
        if rtype == "Splitter":
            self._weights(name, steps, path)

    def _node_extensions(self, node: Mapping[str, Any], rtype: Any, path: str, steps: list[Any]) -> None:
        agg = node.get("aggregate")
        if agg is not None:
            if rtype != "Ensemble":
                self.add(f"{path}.aggregate", f"only an Ensemble node aggregates; this node is a {rtype}")
            elif agg not in AGGREGATES:
                self.add(f"{path}.aggregate", f"unsupported value {agg!r}: one of {', '.join(AGGREGATES)}")
            elif agg == "weighted":
                for i, s in enumerate(steps):
                    if isinstance(s, Mapping) and not (_is_int(s.get("weight")) and s["weight"] >= 0):
                        self.add(f"{path}.steps[{i}].weight",
                                 "aggregate: weighted needs a non-negative integer weight on every step")
        sticky = node.get("stickyHeader")
        if sticky is not None:
            if rtype != "Splitter":
                self.add(f"{path}.stickyHeader", f"only a Splitter node can be sticky; this node is a {rtype}")
            elif not isinstance(sticky, str) or not _HEADER_NAME.match(sticky):
                self.add(f"{path}.stickyHeader", f"expected an HTTP header name, got {sticky!r}")

    def _step(self, node: str, i: int, step: Mapping[str, Any], path: str, rtype: Any,
              nodes: Mapping[str, Any]) -> None:
        self._unknown(step, STEP_FIELDS, path)
        for key in ("name", "nodeName", "serviceName", "serviceUrl", "data", "condition"):
            v = step.get(key)
            if v is not None and not isinstance(v, str):
                self.add(f"{path}.{key}", f"expected a string, got {_type(v)}")
        sname = step.get("name") if isinstance(step.get("name"), str) else ""
        targets = [k for k in ("nodeName", "serviceName", "serviceUrl") if step.get(k)]
        if not targets:
            self.add(path, f'Step {i} ("{sname}") in node "{node}" of InferenceGraph "{self.graph}" does not '
                           f"specify an inference target")
        elif len(targets) > 1:
            self.add(path, f'Step {i} ("{sname}") in node "{node}" of InferenceGraph "{self.graph}" specifies '
                           f"more than one of nodeName, serviceName, serviceUrl")
        ref = step.get("nodeName")
        if isinstance(ref, str) and ref and ref not in nodes:
            self.add(f"{path}.nodeName", f"node {ref!r} does not exist{did_you_mean(ref, map(str, nodes))}; "
                                         f"nodes of this graph: {', '.join(map(str, nodes))}")
        dep = step.get("dependency")
        if dep is not None and dep not in ("Soft", "Hard"):
            self.add(f"{path}.dependency", f"unsupported value {dep!r}{did_you_mean(str(dep), ('Soft', 'Hard'))}: "
                                           f"one of Soft, Hard")
        for key in ("mapPredictionsToInstances", "mapOutputsToInputs"):
            v = step.get(key)
            if v is not None and not isinstance(v, bool):
                self.add(f"{path}.{key}", f"expected true or false, got {v!r}")
        w = step.get("weight")
        if w is not None and (not _is_int(w) or w < 0):
            self.add(f"{path}.weight", f"expected a non-negative integer, got {w!r}")
        t = step.get("timeout")
        if t is not None and (isinstance(t, bool) or not isinstance(t, int | float) or t <= 0):
            self.add(f"{path}.timeout", f"expected seconds (a number > 0), got {t!r}")
        if step.get("retry") is not None:
            self._retry(step["retry"], f"{path}.retry")
        self._warmup_url(step, path)
        self._data(step.get("data"), f"{path}.data")
        self._condition(step.get("condition"), i, path, rtype)
        if step.get("mirror") is not None:
            self._mirror(step, f"{path}.mirror")

    def _mirror(self, step: Mapping[str, Any], path: str) -> None:
        """Extension: a step's shadow (graph_router.mirror)."""
        m = step["mirror"]
        if not isinstance(m, Mapping):
            self.add(path, f"expected a mapping with serviceName or serviceUrl, percent, compare; got {_type(m)}")
            return
        self._unknown(m, MIRROR_FIELDS, path)
        if step.get("nodeName"):
            self.add(path, "only a step that calls a service can be mirrored, not a nested node (nodeName)")
        targets = [k for k in ("serviceName", "serviceUrl") if m.get(k)]
        if len(targets) != 1:
            self.add(path, "give the shadow exactly one of serviceName, serviceUrl")
        for key in ("serviceName", "serviceUrl", "compare"):
            if m.get(key) is not None and not isinstance(m[key], str):
                self.add(f"{path}.{key}", f"expected a string, got {_type(m[key])}")
        if any(m.get(k) and m.get(k) == step.get(k) for k in ("serviceName", "serviceUrl")):
            self.add(path, "the shadow is the step's own service: mirror to another service")
        for key, low, high, whole in (("percent", 0, 100, False), ("tolerance", 0, None, False),
                                      ("maxConcurrency", 1, 10_000, True), ("queueSize", 0, 100_000, True)):
            v = m.get(key)
            bad = v is not None and (isinstance(v, bool) or not isinstance(v, int if whole else int | float)
                                     or v < low or (high is not None and v > high))
            if bad:
                what = "an integer" if whole else "a number"
                self.add(f"{path}.{key}", f"expected {what} from {low}{f' to {high}' if high else ' up'}, got {v!r}")
        t = m.get("timeout")
        if t is not None and (isinstance(t, bool) or not isinstance(t, int | float) or t <= 0):
            self.add(f"{path}.timeout", f"expected seconds (a number > 0), got {t!r}")
        if m.get("mode") is not None and m["mode"] not in ("after", "alongside"):
            self.add(f"{path}.mode", f"unsupported value {m['mode']!r}: one of after, alongside")
        if isinstance(m.get("compare"), str):
            from .mirror.compare import compile_comparison

            try:
                compile_comparison(m["compare"])
            except SpecError as exc:
                self.add(f"{path}.compare", exc.problems[0].message)

    def _warmup_url(self, step: Mapping[str, Any], path: str) -> None:
        url = step.get("warmupUrl")
        if url is None:
            return
        if step.get("nodeName"):
            self.add(f"{path}.warmupUrl", "only a step that calls a service can have a warmupUrl "
                                          "(this one calls a node)")
        elif not isinstance(url, str) or not (url.startswith(("http://", "https://", "/")) and len(url) > 1):
            self.add(f"{path}.warmupUrl", f"expected an http(s) URL or a path starting with '/' (resolved against the "
                                          f"step's URL), got {url!r}")

    def _data(self, data: Any, path: str) -> None:
        if not isinstance(data, str) or data in ("", "$request", "$response"):
            return
        for root in ("$request", "$response"):
            if data.startswith(root + ".") or data.startswith(root + "["):
                from .selection import compile_selection

                try:
                    compile_selection(data)
                except SpecError as exc:
                    self.add(path, exc.problems[0].message)
                return
        self.add(path, f"unsupported value {data!r}: use $request, $response, or $request.<jsonpath> / "
                       f"$response.<jsonpath> to send part of it")

    def _condition(self, cond: Any, i: int, path: str, rtype: Any) -> None:
        if rtype == "Switch" and not cond:
            self.add(f"{path}.condition", "a Switch step needs a condition (KServe would never pick this step)")
        if not isinstance(cond, str) or not cond:
            return
        if rtype == "Sequence" and i == 0:
            self.add(f"{path}.condition", "a condition on the first step of a Sequence has no previous response "
                                          "to test (KServe answers every request with 500 'invalid response'); "
                                          "move it to a later step or use a Switch node")
            return
        if rtype not in ("Sequence", "Switch"):
            return  # KServe ignores conditions on Ensemble/Splitter steps; so do we
        from .conditions import compile_condition

        try:
            compile_condition(cond)
        except SpecError as exc:
            for p in exc.problems:
                self.add(f"{path}.condition", p.message)

    def _weights(self, node: str, steps: list[Any], path: str) -> None:
        total = 0
        for i, s in enumerate(steps):
            if not isinstance(s, Mapping):
                continue
            w = s.get("weight")
            if w is None:
                route = s.get("serviceName") or ""
                self.add(f"{path}.steps[{i}].weight",
                         f"InferenceGraph[{self.graph}] Node[{node}] Route[{route}] missing the 'Weight'")
                return
            if not _is_int(w) or w < 0:
                return  # reported by _step
            total += w
        if total != 100:
            self.add(f"{path}.steps", f"InferenceGraph[{self.graph}] Node[{node}] splitter node: the sum of "
                                      f"traffic weights for all routing targets should be 100 (got {total})")

    def _cycles(self, nodes: Mapping[str, Any]) -> None:
        edges: dict[str, list[str]] = {}
        for name, node in nodes.items():
            steps = node.get("steps") if isinstance(node, Mapping) else None
            edges[str(name)] = [
                s["nodeName"] for s in (steps if isinstance(steps, list) else [])
                if isinstance(s, Mapping) and isinstance(s.get("nodeName"), str) and s["nodeName"] in nodes
            ]
        state: dict[str, int] = {}
        reported: set[frozenset[str]] = set()

        def visit(n: str, trail: list[str]) -> None:
            state[n] = 1
            trail.append(n)
            for m in edges.get(n, []):
                if state.get(m) == 1:
                    cyc = [*trail[trail.index(m):], m]
                    key = frozenset(cyc)
                    if key not in reported:
                        reported.add(key)
                        self.add(f"nodes.{n}", "cycle: " + " -> ".join(cyc) + " (a graph must not call back into "
                                               "a node it came from)")
                elif state.get(m) is None:
                    visit(m, trail)
            trail.pop()
            state[n] = 2

        for n in edges:
            if state.get(n) is None:
                visit(n, [])

    def _unknown(self, obj: Mapping[str, Any], known: Iterable[str], path: str) -> None:
        known = tuple(known)
        for key in obj:
            if key not in known:
                p = f"{path}.{key}" if path else str(key)
                self.add(p, f"unknown field{did_you_mean(str(key), known)}")
