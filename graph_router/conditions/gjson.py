"""GJSON conditions: ``gjson.GetBytes(doc, path).Exists()`` as tidwall/gjson v1.18 answers it.

A path is compiled once into a tree of nodes (the string splitting of gjson's ``Get``,
``parseObject`` and ``parseArray`` is done up front, see :mod:`.gjson_syntax`); matching walks
the parsed document. Supported: dotted keys, ``*``/``?`` wildcards and ``\\`` escapes, array
indexes, ``#`` (count), ``#.key``, queries ``#(...)`` / ``#(...)#`` (nested, with paths inside,
``== = != < <= > >= % !%``, quoted or bare values, ``~true``-style truthiness, Go's
number/string/bool coercions), pipes ``|``, JSON-lines ``..``, multipaths ``[a,b]`` and
``{name:a,b}``, statics ``!true``, and the modifiers @this @reverse @flatten @join @keys
@values @valid @pretty @ugly @tostr @fromstr @group @dig.

Compile-time errors (:class:`SpecError`), for conditions that are clearly broken only:
unbalanced or mismatched ``( ) [ ] { }``, an unterminated ``"`` string, and a query operator
that is not one of the above (``===``, ``=>``, ``<>``, a lone ``!``...). Everything else gjson
accepts, and so do we - including ``#(a>1 && b<2)``, where gjson has no ``&&`` and the right side
reads as the number 0.

Known divergences from tidwall/gjson (all on inputs KServe users do not write):
- a document that is not valid JSON never matches (gjson scans it leniently);
- duplicate object keys: the last one wins (gjson finds the first);
- a path on a string value never looks inside the string's raw text (gjson may find brackets in it);
- @tostr yields compact JSON text, not the document's original spacing; @fromstr and statics
  need valid JSON for objects and arrays;
- glob matching (``%``, wildcard keys) has no complexity cut-off (gjson gives up after 10000 steps
  per character and answers false);
- documents nested deeper than ~1000 levels count as invalid.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, Final

from ..errors import Problem, SpecError
from .document import INVALID, JsonDoc, parse_json
from .gjson_syntax import (
    go_uint_index,
    is_simple_name,
    name_of_last,
    parse_array_path,
    parse_modifier,
    parse_object_path,
    parse_query,
    parse_static,
    parse_sub_selectors,
    skip_string,
    split_possible_pipe,
)
from .gjson_values import (
    MISSING,
    MODIFIER_FUNCS,
    Glob,
    Modifier,
    go_parse_float,
    parse_modifier_arg,
    parse_text,
    to_float,
)

__all__ = ["GjsonCondition", "compile_gjson"]

MAX_CONDITION_LENGTH: Final = 4096


class _Ctx:
    """gjson's ``parseContext``: the value found and the pipe left to apply to it."""

    __slots__ = ("pipe", "value")

    def __init__(self) -> None:
        self.value: object = MISSING
        self.pipe: _Get | None = None


class _Get:
    """A compiled ``Get(json, path)``."""

    __slots__ = ()

    def get(self, v: object) -> object:
        raise NotImplementedError


def _finish(ctx: _Ctx) -> object:
    return ctx.value if ctx.pipe is None else ctx.pipe.get(ctx.value)


class _Plain(_Get):
    __slots__ = ("arr", "obj")

    def __init__(self, obj: _Obj, arr: _Arr) -> None:
        self.obj, self.arr = obj, arr

    def get(self, v: object) -> object:
        ctx = _Ctx()
        if isinstance(v, dict):
            self.obj.run(ctx, v)
        elif isinstance(v, list):
            self.arr.run(ctx, v)
        else:
            return MISSING
        return _finish(ctx)


class _Lines(_Get):
    """``..path``: the document read as JSON lines, i.e. an array of its one value."""

    __slots__ = ("arr",)

    def __init__(self, arr: _Arr) -> None:
        self.arr = arr

    def get(self, v: object) -> object:
        ctx = _Ctx()
        self.arr.run(ctx, [] if v is MISSING else [v])
        return _finish(ctx)


class _Then(_Get):
    """Base of nodes that compute a value and then apply the rest of the path to it."""

    __slots__ = ("rest",)

    def __init__(self, rest: _Get | None) -> None:
        self.rest = rest

    def compute(self, v: object) -> object:
        raise NotImplementedError

    def get(self, v: object) -> object:
        r = self.compute(v)
        return r if self.rest is None else self.rest.get(r)


class _Mod(_Then):
    __slots__ = ("arg", "fn")

    def __init__(self, fn: Modifier, arg: object, rest: _Get | None) -> None:
        super().__init__(rest)
        self.fn, self.arg = fn, arg

    def compute(self, v: object) -> object:
        return self.fn(v, self.arg)


class _Dig(_Then):
    """``@dig:path``: every value ``path`` finds in the document and all its descendants."""

    __slots__ = ("path",)

    def __init__(self, path: _Get, rest: _Get | None) -> None:
        super().__init__(rest)
        self.path = path

    def compute(self, v: object) -> object:
        out: list[object] = []
        stack = [v]
        while stack:  # pre-order, iteratively: deep documents must not exhaust the C stack
            x = stack.pop()
            r = self.path.get(x)
            if r is not MISSING:
                out.append(r)
            if isinstance(x, dict):
                stack.extend(reversed(list(x.values())))
            elif isinstance(x, list):
                stack.extend(reversed(x))
        return out


class _Const(_Then):
    __slots__ = ("value",)

    def __init__(self, value: object, rest: _Get | None) -> None:
        super().__init__(rest)
        self.value = value

    def compute(self, v: object) -> object:
        return self.value


class _Multi(_Then):
    """``[a,b]`` builds an array of what exists; ``{a,n:b}`` an object (first key wins)."""

    __slots__ = ("keys", "paths")

    def __init__(self, keys: list[str] | None, paths: list[_Get], rest: _Get | None) -> None:
        super().__init__(rest)
        self.keys, self.paths = keys, paths

    def compute(self, v: object) -> object:
        if self.keys is None:
            return [r for p in self.paths if (r := p.get(v)) is not MISSING]
        out: dict[str, object] = {}
        for k, p in zip(self.keys, self.paths, strict=True):
            r = p.get(v)
            if r is not MISSING:
                out.setdefault(k, r)
        return out


class _Obj:
    """``parseObject`` for one path: the first key (exact or glob) and what follows it."""

    __slots__ = ("arr", "glob", "more", "obj", "part", "pipe")

    def __init__(self, part: str, glob: Glob | None, more: bool, pipe: _Get | None) -> None:
        self.part, self.glob, self.more, self.pipe = part, glob, more, pipe
        self.obj: _Obj | None = None
        self.arr: _Arr | None = None

    def run(self, ctx: _Ctx, d: dict[str, object]) -> bool:
        if self.pipe is not None:
            ctx.pipe = self.pipe
        if self.glob is None:
            return self.part in d and _descend(self, ctx, d[self.part])
        return any(self.glob.match(k) and _descend(self, ctx, x) for k, x in d.items())


def _descend(node: _Obj | _Arr, ctx: _Ctx, x: object) -> bool:
    if not node.more:
        ctx.value = x
        return True
    if isinstance(x, dict):
        return node.obj is not None and node.obj.run(ctx, x)
    if isinstance(x, list):
        return node.arr is not None and node.arr.run(ctx, x)
    return False


class _Query:
    """One ``#(path op value)``: which elements match (``queryMatches``)."""

    __slots__ = ("all", "glob", "num", "op", "path", "path_empty", "rpv", "tilde")

    def __init__(self, path: _Get, qpath: str, op: str, rpv: str, all_: bool) -> None:
        self.path, self.path_empty, self.op, self.rpv, self.all = path, qpath == "", op, rpv, all_
        self.tilde: str | None = None
        if rpv.startswith("~"):
            self.tilde = rpv[1:] if rpv[1:] in ("*", "null", "true", "false") else ""
        self.num = go_parse_float(rpv)
        self.glob = Glob(rpv) if op in ("%", "!%") else None

    def element(self, e: object) -> object:
        """What the query path finds in one array element (scalars only for an empty path)."""
        if isinstance(e, dict | list):
            return self.path.get(e)
        return e if self.path_empty else MISSING

    def matches(self, value: object) -> bool:
        rpv = self.rpv
        if self.tilde is not None:
            if not self.tilde:
                return False
            value, rpv = _truthiness(self.tilde, value), "true"
        if value is MISSING:
            return False
        if not self.op:
            return True
        if isinstance(value, str):
            if self.glob is not None:
                return self.glob.match(value) == (self.op == "%")
            return _compare(self.op, value, rpv)
        if value is True or value is False:
            test = _BOOL_OPS.get((value, self.op))
            return test is not None and test(rpv)
        if isinstance(value, int | float):
            return _compare(self.op, to_float(value), self.num)
        return False


_ORDER: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt,
    "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


def _compare(op: str, a: object, b: object) -> bool:
    fn = _ORDER.get(op)
    return fn is not None and bool(fn(a, b))


_BOOL_OPS: Final[dict[tuple[bool, str], Callable[[str], bool]]] = {
    (True, "="): lambda r: r == "true", (True, "!="): lambda r: r != "true",
    (True, ">"): lambda r: r == "false", (True, ">="): lambda r: True,
    (False, "="): lambda r: r == "false", (False, "!="): lambda r: r != "false",
    (False, "<"): lambda r: r == "true", (False, "<="): lambda r: True,
}


def _truthiness(kind: str, v: object) -> bool:
    """``~*``, ``~null``, ``~true``, ``~false`` (a missing value is gjson's zero Result: null)."""
    if kind == "*":
        return v is not MISSING
    if v is MISSING or v is None:
        return kind != "true"
    if kind == "null":
        return False
    want = kind == "true"
    if isinstance(v, bool):
        return v is want
    if isinstance(v, str):
        return v.lower() in (("1", "t", "true") if want else ("0", "f", "false"))
    if isinstance(v, int | float):
        return (to_float(v) != 0) is want
    return False


class _Arr:
    """``parseArray`` for one path: an index, ``#``, ``#.key`` or a query, and what follows."""

    __slots__ = ("alog", "alog_pipe", "arr", "count", "index", "more", "more_pipe", "obj",
                 "pipe", "query", "then")

    def __init__(self) -> None:
        self.pipe: _Get | None = None
        self.query: _Query | None = None
        self.then: _Get | None = None  # the path after a query, run on each matching element
        self.more_pipe: _Get | None = None
        self.alog: _Get | None = None
        self.alog_pipe: _Get | None = None
        self.count = False
        self.index = -1
        self.more = False
        self.obj: _Obj | None = None
        self.arr: _Arr | None = None

    def run(self, ctx: _Ctx, a: list[object]) -> bool:
        if self.pipe is not None:
            ctx.pipe = self.pipe
        if self.query is not None:
            return self._query(ctx, self.query, a)
        if self.alog is not None:
            if self.alog_pipe is not None:
                ctx.pipe = self.alog_pipe
            alog = self.alog
            ctx.value = [r for e in a if (r := alog.get(e)) is not MISSING]
            return True
        if self.count:
            ctx.value = len(a)
            return True
        return 0 <= self.index < len(a) and _descend(self, ctx, a[self.index])

    def _query(self, ctx: _Ctx, q: _Query, a: list[object]) -> bool:
        found: list[object] = []
        for e in a:
            if not q.matches(q.element(e)):
                continue
            res = e
            if self.then is not None:
                if self.more_pipe is not None:
                    ctx.pipe = self.more_pipe
                res = self.then.get(e)
            if not q.all:
                ctx.value = res
                return True
            if res is not MISSING:
                found.append(res)
        if q.all and ctx.value is MISSING:
            ctx.value = found
        return False


class _Compiler:
    """Compiles path strings into nodes; each (kind, path) once, so shared suffixes share nodes."""

    def __init__(self) -> None:
        self._gets: dict[str, _Get] = {}
        self._objs: dict[str, _Obj] = {}
        self._arrs: dict[str, _Arr] = {}

    def get(self, path: str) -> _Get:
        node = self._gets.get(path)
        if node is None:
            node = self._gets[path] = self._special(path) or self._plain(path)
        return node

    def _rest(self, rest: str | None) -> _Get | None:
        return None if rest is None else self.get(rest)

    def _special(self, path: str) -> _Get | None:
        if len(path) < 2:
            return None
        if path[0] == "@":
            m = parse_modifier(path)
            if m is not None:
                if m.name == "dig":
                    return _Dig(self.get(m.args), self._rest(m.rest))
                return _Mod(MODIFIER_FUNCS[m.name], parse_modifier_arg(m.args), self._rest(m.rest))
        elif path[0] == "!":
            st = parse_static(path)
            if st is not None:
                return _Const(parse_text(st[0]), self._rest(st[1]))
        elif path[0] in "[{":
            sub = parse_sub_selectors(path)
            if sub is not None and (not sub[1] or sub[1][0] in "|."):
                sels, rest = sub
                paths = [self.get(s.path) for s in sels]
                keys = None if path[0] == "[" else [_selector_key(s.name, s.path) for s in sels]
                return _Multi(keys, paths, self.get(rest[1:]) if rest else None)
        return None

    def _plain(self, path: str) -> _Get:
        if path.startswith(".."):
            return _Lines(self.arr(path[2:]))
        return _Plain(self.obj(path), self.arr(path))

    def obj(self, path: str) -> _Obj:
        node = self._objs.get(path)
        if node is None:
            rp = parse_object_path(path)
            pipe = self.get(rp.pipe) if rp.piped else None
            node = self._objs[path] = _Obj(rp.part, Glob(rp.part) if rp.wild else None, rp.more, pipe)
            if rp.more:
                node.obj, node.arr = self.obj(rp.path), self.arr(rp.path)
        return node

    def arr(self, path: str) -> _Arr:
        node = self._arrs.get(path)
        if node is None:
            node = self._arrs[path] = _Arr()
            self._fill_arr(node, path)
        return node

    def _fill_arr(self, node: _Arr, path: str) -> None:
        rp = parse_array_path(path)
        node.more = rp.more
        if rp.piped:
            node.pipe = self.get(rp.pipe)
        if rp.query is not None:
            q = rp.query
            node.query = _Query(self.get(q.path), q.path, q.op, q.value, q.all)
            if rp.more:
                split = split_possible_pipe(rp.path)
                node.then = self.get(split[0] if split else rp.path)
                node.more_pipe = self.get(split[1]) if split else None
        elif rp.alogok:
            split = split_possible_pipe(rp.alogkey)
            node.alog = self.get(split[0] if split else rp.alogkey)
            node.alog_pipe = self.get(split[1]) if split else None
        elif rp.arrch:
            node.count = rp.part == "#"
        else:
            node.index = go_uint_index(rp.part)
            if rp.more:
                node.obj, node.arr = self.obj(rp.path), self.arr(rp.path)


def _selector_key(name: str, path: str) -> str:
    """The key a ``{...}`` multipath gives a selector: its name, else its last component."""
    if name:
        if name[0] == '"':
            decoded = parse_json(name.encode("utf-8", "surrogateescape"))
            if isinstance(decoded, str):
                return decoded
        return name
    last = name_of_last(path)
    return last if is_simple_name(last) else "_"


class GjsonCondition:
    """A compiled GJSON path; matches when ``Exists()`` would be true."""

    __slots__ = ("_root", "source")

    def __init__(self, source: str, root: _Get | None) -> None:
        self.source = source
        self._root = root

    def matches(self, doc: JsonDoc) -> bool:
        v = doc.value
        if v is INVALID or self._root is None:
            return False
        try:
            return self._root.get(v) is not MISSING
        except Exception:  # never let a pathological document escape as an error
            return False

    def __repr__(self) -> str:
        return f"GjsonCondition({self.source!r})"


def compile_gjson(text: str) -> GjsonCondition:
    """Compile a GJSON path; raises :class:`SpecError` for the clearly broken ones (see above)."""
    if text == "":
        return GjsonCondition(text, None)  # gjson: an empty path finds nothing
    problem = syntax_problem(text)
    if problem is None:
        try:
            return GjsonCondition(text, _Compiler().get(text))
        except RecursionError:
            problem = "the path is nested too deeply; simplify it"
    raise SpecError(Problem("", f"invalid GJSON condition {text!r}: {problem}"))


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
