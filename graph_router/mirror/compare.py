"""What a mirror compares between the real and the shadow answer: a GJSON path, a JSONPath, or the whole body.

``compare`` starting with ``$`` is a JSONPath (``$.predictions[0].class``); anything else is a GJSON
path (``predictions.0.class``), evaluated as tidwall/gjson does; no ``compare`` compares the whole
body (as JSON when both answers are JSON, else byte for byte). Two numbers agree when they differ
by at most ``tolerance``; their absolute difference is reported for the histogram.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ..conditions import INVALID, JsonDoc
from ..conditions.gjson import MISSING, compile_gjson
from ..conditions.jsonpath import json_equal
from ..errors import Problem, SpecError

AGREE: Final = "agree"
DISAGREE: Final = "disagree"
#: The compared value is absent from one answer (or an answer is not JSON).
MISSING_VALUE: Final = "missing"

Finder = Callable[[object], object]


@dataclass(frozen=True, slots=True)
class Verdict:
    """One comparison: ``result`` (agree, disagree, missing), the two values, and their numeric difference."""

    result: str
    real: object
    shadow: object
    difference: float | None = None


def _is_num(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


@dataclass(frozen=True, slots=True)
class Comparison:
    """A compiled ``compare``: judge two answer bodies (never raises)."""

    source: str | None
    find: Finder | None
    tolerance: float = 0.0

    def judge(self, real: bytes, shadow: bytes) -> Verdict:
        a, b = JsonDoc(real).value, JsonDoc(shadow).value
        if self.find is None:
            if a is INVALID or b is INVALID:
                return Verdict(AGREE if real == shadow else DISAGREE, real, shadow)
        else:
            a = MISSING if a is INVALID else self.find(a)
            b = MISSING if b is INVALID else self.find(b)
            if a is MISSING or b is MISSING:
                return Verdict(MISSING_VALUE, a, b)
        if _is_num(a) and _is_num(b):
            diff = abs(float(a) - float(b))  # type: ignore[arg-type]
            return Verdict(AGREE if diff <= self.tolerance else DISAGREE, a, b, diff)
        return Verdict(AGREE if json_equal(a, b) else DISAGREE, a, b)


def compile_comparison(source: str | None, tolerance: float = 0.0) -> Comparison:
    """Compile ``compare``; raises ``SpecError(Problem("", ...))`` saying what is wrong and how to fix it."""
    if source is None:
        return Comparison(None, None, tolerance)
    text = source.strip()
    if not text:
        raise SpecError(Problem("", "an empty path compares nothing; omit compare to compare the whole body"))
    if text.startswith("{"):
        raise SpecError(Problem("", f"{source!r} is a comparison; compare takes a path to a value, e.g. "
                                    f"predictions.0.class or $.predictions[0].class"))
    if text.startswith("$"):
        return Comparison(source, _jsonpath(source, text), tolerance)
    try:
        return Comparison(source, compile_gjson(source).find, tolerance)
    except SpecError as exc:
        raise SpecError(Problem("", exc.problems[0].message.replace("GJSON condition", "GJSON path"))) from None


def _jsonpath(source: str, text: str) -> Finder:
    from jsonpath_ng.ext.parser import parse

    if "=~" in text:
        raise SpecError(Problem("", f"{source!r}: regex filters (=~) are not supported (they can take "
                                    f"exponential time on a crafted answer); compare with == instead"))
    try:
        expr = parse(text)
    except Exception as exc:  # jsonpath-ng raises several unrelated types
        raise SpecError(Problem("", f"invalid JSONPath {source!r}: {exc}; e.g. $.predictions[0].class")) from exc

    def find(value: object) -> object:
        try:
            found = [m.value for m in expr.find(value)]
        except Exception:  # a filter on unexpected types: the path selects nothing
            return MISSING
        if not found:
            return MISSING
        return found[0] if len(found) == 1 else found

    return find
