"""The compiled form of a GJSON path: nodes that walk a parsed document as gjson walks JSON text.

``GetNode.get`` is gjson's ``Get``; ``ObjNode.run``/``ArrNode.run`` are ``parseObject`` and
``parseArray`` with the path already split (see :mod:`.gjson_syntax`), sharing a :class:`Ctx`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, Final

from .gjson_values import MISSING, Glob, Modifier, go_parse_float, to_float


class Ctx:
    """gjson's ``parseContext``: the value found and the pipe left to apply to it."""

    __slots__ = ("pipe", "value")

    def __init__(self) -> None:
        self.value: object = MISSING
        self.pipe: GetNode | None = None


class GetNode:
    """A compiled ``Get(json, path)``."""

    __slots__ = ()

    def get(self, v: object) -> object:
        raise NotImplementedError


def finish(ctx: Ctx) -> object:
    return ctx.value if ctx.pipe is None else ctx.pipe.get(ctx.value)


class Plain(GetNode):
    __slots__ = ("arr", "obj")

    def __init__(self, obj: ObjNode, arr: ArrNode) -> None:
        self.obj, self.arr = obj, arr

    def get(self, v: object) -> object:
        ctx = Ctx()
        if isinstance(v, dict):
            self.obj.run(ctx, v)
        elif isinstance(v, list):
            self.arr.run(ctx, v)
        else:
            return MISSING
        return finish(ctx)


class Lines(GetNode):
    """``..path``: the document read as JSON lines, i.e. an array of its one value."""

    __slots__ = ("arr",)

    def __init__(self, arr: ArrNode) -> None:
        self.arr = arr

    def get(self, v: object) -> object:
        ctx = Ctx()
        self.arr.run(ctx, [] if v is MISSING else [v])
        return finish(ctx)


class Then(GetNode):
    """Base of nodes that compute a value and then apply the rest of the path to it."""

    __slots__ = ("rest",)

    def __init__(self, rest: GetNode | None) -> None:
        self.rest = rest

    def compute(self, v: object) -> object:
        raise NotImplementedError

    def get(self, v: object) -> object:
        r = self.compute(v)
        return r if self.rest is None else self.rest.get(r)


class Mod(Then):
    __slots__ = ("arg", "fn")

    def __init__(self, fn: Modifier, arg: object, rest: GetNode | None) -> None:
        super().__init__(rest)
        self.fn, self.arg = fn, arg

    def compute(self, v: object) -> object:
        return self.fn(v, self.arg)


class Dig(Then):
    """``@dig:path``: every value ``path`` finds in the document and all its descendants."""

    __slots__ = ("path",)

    def __init__(self, path: GetNode, rest: GetNode | None) -> None:
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


class Const(Then):
    __slots__ = ("value",)

    def __init__(self, value: object, rest: GetNode | None) -> None:
        super().__init__(rest)
        self.value = value

    def compute(self, v: object) -> object:
        return self.value


class Multi(Then):
    """``[a,b]`` builds an array of what exists; ``{a,n:b}`` an object (first key wins)."""

    __slots__ = ("keys", "paths")

    def __init__(self, keys: list[str] | None, paths: list[GetNode], rest: GetNode | None) -> None:
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


class ObjNode:
    """``parseObject`` for one path: the first key (exact or glob) and what follows it."""

    __slots__ = ("arr", "glob", "more", "obj", "part", "pipe")

    def __init__(self, part: str, glob: Glob | None, more: bool, pipe: GetNode | None) -> None:
        self.part, self.glob, self.more, self.pipe = part, glob, more, pipe
        self.obj: ObjNode | None = None
        self.arr: ArrNode | None = None

    def run(self, ctx: Ctx, d: dict[str, object]) -> bool:
        if self.pipe is not None:
            ctx.pipe = self.pipe
        if self.glob is None:
            return self.part in d and descend(self, ctx, d[self.part])
        return any(self.glob.match(k) and descend(self, ctx, x) for k, x in d.items())


def descend(node: ObjNode | ArrNode, ctx: Ctx, x: object) -> bool:
    if not node.more:
        ctx.value = x
        return True
    if isinstance(x, dict):
        return node.obj is not None and node.obj.run(ctx, x)
    if isinstance(x, list):
        return node.arr is not None and node.arr.run(ctx, x)
    return False


class QueryNode:
    """One ``#(path op value)``: which elements match (``queryMatches``)."""

    __slots__ = ("all", "glob", "num", "op", "path", "path_empty", "rpv", "tilde")

    def __init__(self, path: GetNode, qpath: str, op: str, rpv: str, all_: bool) -> None:
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


class ArrNode:
    """``parseArray`` for one path: an index, ``#``, ``#.key`` or a query, and what follows."""

    __slots__ = ("alog", "alog_pipe", "arr", "count", "index", "more", "more_pipe", "obj",
                 "pipe", "query", "then")

    def __init__(self) -> None:
        self.pipe: GetNode | None = None
        self.query: QueryNode | None = None
        self.then: GetNode | None = None  # the path after a query, run on each matching element
        self.more_pipe: GetNode | None = None
        self.alog: GetNode | None = None
        self.alog_pipe: GetNode | None = None
        self.count = False
        self.index = -1
        self.more = False
        self.obj: ObjNode | None = None
        self.arr: ArrNode | None = None

    def run(self, ctx: Ctx, a: list[object]) -> bool:
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
        return 0 <= self.index < len(a) and descend(self, ctx, a[self.index])

    def _query(self, ctx: Ctx, q: QueryNode, a: list[object]) -> bool:
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
