"""Values in gjson's terms, over parsed JSON: missing results, Go number parsing, glob matching,
gjson's lenient ``Parse`` of a text, and the built-in ``@modifiers``."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Final

from .document import INVALID, parse_json
from .gjson_text import squash, unescape


class _Missing:
    """Type of :data:`MISSING`: a gjson Result that does not exist."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()

# --- Go's strconv.ParseFloat (errors ignored, as gjson does: a bad number reads as 0) -----------

_DIGITS = r"[0-9](?:_?[0-9])*"
_GO_DECIMAL = re.compile(
    rf"[+-]?(?:{_DIGITS}(?:\.(?:{_DIGITS})?)?|\.{_DIGITS})(?:[eE][+-]?{_DIGITS})?", re.ASCII
)
_HEX = r"[0-9a-fA-F](?:_?[0-9a-fA-F])*"
_GO_HEX = re.compile(rf"[+-]?0[xX]_?(?:{_HEX}(?:\.(?:{_HEX})?)?|\.{_HEX})[pP][+-]?{_DIGITS}", re.ASCII)
_GO_SPECIAL = re.compile(r"[+-]?(?:inf|infinity)|nan", re.IGNORECASE | re.ASCII)


def go_parse_float(s: str) -> float:
    """``strconv.ParseFloat(s, 64)`` with the error dropped (syntax error -> 0, overflow -> ±Inf)."""
    if _GO_DECIMAL.fullmatch(s):
        return float(s.replace("_", ""))
    if _GO_SPECIAL.fullmatch(s):
        return float(s)
    if _GO_HEX.fullmatch(s):
        return float.fromhex(s.replace("_", ""))
    return 0.0


def to_float(v: int | float) -> float:
    """A JSON number as gjson's float64 ``Num``."""
    if isinstance(v, float):
        return v
    try:
        return float(v)
    except OverflowError:
        return math.inf if v > 0 else -math.inf


# --- tidwall/match: '*' any run, '?' one character, '\' escapes the next ---------------------


class Glob:
    """A compiled tidwall/match pattern; linear-time for '*'-only patterns, never backtracks."""

    __slots__ = ("_never", "_parts", "_star")

    def __init__(self, pattern: str) -> None:
        parts: list[list[str | None]] = [[]]  # None stands for '?'
        self._never = False
        i, n = 0, len(pattern)
        while i < n:
            c = pattern[i]
            if c == "*":
                parts.append([])
            elif c == "?":
                parts[-1].append(None)
            elif c == "\\":
                i += 1
                if i == n:
                    self._never = True  # a trailing lone backslash never matches
                    break
                parts[-1].append(pattern[i])
            else:
                parts[-1].append(c)
            i += 1
        self._star = len(parts) > 1
        self._parts = [(len(p), re.compile("".join("." if t is None else re.escape(t) for t in p), re.S))
                       for p in parts]

    def match(self, s: str) -> bool:
        if self._never:
            return False
        if not self._star:
            return self._parts[0][1].fullmatch(s) is not None
        (n0, first), *mid, (nl, last) = self._parts
        end = len(s) - nl
        if end < n0 or not first.match(s, 0, n0) or not last.match(s, end):
            return False
        pos = n0
        for _, seg in mid:
            m = seg.search(s, pos, end)
            if m is None:
                return False
            pos = m.end()
        return True


# --- gjson's Parse: read the first JSON value of a text, leniently --------------------------


def _tonum(text: str) -> float | int:
    end = len(text)
    for i in range(1, len(text)):
        if text[i] <= " " or text[i] in ",]}":
            end = i
            break
    raw = text[:end]
    if re.fullmatch(r"-?[0-9]+", raw):
        return int(raw)
    return go_parse_float(raw)


def _tostr(text: str) -> str:
    i, n = 1, len(text)
    while i < n:
        if text[i] == '"':
            return text[1:i]
        if text[i] == "\\":
            j = i + 1
            while j < n:
                if text[j] == '"' and _even_backslashes(text, j):
                    break
                j += 1
            return unescape(text[1:j])
        i += 1
    return text[1:]


def _even_backslashes(text: str, j: int) -> bool:
    k, i = 0, j - 1
    while i > 0 and text[i] == "\\":
        k += 1
        i -= 1
    return k % 2 == 0


def parse_text(text: str) -> object:
    """gjson ``Parse``: the first value in ``text`` (MISSING when none starts it).

    Divergence: an object or array must be valid JSON here, where gjson keeps any raw text.
    """
    for i, c in enumerate(text):
        if c in "{[":
            v = parse_json(squash(text[i:]).encode("utf-8", "surrogateescape"))
            return MISSING if v is INVALID else v
        if c <= " ":
            continue
        if c in "+-0123456789iIN" or (c == "n" and text[i + 1: i + 2] not in ("u", "")):
            return _tonum(text[i:])
        return {"n": None, "t": True, "f": False}.get(c, MISSING) if c != '"' else _tostr(text[i:])
    return MISSING


def dumps(v: object) -> str:
    """Compact JSON text of a value (big integers kept exact)."""
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False, allow_nan=True)


# --- modifiers: each maps a value (or MISSING) and its argument to a value (or MISSING) -------


def _opt(arg: object, key: str) -> bool:
    """A boolean option of a modifier's JSON argument, read as gjson's ``Result.Bool``."""
    v = arg.get(key, False) if isinstance(arg, dict) else False
    if isinstance(v, str):
        return v.lower() in ("1", "t", "true")
    return bool(v) if isinstance(v, bool | int | float) else False


def _reverse(v: object, arg: object) -> object:
    if isinstance(v, list):
        return v[::-1]
    if isinstance(v, dict):
        return dict(reversed(list(v.items())))
    return v


def _flatten(v: object, arg: object) -> object:
    if not isinstance(v, list):
        return v
    deep = _opt(arg, "deep")
    out: list[object] = []
    for item in v:
        if not isinstance(item, list):
            out.append(item)
        elif deep:
            out.extend(_flatten_deep(item))
        else:
            out.extend(item)
    return out


def _flatten_deep(v: list[object]) -> list[object]:
    out: list[object] = []
    for item in v:
        if isinstance(item, list):
            out.extend(_flatten_deep(item))
        else:
            out.append(item)
    return out


def _join(v: object, arg: object) -> object:
    if not isinstance(v, list):
        return v
    preserve = _opt(arg, "preserve")
    out: dict[str, object] = {}
    for item in v:
        if isinstance(item, dict):
            for k, x in item.items():
                if preserve:
                    out.setdefault(k, x)  # duplicate keys kept in gjson; lookups find the first
                else:
                    out[k] = x
    return out


def _valid(v: object, arg: object) -> object:
    if isinstance(v, float) and not math.isfinite(v):
        return MISSING
    return v


def _keys(v: object, arg: object) -> object:
    if v is MISSING:
        return []
    if isinstance(v, dict):
        return list(v)
    return [None] * (len(v) if isinstance(v, list) else 1)


def _values(v: object, arg: object) -> object:
    if v is MISSING:
        return []
    if isinstance(v, dict):
        return list(v.values())
    return v if isinstance(v, list) else [v]


def _to_str(v: object, arg: object) -> object:
    return "" if v is MISSING else dumps(v)


def _fromstr(v: object, arg: object) -> object:
    if v is MISSING or v is None:
        return MISSING
    return parse_text(v) if isinstance(v, str) else v


def _group(v: object, arg: object) -> object:
    if not isinstance(v, dict):
        return MISSING
    rows: list[dict[str, object]] = []
    for k, col in v.items():
        if isinstance(col, list):
            for idx, x in enumerate(col):
                if idx == len(rows):
                    rows.append({})
                rows[idx].setdefault(k, x)
    return rows


def _identity(v: object, arg: object) -> object:
    return v


Modifier = Callable[[object, object], object]
MODIFIER_FUNCS: Final[dict[str, Modifier]] = {
    "pretty": _identity,
    "ugly": _identity,
    "this": _identity,
    "reverse": _reverse,
    "flatten": _flatten,
    "join": _join,
    "valid": _valid,
    "keys": _keys,
    "values": _values,
    "tostr": _to_str,
    "fromstr": _fromstr,
    "group": _group,
}


def parse_modifier_arg(args: str) -> object:
    """A modifier's argument as JSON (only object arguments carry options)."""
    if not args:
        return None
    v = parse_json(args.encode("utf-8", "surrogateescape"))
    return v if isinstance(v, dict) else None
