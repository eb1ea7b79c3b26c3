"""Go's ``encoding/json`` as KServe's router meets it, for parity: the exact error text of
``json.Unmarshal`` into ``map[string]interface{}``, and how a ``predictions`` field is decoded.

A port of the semantics of Go's ``encoding/json`` (``scanner.go``'s state machine and ``decode.go``'s
type errors), not of its code: Go first checks the whole input (so a syntax error anywhere wins over
a type error), then decodes, keeping the first type error. Iterative and linear: input orjson accepts
is settled by orjson; otherwise runs of simple elements, string bytes, digits and whitespace are skipped
with regular expressions rather than byte by byte.
"""

from __future__ import annotations

import math
import re
from typing import Any

import orjson

MAX_DEPTH = 10000  # Go's maxNestingDepth
_TARGET = "map[string]interface {}"
_EOF = 0x20  # at end of input Go feeds the scanner one space: "-" fails on ' ', "1" completes
_WS = re.compile(rb"[ \t\r\n]*")
_STR = re.compile(rb'[^"\\\x00-\x1f]*')  # Go accepts any byte >= 0x20 in a string, valid UTF-8 or not
_DIGITS = re.compile(rb"[0-9]*")
_HEX = b"0123456789abcdefABCDEF"
# Runs of complete, valid "value," elements and '"key":value,' members, matched in one C-level call
# (possessive, so no backtracking); a value here is a scalar or a flat array/object of scalars. A run
# stops before anything else, which the byte-exact scan then takes up from the same state. Their
# numbers (<= 300 integer digits, exponent <= 99) cannot overflow a float64.
_R_WS = rb"[ \t\r\n]*+"
_R_STR = rb'"[^"\\\x00-\x1f]*+(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\\x00-\x1f]*+)*+"'
_R_NUM = rb"-?+(?:0|[1-9][0-9]{0,299}+)(?:\.[0-9]++)?+(?:[eE][+-]?+0*+[0-9]{1,2}+(?![0-9]))?+"
_R_SCALAR = rb"(?:" + _R_STR + rb"|" + _R_NUM + rb"|true|false|null)"
_R_PAIR = _R_STR + _R_WS + rb":" + _R_WS + _R_SCALAR + _R_WS
_R_VALUE = (
    rb"(?:" + _R_SCALAR
    + rb"|\[" + _R_WS + rb"(?:" + _R_SCALAR + _R_WS + rb"(?:," + _R_WS + _R_SCALAR + _R_WS + rb")*+)?+\]"
    + rb"|\{" + _R_WS + rb"(?:" + _R_PAIR + rb"(?:," + _R_WS + _R_PAIR + rb")*+)?+\})"
)
_ELEMS = re.compile(rb"(?:" + _R_VALUE + _R_WS + rb"," + _R_WS + rb")*+")
_MEMBERS = re.compile(
    rb"(?:" + _R_STR + _R_WS + rb":" + _R_WS + _R_VALUE + _R_WS + rb"," + _R_WS + rb")*+"
    rb"(" + _R_STR + _R_WS + rb":)?"
)
_SIMPLE_ESC = b'bfnrt\\/"'
_NAMED = {0x07: "\\a", 0x08: "\\b", 0x0C: "\\f", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x0B: "\\v"}

# What the innermost open container is waiting for (Go's parseState values).
_KEY, _VALUE, _ELEM = 0, 1, 2
# What the scanner expects next.
_BEGIN, _BEGIN_OR_CLOSE, _NAME, _NAME_OR_CLOSE, _AFTER = range(5)
_AFTER_CTX = {_KEY: "after object key", _VALUE: "after object key:value pair", _ELEM: "after array element"}
_KINDS = {list: "array", str: "string", bool: "bool", int: "number", float: "number"}


class _Syntax(Exception):
    """Internal: carries Go's SyntaxError text out of the scan."""


def unmarshal_object_error(raw: bytes) -> str | None:
    """None if Go's ``json.Unmarshal(raw, &map[string]interface{}{})`` succeeds, else its error text."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    else:
        # orjson accepts a strict subset of what Go's scanner accepts and rejects any number that
        # overflows a float64, so its answer settles the case without the slow scan.
        if value is None or isinstance(value, dict):
            return None
        return _type_error(_KINDS[type(value)])
    try:
        overflow = _check_valid(raw)
    except _Syntax as err:
        return str(err)
    start = _skip(_WS, raw, 0)
    first = raw[start]
    if first == 0x7B:  # '{': Go decodes every number inside as a float64 and keeps the first failure
        return None if overflow is None else _type_error("number " + overflow.decode("ascii"), "float64")
    if first == 0x6E:  # 'n': null leaves the map nil
        return None
    kind = {0x5B: "array", 0x22: "string", 0x74: "bool", 0x66: "bool"}.get(first, "number")
    return _type_error(kind)


def quote_char(c: int) -> str:
    """Go's ``quoteChar``: the byte as a single-quoted Go character literal (``'\\x01'``, ``'ÿ'``)."""
    if c == 0x27:
        return "'\\''"
    if c == 0x22:
        return "'\"'"
    if c == 0x5C:
        return "'\\\\'"
    if c in _NAMED:
        return f"'{_NAMED[c]}'"
    if c < 0x20 or c == 0x7F:
        return f"'\\x{c:02x}'"
    # Go quotes string(rune(c)): U+0080..U+00A0 and U+00AD are not printable in Go's tables.
    if 0x80 <= c <= 0xA0 or c == 0xAD:
        return f"'\\u{c:04x}'"
    return f"'{chr(c)}'"


def _type_error(kind: str, target: str = _TARGET) -> str:
    return f"json: cannot unmarshal {kind} into Go value of type {target}"


def _fail(c: int, context: str) -> _Syntax:
    return _Syntax(f"invalid character {quote_char(c)} {context}")


def _check_valid(data: bytes) -> bytes | None:
    """Go's ``checkValid``; raises _Syntax, else returns the first number literal overflowing float64."""
    n = len(data)
    stack: list[int] = []
    expect = _BEGIN
    overflow: bytes | None = None
    i = 0
    while True:
        i = _skip(_WS, data, i)
        if i >= n:
            if expect == _AFTER and not stack:
                return overflow
            raise _Syntax("unexpected end of JSON input")
        c = data[i]
        if expect < _AFTER and stack and (j := _run(data, i, expect, stack)) > i:
            i, expect = j, (_BEGIN if stack[-1] != _KEY else _NAME)
        elif expect == _AFTER:
            if not stack:
                raise _fail(c, "after top-level value")
            i, expect = _after_value(stack, c, i)
        elif (expect == _BEGIN_OR_CLOSE and c == 0x5D) or (expect == _NAME_OR_CLOSE and c == 0x7D):
            stack.pop()
            i, expect = i + 1, _AFTER
        elif expect in (_NAME, _NAME_OR_CLOSE):
            if c != 0x22:
                raise _fail(c, "looking for beginning of object key string")
            i, expect = _string(data, i), _AFTER
        elif c == 0x7B or c == 0x5B:
            stack.append(_KEY if c == 0x7B else _ELEM)
            if len(stack) > MAX_DEPTH:
                raise _fail(c, "exceeded max depth")
            i, expect = i + 1, (_NAME_OR_CLOSE if c == 0x7B else _BEGIN_OR_CLOSE)
        else:
            j = _scalar(data, i, c)
            if overflow is None and (c == 0x2D or 0x30 <= c <= 0x39) and _overflows(data[i:j]):
                overflow = data[i:j]
            i, expect = j, _AFTER


def _run(data: bytes, i: int, expect: int, stack: list[int]) -> int:
    """Skip a run of simple elements (or members, plus a next key) from a state that begins one."""
    if len(stack) >= MAX_DEPTH:
        return i  # a flat container would open one level too many: leave the depth error to the scan
    if expect in (_BEGIN, _BEGIN_OR_CLOSE):
        return _skip(_ELEMS, data, i) if stack[-1] == _ELEM else i
    m = _MEMBERS.match(data, i)
    if m is None:
        return i
    if m.group(1) is not None:
        stack[-1] = _VALUE
    return m.end()


def _after_value(stack: list[int], c: int, i: int) -> tuple[int, int]:
    """Go's ``stateEndValue`` inside a container: the byte after a key, a member or an element."""
    top = stack[-1]
    if top == _KEY and c == 0x3A:
        stack[-1] = _VALUE
        return i + 1, _BEGIN
    if top != _KEY and c == 0x2C:
        stack[-1] = _KEY if top == _VALUE else _ELEM
        return i + 1, (_NAME if top == _VALUE else _BEGIN)
    if (top == _VALUE and c == 0x7D) or (top == _ELEM and c == 0x5D):
        stack.pop()
        return i + 1, _AFTER
    raise _fail(c, _AFTER_CTX[top])


def _scalar(data: bytes, i: int, c: int) -> int:
    """A string, number or literal starting at ``i``; returns the index just past it."""
    if c == 0x22:
        return _string(data, i)
    if c == 0x2D or 0x30 <= c <= 0x39:
        return _number(data, i)
    word = {0x74: b"true", 0x66: b"false", 0x6E: b"null"}.get(c)
    if word is None:
        raise _fail(c, "looking for beginning of value")
    for k in range(1, len(word)):
        got = _at(data, i + k)
        if got != word[k]:
            raise _fail(got, f"in literal {word.decode()} (expecting '{chr(word[k])}')")
    return i + len(word)


def _string(data: bytes, i: int) -> int:
    """A string whose opening quote is at ``i``; returns the index just past the closing quote."""
    n = len(data)
    i += 1
    while True:
        i = _skip(_STR, data, i)
        if i >= n:
            raise _Syntax("unexpected end of JSON input")
        c = data[i]
        if c == 0x22:
            return i + 1
        if c != 0x5C:
            raise _fail(c, "in string literal")
        esc = _at(data, i + 1)
        if esc == 0x75:  # \u: exactly four hex digits
            for k in range(i + 2, i + 6):
                h = _at(data, k)
                if h not in _HEX:
                    raise _fail(h, "in \\u hexadecimal character escape")
            i += 6
        elif esc in _SIMPLE_ESC:
            i += 2
        else:
            raise _fail(esc, "in string escape code")


def _number(data: bytes, i: int) -> int:
    """A number starting at ``i`` (``-`` or a digit); returns the index just past it."""
    j = i + 1 if data[i] == 0x2D else i
    c = _at(data, j)
    if c == 0x30:
        j += 1
    elif 0x31 <= c <= 0x39:
        j = _skip(_DIGITS, data, j + 1)
    else:
        raise _fail(c, "in numeric literal")
    if _at(data, j) == 0x2E:
        c = _at(data, j + 1)
        if not 0x30 <= c <= 0x39:
            raise _fail(c, "after decimal point in numeric literal")
        j = _skip(_DIGITS, data, j + 2)
    if _at(data, j) in (0x65, 0x45):
        j += 1
        if _at(data, j) in (0x2B, 0x2D):
            j += 1
        c = _at(data, j)
        if not 0x30 <= c <= 0x39:
            raise _fail(c, "in exponent of numeric literal")
        j = _skip(_DIGITS, data, j + 1)
    return j


def _skip(run: re.Pattern[bytes], data: bytes, i: int) -> int:
    """The index after the run of ``run`` at ``i`` (every pattern used matches the empty string)."""
    m = run.match(data, i)
    return m.end() if m else i


def _at(data: bytes, i: int) -> int:
    return data[i] if i < len(data) else _EOF


def _overflows(lit: bytes) -> bool:
    """Whether Go's ``strconv.ParseFloat(lit, 64)`` fails (it only can by overflowing to infinity)."""
    # Without an exponent a literal needs 309 integer digits to pass float64's maximum.
    if len(lit) < 309 and b"e" not in lit and b"E" not in lit:
        return False
    return math.isinf(float(lit))


def go_predictions(value: Any) -> list[Any] | None:
    """``predictions`` as KServe reads it, with Go's ``encoding/json`` into a struct field.

    Every key equal to ``predictions`` under Go's case folding (ASCII case, and U+017F long s for ``s``)
    assigns the field in document order, so the last one wins; ``null`` clears it; any other type
    fails the whole unmarshal, and KServe then leaves the input unchanged.
    """
    if not isinstance(value, dict):
        return None
    found: list[Any] | None = None
    for key, v in value.items():
        if key == "predictions" or (len(key) == 11 and key.replace("\u017f", "s").lower() == "predictions"):
            if v is None:
                found = None
            elif isinstance(v, list):
                found = v
            else:
                return None
    return found


def go_unmarshal_error(raw: bytes) -> str:
    """The text of Go's ``json.Unmarshal`` error into ``map[string]interface{}``, as KServe reports it."""
    # Call sites only get here for a body that is not an object or null, so Go always fails.
    return unmarshal_object_error(raw) or "json: cannot unmarshal into Go value of type map[string]interface {}"
