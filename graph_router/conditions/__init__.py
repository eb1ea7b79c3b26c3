"""Step conditions: compiled once from the graph spec, evaluated per request on a :class:`JsonDoc`.

Two languages share the ``condition`` field. Text of the form ``{ <jsonpath comparison> }`` (the
inside starts with ``.`` or ``$``, possibly after ``!`` or ``(``) is a JSONPath comparison (see
:mod:`.jsonpath`); anything else is a GJSON path, evaluated exactly as KServe's router does with
``gjson.GetBytes(doc, path).Exists()`` (see :mod:`.gjson`).
"""

from __future__ import annotations

from typing import Protocol

from .document import INVALID, JsonDoc, dumps
from .gjson import compile_gjson
from .jsonpath import compile_jsonpath

__all__ = ["INVALID", "Condition", "JsonDoc", "compile_condition", "dumps", "is_jsonpath"]


class Condition(Protocol):
    """A compiled condition: ``matches`` never raises and never hangs."""

    source: str

    def matches(self, doc: JsonDoc) -> bool: ...


def is_jsonpath(text: str) -> bool:
    """Is ``text`` a ``{ ... }`` JSONPath comparison rather than a GJSON path?"""
    s = text.strip()
    return s.startswith("{") and s[1:].lstrip(" \t\r\n!(").startswith((".", "$"))


def compile_condition(text: str) -> Condition:
    """Compile a condition; raises ``SpecError(Problem("", ...))`` when its syntax is broken."""
    if is_jsonpath(text):
        return compile_jsonpath(text)
    return compile_gjson(text)
