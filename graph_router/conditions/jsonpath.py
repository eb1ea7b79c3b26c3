"""JSONPath comparisons: ``{ .predictions[0].class == 'dog' && $.instances[*].score > 0.5 }``.

Grammar (inside the outer braces)::

    expr    := and ('||' and)*
    and     := unary ('&&' unary)*
    unary   := '!' unary | '(' expr ')' | operand [op operand]
    op      := '==' | '!=' | '<' | '<=' | '>' | '>='
    operand := path | 'string' | "string" | number | true | false | null

A path starts with ``$`` or ``.`` (``.a`` means ``$.a``) and is compiled by jsonpath-ng (its
extended syntax, so filters like ``$.a[?(@.b > 1)]`` work). A bare path means "the path selects
something". A comparison holds when ANY selected value satisfies it. Types: numbers compare with
numbers (a bool is not a number), strings with strings; ``==``/``!=`` across types are simply
unequal; ordering across types is false. A document that is not JSON never matches.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from jsonpath_ng.ext.parser import parse as _jsonpath_parse

from ..errors import Problem, SpecError
from .document import INVALID, JsonDoc

__all__ = ["JsonPathCondition", "compile_jsonpath"]

_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?(?![A-Za-z0-9_.$])")
_WORD = re.compile(r"(true|false|null)(?![A-Za-z0-9_])")
_OPS = ("==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "(", ")")
_PATH_STOP = frozenset(" \t\r\n=!<>&|)")


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # an operator text, or "path", "lit", "end"
    text: str
    col: int  # 1-based column in the whole condition text
    value: object = None


class _Lexer:
    def __init__(self, source: str, inner: str, offset: int) -> None:
        self.source, self.s, self.offset = source, inner, offset

    def error(self, i: int, what: str, fix: str) -> SpecError:
        return _error(self.source, what, self.offset + i + 1, fix)

    def tokens(self) -> list[_Token]:
        out: list[_Token] = []
        s, i = self.s, 0
        while i < len(s):
            c = s[i]
            if c in " \t\r\n":
                i += 1
            elif c in "$.":
                end = self._path_end(i)
                out.append(_Token("path", s[i:end], self.offset + i + 1))
                i = end
            elif c in "'\"":
                text, end = self._string(i)
                out.append(_Token("lit", s[i:end], self.offset + i + 1, text))
                i = end
            elif m := _NUMBER.match(s, i):
                num = json.loads(m.group())
                out.append(_Token("lit", m.group(), self.offset + i + 1, num))
                i = m.end()
            elif m := _WORD.match(s, i):
                out.append(_Token("lit", m.group(), self.offset + i + 1, json.loads(m.group())))
                i = m.end()
            else:
                op = next((o for o in _OPS if s.startswith(o, i)), None)
                if op is None:
                    fix = "use '==' to compare" if c == "=" else "remove it or quote the literal"
                    raise self.error(i, f"unexpected {c!r}", fix)
                out.append(_Token(op, op, self.offset + i + 1))
                i += len(op)
        out.append(_Token("end", "", self.offset + len(s) + 1))
        return out

    def _path_end(self, i: int) -> int:
        s, depth = self.s, 0
        while i < len(s):
            c = s[i]
            if c in "'\"":
                i = self._string(i)[1]
                continue
            if c in "[(":
                depth += 1
            elif c in "])":
                if depth == 0:
                    break
                depth -= 1
            elif depth == 0 and c in _PATH_STOP:
                break
            i += 1
        return i

    def _string(self, i: int) -> tuple[str, int]:
        s, quote, j = self.s, self.s[i], i + 1
        out: list[str] = []
        while j < len(s):
            c = s[j]
            if c == quote:
                return "".join(out), j + 1
            if c == "\\" and j + 1 < len(s):
                j += 1
                e = s[j]
                if e == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", s[j + 1: j + 5]):
                    out.append(chr(int(s[j + 1: j + 5], 16)))
                    j += 4
                else:
                    out.append({"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}.get(e, e))
            else:
                out.append(c)
            j += 1
        raise self.error(i, f"the string opened by {quote} is never closed", f"add the closing {quote}")


def _error(source: str, what: str, col: int, fix: str) -> SpecError:
    return SpecError(Problem("", f"invalid JSONPath condition {source!r}: {what} at column {col}; {fix}"))


# --- evaluation nodes: each is a callable on the parsed document -----------------------------

_Eval = Callable[[object], bool]
_Values = Callable[[object], list[object]]


def _is_num(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def json_equal(a: object, b: object) -> bool:
    """Equality with JSON types kept apart (``1 != true``, ``1 == 1.0``)."""
    if _is_num(a) and _is_num(b):
        return bool(a == b)
    if type(a) is not type(b):
        return False
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return bool(a == b)


_ORDER: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


def compare(a: object, op: str, b: object) -> bool:
    """One comparison under the type rules in the module docstring."""
    if op == "==":
        return json_equal(a, b)
    if op == "!=":
        return not json_equal(a, b)
    if (_is_num(a) and _is_num(b)) or (isinstance(a, str) and isinstance(b, str)):
        return bool(_ORDER[op](a, b))
    return False


_REGEX_FILTER = re.compile(r"""=~(?=(?:[^'"]|'[^']*'|"[^"]*")*\Z)""")


def _path_values(path: str, col: int, source: str) -> _Values:
    if m := _REGEX_FILTER.search(path):
        raise _error(source, "regex filters (=~) are not supported", col + m.start(),
                     "they can take exponential time on a crafted request; compare with == instead")
    full = "$" + path if path.startswith(".") else path
    try:
        expr = _jsonpath_parse(full)
    except Exception as exc:  # jsonpath-ng raises several unrelated types
        raise _error(source, f"bad path {path!r} ({exc})", col, "check the JSONPath syntax") from exc

    def values(doc: object) -> list[object]:
        try:
            return [m.value for m in expr.find(doc)]
        except Exception:  # a filter on unexpected types: the path selects nothing
            return []

    return values


@dataclass(frozen=True, slots=True)
class _Operand:
    values: _Values | None  # None for a literal
    literal: object


class _Parser:
    def __init__(self, lexer: _Lexer) -> None:
        self.lexer = lexer
        self.toks = lexer.tokens()
        self.i = 0

    def error(self, tok: _Token, what: str, fix: str) -> SpecError:
        return _error(self.lexer.source, what, tok.col, fix)

    def peek(self) -> _Token:
        return self.toks[self.i]

    def take(self) -> _Token:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def parse(self) -> _Eval:
        node = self.expr()
        tok = self.peek()
        if tok.kind != "end":
            raise self.error(tok, f"unexpected {tok.text!r}", "join conditions with && or ||")
        return node

    def expr(self) -> _Eval:
        parts = [self.conj()]
        while self.peek().kind == "||":
            self.take()
            parts.append(self.conj())
        return parts[0] if len(parts) == 1 else (lambda d: any(p(d) for p in parts))

    def conj(self) -> _Eval:
        parts = [self.unary()]
        while self.peek().kind == "&&":
            self.take()
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else (lambda d: all(p(d) for p in parts))

    def unary(self) -> _Eval:
        tok = self.peek()
        if tok.kind == "!":
            self.take()
            inner = self.unary()
            return lambda d: not inner(d)
        if tok.kind == "(":
            self.take()
            inner = self.expr()
            close = self.take()
            if close.kind != ")":
                raise self.error(close, f"the '(' at column {tok.col} is not closed", "add ')'")
            return inner
        return self.comparison()

    def comparison(self) -> _Eval:
        first = self.peek()
        left = self.operand()
        op = self.peek()
        if op.kind not in ("==", "!=", "<", "<=", ">", ">="):
            if left.values is None:
                raise self.error(first, f"the literal {first.text} is not a condition",
                                 f"compare a path with it, e.g. $.x == {first.text}")
            lv = left.values
            return lambda d: bool(lv(d))
        self.take()
        return _comparison(left, op.kind, self.operand())

    def operand(self) -> _Operand:
        tok = self.take()
        if tok.kind == "path":
            return _Operand(_path_values(tok.text, tok.col, self.lexer.source), None)
        if tok.kind == "lit":
            return _Operand(None, tok.value)
        what = "the end of the condition" if tok.kind == "end" else repr(tok.text)
        raise self.error(tok, f"expected a path or a literal, found {what}",
                         "write a path ($.x or .x), a quoted string, a number, true, false or null")


def _comparison(left: _Operand, op: str, right: _Operand) -> _Eval:
    lv, rv, a, b = left.values, right.values, left.literal, right.literal
    if lv is not None and rv is not None:
        return lambda d: any(compare(x, op, y) for x in lv(d) for y in rv(d))
    if lv is not None:
        return lambda d: any(compare(x, op, b) for x in lv(d))
    if rv is not None:
        return lambda d: any(compare(a, op, y) for y in rv(d))
    const = compare(a, op, b)
    return lambda d: const


class JsonPathCondition:
    """A compiled ``{ ... }`` JSONPath comparison."""

    __slots__ = ("_eval", "source")

    def __init__(self, source: str, evaluate: _Eval) -> None:
        self.source = source
        self._eval = evaluate

    def matches(self, doc: JsonDoc) -> bool:
        v = doc.value
        if v is INVALID:
            return False
        try:
            return bool(self._eval(v))
        except Exception:  # never let a pathological document escape as an error
            return False

    def __repr__(self) -> str:
        return f"JsonPathCondition({self.source!r})"


def compile_jsonpath(text: str) -> JsonPathCondition:
    """Compile ``{ ... }``; raises :class:`SpecError` naming the column of the first problem."""
    start = len(text) - len(text.lstrip())
    end = len(text.rstrip())
    if not text.startswith("{", start) or end - start < 2 or text[end - 1] != "}":
        raise _error(text, "a JSONPath condition must be wrapped in { }", end + 1, "add the closing '}'")
    try:
        return JsonPathCondition(text, _Parser(_Lexer(text, text[start + 1: end - 1], start + 1)).parse())
    except RecursionError:
        raise _error(text, "nested too deeply", 1, "simplify it") from None
