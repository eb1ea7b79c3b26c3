"""Extension: Ensemble ``aggregate: mean | vote | weighted`` over v1 predictions or v2 outputs.

Only steps that answered 2xx take part (a Soft failure is left out, not averaged in); a Hard
failure never gets here. Shapes must agree, else the cause names the mismatching step.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from .conditions import JsonDoc
from .errors import AggregationError
from .spec import Aggregate

if TYPE_CHECKING:
    from .compiler import CompiledStep

Part = tuple["CompiledStep", int, JsonDoc]


def aggregate(how: Aggregate, parts: Sequence[Part]) -> JsonDoc:
    ok = [(s, d) for s, status, d in parts if 200 <= status <= 299]
    if not ok:
        raise AggregationError(f"aggregate {how.value}: no step answered successfully")
    values = []
    for s, d in ok:
        v = d.value
        if not isinstance(v, dict) or not ("predictions" in v or "outputs" in v):
            raise AggregationError(
                f"aggregate {how.value}: step {s.label!r} answered without 'predictions' (v1) or 'outputs' (v2)",
                step=s.label)
        values.append(v)
    if all("outputs" in v for v in values):
        return _v2(how, ok, values)
    if not all("predictions" in v for v in values):
        raise AggregationError(f"aggregate {how.value}: steps mix v1 'predictions' and v2 'outputs'")
    preds = [_expect_list(v["predictions"], s.label, how) for (s, _), v in zip(ok, values, strict=True)]
    return JsonDoc.of({"predictions": _combine(how, [s for s, _ in ok], preds)})


def _v2(how: Aggregate, ok: list[tuple[CompiledStep, JsonDoc]], values: list[dict[str, Any]]) -> JsonDoc:
    first = values[0]
    outputs_out = []
    for out in first["outputs"]:
        name = out.get("name")
        datas, steps = [], []
        for (s, _), v in zip(ok, values, strict=True):
            match = next((o for o in v["outputs"] if isinstance(o, dict) and o.get("name") == name), None)
            if match is None:
                raise AggregationError(f"aggregate {how.value}: step {s.label!r} has no output named {name!r}",
                                       step=s.label)
            if match.get("shape") != out.get("shape"):
                raise AggregationError(
                    f"aggregate {how.value}: step {s.label!r} output {name!r} has shape {match.get('shape')}, "
                    f"expected {out.get('shape')}", step=s.label)
            datas.append(_expect_list(match.get("data"), s.label, how))
            steps.append(s)
        combined = _combine(how, steps, datas)
        datatype = out.get("datatype") if how == Aggregate.VOTE else "FP64"
        outputs_out.append({"name": name, "shape": out.get("shape"), "datatype": datatype, "data": combined})
    result: dict[str, Any] = {}
    if "id" in first:
        result["id"] = first["id"]
    result["outputs"] = outputs_out
    return JsonDoc.of(result)


def _expect_list(v: Any, label: str, how: Aggregate) -> list[Any]:
    if not isinstance(v, list):
        raise AggregationError(f"aggregate {how.value}: step {label!r} answered predictions that are not a list",
                               step=label)
    return v


def _combine(how: Aggregate, steps: list[CompiledStep], lists: list[list[Any]]) -> list[Any]:
    n = len(lists[0])
    for s, lst in zip(steps, lists, strict=True):
        if len(lst) != n:
            raise AggregationError(
                f"aggregate {how.value}: step {s.label!r} answered {len(lst)} predictions, "
                f"step {steps[0].label!r} answered {n}", step=s.label)
    if how == Aggregate.VOTE:
        return [_vote([lst[i] for lst in lists]) for i in range(n)]
    weights = [float(s.weight or 0) for s in steps] if how == Aggregate.WEIGHTED else [1.0] * len(steps)
    total = sum(weights)
    if total <= 0:
        raise AggregationError("aggregate weighted: the weights of the steps that answered sum to 0")
    return [_mean([lst[i] for lst in lists], weights, total, steps, how) for i in range(n)]


def _vote(candidates: list[Any]) -> Any:
    """Majority; ties go to the value of the earliest step."""
    counts: dict[bytes, int] = {}
    first: dict[bytes, Any] = {}
    for c in candidates:
        try:
            k = orjson.dumps(c, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # integers beyond 64 bits
            k = json.dumps(c, sort_keys=True).encode()
        counts[k] = counts.get(k, 0) + 1
        first.setdefault(k, c)
    best = max(counts.values())
    for k in first:  # insertion order = step order
        if counts[k] == best:
            return first[k]
    raise AssertionError("unreachable")


def _mean(xs: list[Any], weights: list[float], total: float, steps: list[CompiledStep], how: Aggregate) -> Any:
    if all(isinstance(x, list) for x in xs):
        n = len(xs[0])
        if any(len(x) != n for x in xs):
            bad = next(s for s, x in zip(steps, xs, strict=True) if len(x) != n)
            raise AggregationError(f"aggregate {how.value}: step {bad.label!r} answered a differently shaped "
                                   f"prediction", step=bad.label)
        return [_mean([x[i] for x in xs], weights, total, steps, how) for i in range(n)]
    for s, x in zip(steps, xs, strict=True):
        if isinstance(x, bool) or not isinstance(x, int | float):
            raise AggregationError(f"aggregate {how.value}: step {s.label!r} answered {_preview(x)}, not a number "
                                   f"(use aggregate: vote for labels)", step=s.label)
    return sum(w * x for w, x in zip(weights, xs, strict=True)) / total


def _preview(x: Any, limit: int = 60) -> str:
    """A short JSON rendering of a value for an error cause (never the whole answer)."""
    try:
        text = orjson.dumps(x).decode()
    except (TypeError, orjson.JSONEncodeError):
        text = type(x).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
