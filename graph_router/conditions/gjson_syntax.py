"""How tidwall/gjson (v1.18) splits a path string into parts, ported to pure string functions.

gjson interprets a path while it scans the document; these functions are the path-side halves
of that scan (``parseObjectPath``, ``parseArrayPath``, ``parseQuery``, ``parseSubSelectors``,
``splitPossiblePipe``, modifier and static parsing). They run once, at compile time. Every quirk
is kept on purpose: the router must answer exactly as KServe's Go router does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .gjson_text import parse_squash, skip_string, squash, trim, unescape

MODIFIERS = frozenset(
    ("pretty", "ugly", "reverse", "this", "flatten", "join", "valid", "keys", "values",
     "tostr", "fromstr", "group", "dig")
)
_STATIC_NAMES = frozenset(("true", "false", "null", "nan", "inf"))
_UINT = re.compile(r"[0-9]+\Z")


def go_uint_index(part: str) -> int:
    """Array index of a path part as ``parseUint`` + ``int()`` give it; -1 when not an index."""
    if not _UINT.match(part):
        return -1
    n = int(part) % (1 << 64)  # Go's uint64 arithmetic wraps
    return n if n < (1 << 63) else -1


def is_dot_piper_char(s: str) -> bool:
    """After a '.', does the rest start a pipe (a known ``@modifier``, ``[`` or ``{``)?"""
    c = s[0]
    if c == "@":
        i = 1
        while i < len(s) and s[i] not in ".|:":
            i += 1
        return s[1:i] in MODIFIERS
    return c in "[{"


@dataclass(slots=True)
class ObjectPath:
    part: str
    path: str = ""
    pipe: str = ""
    piped: bool = False
    wild: bool = False
    more: bool = False


def _dot(part: str, path: str, i: int, wild: bool) -> ObjectPath:
    if i < len(path) - 1 and is_dot_piper_char(path[i + 1:]):
        return ObjectPath(part, pipe=path[i + 1:], piped=True, wild=wild)
    return ObjectPath(part, path=path[i + 1:], more=True, wild=wild)


def parse_object_path(path: str) -> ObjectPath:
    """``parseObjectPath``: the first key (escapes removed), wildcard flag and what follows."""
    wild = False
    n = len(path)
    i = 0
    while i < n:
        c = path[i]
        if c == "|":
            return ObjectPath(path[:i], pipe=path[i + 1:], piped=True, wild=wild)
        if c == ".":
            return _dot(path[:i], path, i, wild)
        if c in "*?":
            wild = True
        elif c == "\\":
            return _escaped_object_path(path, i, wild)
        i += 1
    return ObjectPath(path, wild=wild)


def _escaped_object_path(path: str, i: int, wild: bool) -> ObjectPath:
    epart = [path[:i]]
    n = len(path)
    i += 1
    if i < n:
        epart.append(path[i])
        i += 1
        while i < n:
            c = path[i]
            if c == "\\":
                i += 1
                if i < n:
                    epart.append(path[i])
                i += 1
                continue
            if c == ".":
                return _dot("".join(epart), path, i, wild)
            if c == "|":
                return ObjectPath("".join(epart), pipe=path[i + 1:], piped=True, wild=wild)
            if c in "*?":
                wild = True
            epart.append(c)
            i += 1
    return ObjectPath("".join(epart), wild=wild)


@dataclass(slots=True)
class Query:
    path: str = ""
    op: str = ""
    value: str = ""
    all: bool = False


@dataclass(slots=True)
class ArrayPath:
    part: str = ""
    path: str = ""
    pipe: str = ""
    piped: bool = False
    more: bool = False
    alogok: bool = False
    arrch: bool = False
    alogkey: str = ""
    query: Query | None = None


def parse_array_path(path: str) -> ArrayPath:
    """``parseArrayPath``: index, ``#``, ``#.key``, or a ``#(...)``/``#(...)#`` query, then the rest."""
    r = ArrayPath()
    n = len(path)
    i = 0
    while i < n:
        c = path[i]
        if c == "|":
            r.part, r.pipe, r.piped = path[:i], path[i + 1:], True
            return r
        if c == ".":
            r.part = path[:i]
            if not r.arrch and i < n - 1 and is_dot_piper_char(path[i + 1:]):
                r.pipe, r.piped = path[i + 1:], True
            else:
                r.path, r.more = path[i + 1:], True
            return r
        if c == "#":
            r.arrch = True
            if i == 0 and n > 1:
                if path[1] == ".":
                    r.alogok, r.alogkey, r.path = True, path[2:], path[:1]
                elif path[1] in "[(":
                    r.query = Query()
                    q = parse_query(path)
                    if q is None:
                        break  # bad query: gjson keeps query.on with an empty query
                    value = q.value
                    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
                        value = value[1:-1]
                        if q.vesc:
                            value = unescape(value)
                    r.query = Query(q.path, q.op, value)
                    i = q.end - 1
                    if i + 1 < n and path[i + 1] == "#":
                        r.query.all = True
        i += 1
    r.part, r.path = path, ""
    return r


@dataclass(slots=True)
class ParsedQuery:
    path: str
    op: str
    value: str
    end: int  # index just past the closing bracket
    vesc: bool
    op_start: int  # index of the operator in the query text, 0 when there is none
    op_text: str  # the whole run of operator characters, for compile-time checks


_OP_CHARS = "!=<>%"


def parse_query(query: str) -> ParsedQuery | None:
    """``parseQuery`` on text starting with ``#(`` or ``#[``; None when the brackets never close."""
    if len(query) < 2 or query[0] != "#" or query[1] not in "([":
        return None
    i, j, depth, vesc = 2, 0, 1, False
    n = len(query)
    while i < n:
        c = query[i]
        if depth == 1 and j == 0 and c in _OP_CHARS:
            j = i
            i += 1
            continue
        if c == "\\":
            i += 1
        elif c in "[(":
            depth += 1
        elif c in "])":
            depth -= 1
            if depth == 0:
                break
        elif c == '"':
            i, esc = skip_string(query, i + 1)
            vesc = vesc or esc
        i += 1
    if depth > 0:
        return None
    if j == 0:
        return ParsedQuery(trim(query[2:i]), "", "", i + 1, vesc, 0, "")
    value = trim(query[j:i])
    k = 0
    while k < len(value) and value[k] in _OP_CHARS:
        k += 1
    op_text = value[:k]
    opsz = 0
    if len(value) == 1:
        opsz = 1
    elif value[:2] in ("!=", "!%", "<=", ">="):
        opsz = 2
    elif value[:2] == "==":
        value = value[1:]
        opsz = 1
    elif value[0] in "<>=%":
        opsz = 1
    return ParsedQuery(trim(query[2:j]), value[:opsz], trim(value[opsz:]), i + 1, vesc, j, op_text)


@dataclass(slots=True)
class SubSelector:
    name: str
    path: str


def parse_sub_selectors(path: str) -> tuple[list[SubSelector], str] | None:
    """``parseSubSelectors`` for ``[a,b]`` / ``{name:a,b}``: the selectors and the text after."""
    sels: list[SubSelector] = []
    modifier = colon = 0
    depth = start = i = 1
    n = len(path)
    while i < n:
        c = path[i]
        if c == "\\":
            i += 1
        elif c == "@":
            if modifier == 0 and path[i - 1] in ".|":
                modifier = i
        elif c == ":":
            if modifier == 0 and colon == 0 and depth == 1:
                colon = i
        elif c == "," and depth == 1:
            sels.append(_selector(path, start, colon, i))
            colon = modifier = 0
            start = i + 1
        elif c == '"':
            i, _ = skip_string(path, i + 1)
        elif c in "[({":
            depth += 1
        elif c in "])}":
            depth -= 1
            if depth == 0:
                sels.append(_selector(path, start, colon, i))
                return sels, path[i + 1:]
        i += 1
    return None


def _selector(path: str, start: int, colon: int, i: int) -> SubSelector:
    if colon == 0:
        return SubSelector("", path[start:i])
    return SubSelector(path[start:colon], path[colon + 1:i])


def name_of_last(path: str) -> str:
    """``nameOfLast``: the last ``.``/``|`` component (the key a ``{...}`` selector gets)."""
    for i in range(len(path) - 1, -1, -1):
        if path[i] in "|." and not (i > 0 and path[i - 1] == "\\"):
            return path[i + 1:]
    return path


def is_simple_name(component: str) -> bool:
    return not any(c < " " or c in "[]{}()#|!" for c in component)


def split_possible_pipe(path: str) -> tuple[str, str] | None:
    """``splitPossiblePipe``: split a query's trailing path at its first top-level ``|``."""
    if "|" not in path:
        return None
    if path[0] == "{":
        sq = squash(path[1:])
        if len(sq) < len(path) - 1:
            left = path[: len(sq) + 1]
            remain = path[len(left):]
            if remain[0] == "|":
                return left, remain[1:]
        return None
    i, n = 0, len(path)
    while i < n:
        c = path[i]
        if c == "\\":
            i += 1
        elif c == ".":
            if i == n - 1:
                return None
            if path[i + 1] == "#":
                i += 2
                if i == n:
                    return None
                if path[i] in "[(":
                    i = _skip_selector(path, i)
        elif c == "|":
            return path[:i], path[i + 1:]
        i += 1
    return None


def _skip_selector(path: str, i: int) -> int:
    start, end = (path[i], "]" if path[i] == "[" else ")")
    i += 1
    depth, n = 1, len(path)
    while i < n:
        c = path[i]
        if c == "\\":
            i += 1
        elif c == start:
            depth += 1
        elif c == end:
            depth -= 1
            if depth == 0:
                break
        elif c == '"':
            i, _ = skip_string(path, i + 1)
        i += 1
    return i


@dataclass(slots=True)
class ModifierCall:
    name: str
    args: str
    rest: str | None  # the path after '|' or '.', or None when nothing follows


def parse_modifier(path: str) -> ModifierCall | None:
    """``execModifier``'s parsing of ``@name[:args]`` (None: not a known modifier)."""
    name, path_out, has_args = path[1:], "", False
    for i in range(1, len(path)):
        c = path[i]
        if c == ":":
            path_out, name = path[i + 1:], path[1:i]
            has_args = len(path_out) > 0
            break
        if c in "|.":
            path_out, name = path[i:], path[1:i]
            break
    if name not in MODIFIERS:
        return None
    args = ""
    if has_args:
        if path_out[0] in '{["':
            args = squash(path_out)
            path_out = path_out[len(args):]
        else:
            idx = path_out.find("|")
            args, path_out = (path_out, "") if idx == -1 else (path_out[:idx], path_out[idx:])
    rest = path_out[1:] if path_out and path_out[0] in "|." else None
    return ModifierCall(name, args, rest)


def parse_static(path: str) -> tuple[str, str | None] | None:
    """``execStatic`` on ``!value``: (json text of the value, rest of the path) or None."""
    name = path[1:]
    if name and name[0] in '{["+-0123456789':
        res = parse_squash(name, 0)
        path_out = name[len(res):]
        return res, (path_out[1:] if path_out and path_out[0] in "|." else None)
    path_out = ""
    for i in range(1, len(path)):
        if path[i] in "|.":
            path_out, name = path[i:], path[1:i]
            break
    if name.lower() in _STATIC_NAMES:
        return name, (path_out[1:] if path_out else None)
    return None
