"""Compile-time checks for GJSON conditions: only the clearly broken ones are refused.

gjson itself never reports an error; a typo silently becomes a path that matches nothing (or
everything). We refuse, with the column and a fix: unbalanced or mismatched ``( ) [ ] { }``, an
unterminated ``"`` string, and a query operator gjson does not have (``===``, ``=>``, ``<>``...).
"""

from __future__ import annotations

from typing import Final

from .gjson_syntax import parse_query
from .gjson_text import skip_string

MAX_CONDITION_LENGTH: Final = 4096

_OPEN = {")": "(", "]": "[", "}": "{"}
_CLOSE = {v: k for k, v in _OPEN.items()}
_QUERY_OPS = frozenset(("=", "==", "!=", "<", "<=", ">", ">=", "%", "!%"))


def syntax_problem(text: str) -> str | None:
    """What makes ``text`` clearly broken (with the column, 1-based, and a fix), or None."""
    if len(text) > MAX_CONDITION_LENGTH:
        return f"longer than {MAX_CONDITION_LENGTH} characters; shorten it"
    stack: list[tuple[str, int]] = []
    i, n, escaped = 0, len(text), -1
    while i < n:
        c = text[i]
        if c == "\\":
            escaped = i + 1
            i += 2
            continue
        if c == '"':
            end, _ = skip_string(text, i + 1)
            if end >= n:
                return f"the string opened by '\"' at column {i + 1} is never closed; add the closing '\"'"
            i = end + 1
            continue
        if c in _CLOSE:
            stack.append((c, i))
            if c in "([" and i > 0 and text[i - 1] == "#" and escaped != i - 1:
                bad = _bad_operator(text, i - 1)
                if bad:
                    return bad
        elif c in _OPEN:
            if not stack:
                return f"unexpected '{c}' at column {i + 1}; remove it or add a matching '{_OPEN[c]}' first"
            o, at = stack.pop()
            if o != _OPEN[c]:
                return f"'{c}' at column {i + 1} does not close '{o}' from column {at + 1}; use '{_CLOSE[o]}'"
        i += 1
    if stack:
        o, at = stack[-1]
        return f"'{o}' at column {at + 1} is never closed; add a matching '{_CLOSE[o]}'"
    return None


def _bad_operator(text: str, start: int) -> str | None:
    q = parse_query(text[start:])
    if q is None or not q.op_text or q.op_text in _QUERY_OPS:
        return None
    return (f"unknown operator {q.op_text!r} at column {start + q.op_start + 1}; "
            "use one of == != < <= > >= % !% (gjson has no && or ||)")
