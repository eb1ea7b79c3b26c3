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
- objects never hold duplicate keys: in a document the last one wins (gjson finds the first); a
  ``{...}`` multipath or ``@join:{"preserve":true}`` keeps the first (gjson keeps both, which only
  shows after ``@reverse``/``@keys``/``@values``);
- no custom modifiers (gjson's ``AddModifier``): an unknown ``@name`` is a key, as in gjson;
- a path on a string value never looks inside the string's raw text (gjson may find brackets in it);
- @tostr yields compact JSON text, not the document's original spacing; @fromstr and statics
  need valid JSON for objects and arrays;
- glob matching (``%``, wildcard keys) has no complexity cut-off (gjson gives up after 10000 steps
  per character and answers false);
- documents nested deeper than ~1000 levels count as invalid.
"""

from __future__ import annotations

from ..errors import Problem, SpecError
from .document import INVALID, JsonDoc, parse_json
from .gjson_check import MAX_CONDITION_LENGTH, syntax_problem
from .gjson_nodes import ArrNode, Const, Dig, GetNode, Lines, Mod, Multi, ObjNode, Plain, QueryNode
from .gjson_syntax import (
    go_uint_index,
    is_simple_name,
    name_of_last,
    parse_array_path,
    parse_modifier,
    parse_object_path,
    parse_static,
    parse_sub_selectors,
    split_possible_pipe,
)
from .gjson_values import MISSING, MODIFIER_FUNCS, Glob, parse_modifier_arg, parse_text

__all__ = ["MAX_CONDITION_LENGTH", "MISSING", "GjsonCondition", "compile_gjson", "gjson_get"]


class _Compiler:
    """Compiles path strings into nodes; each (kind, path) once, so shared suffixes share nodes."""

    def __init__(self) -> None:
        self._gets: dict[str, GetNode] = {}
        self._objs: dict[str, ObjNode] = {}
        self._arrs: dict[str, ArrNode] = {}

    def get(self, path: str) -> GetNode:
        node = self._gets.get(path)
        if node is None:
            node = self._gets[path] = self._special(path) or self._plain(path)
        return node

    def _rest(self, rest: str | None) -> GetNode | None:
        return None if rest is None else self.get(rest)

    def _special(self, path: str) -> GetNode | None:
        if len(path) < 2:
            return None
        if path[0] == "@":
            m = parse_modifier(path)
            if m is not None:
                if m.name == "dig":
                    return Dig(self.get(m.args), self._rest(m.rest))
                return Mod(MODIFIER_FUNCS[m.name], parse_modifier_arg(m.args), self._rest(m.rest))
        elif path[0] == "!":
            st = parse_static(path)
            if st is not None:
                return Const(parse_text(st[0]), self._rest(st[1]))
        elif path[0] in "[{":
            sub = parse_sub_selectors(path)
            if sub is not None and (not sub[1] or sub[1][0] in "|."):
                sels, rest = sub
                paths = [self.get(s.path) for s in sels]
                keys = None if path[0] == "[" else [_selector_key(s.name, s.path) for s in sels]
                return Multi(keys, paths, self.get(rest[1:]) if rest else None)
        return None

    def _plain(self, path: str) -> GetNode:
        if path.startswith(".."):
            return Lines(self.arr(path[2:]))
        return Plain(self.obj(path), self.arr(path))

    def obj(self, path: str) -> ObjNode:
        node = self._objs.get(path)
        if node is None:
            rp = parse_object_path(path)
            pipe = self.get(rp.pipe) if rp.piped else None
            node = self._objs[path] = ObjNode(rp.part, Glob(rp.part) if rp.wild else None, rp.more, pipe)
            if rp.more:
                node.obj, node.arr = self.obj(rp.path), self.arr(rp.path)
        return node

    def arr(self, path: str) -> ArrNode:
        node = self._arrs.get(path)
        if node is None:
            node = self._arrs[path] = ArrNode()
            self._fill_arr(node, path)
        return node

    def _fill_arr(self, node: ArrNode, path: str) -> None:
        rp = parse_array_path(path)
        node.more = rp.more
        if rp.piped:
            node.pipe = self.get(rp.pipe)
        if rp.query is not None:
            q = rp.query
            node.query = QueryNode(self.get(q.path), q.path, q.op, q.value, q.all)
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

    def __init__(self, source: str, root: GetNode | None) -> None:
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

    def find(self, value: object) -> object:
        """What ``gjson.Get`` finds in an already parsed value (MISSING when nothing); never raises."""
        if value is INVALID or self._root is None:
            return MISSING
        try:
            return self._root.get(value)
        except Exception:  # never let a pathological document escape as an error
            return MISSING

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


def gjson_get(value: object, path: str) -> object:
    """What ``gjson.Get`` finds at ``path`` in an already parsed value (MISSING when nothing).

    Uncached and unchecked: for tests and debugging, not for the request path.
    """
    return MISSING if path == "" else _Compiler().get(path).get(value)
