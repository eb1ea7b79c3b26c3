"""Extension: ``data: $request.<jsonpath>`` / ``$response.<jsonpath>`` sends part of a body."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jsonpath_ng import JSONPath
from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext.parser import parse as parse_jsonpath

from .errors import Problem, SpecError

_NOTHING: Any = object()


@dataclass(frozen=True, slots=True)
class Selection:
    """A compiled ``$request.x`` / ``$response.x``: which body, and the path within it."""

    source: str
    of_response: bool
    path: JSONPath

    def select(self, value: Any) -> Any:
        """The selected value; several matches become a list. Returns ``NOTHING`` when none."""
        found = [m.value for m in self.path.find(value)]
        if not found:
            return _NOTHING
        return found[0] if len(found) == 1 else found


NOTHING = _NOTHING


def compile_selection(data: str) -> Selection:
    """Compile ``$request.predictions`` and the like; SpecError says what is wrong."""
    of_response = data.startswith("$response")
    rest = data[len("$response") if of_response else len("$request"):]
    try:
        path = parse_jsonpath("$" + rest)
    except (JsonPathLexerError, JsonPathParserError, Exception) as exc:  # jsonpath-ng raises bare Exception too
        raise SpecError(Problem("", f"invalid JSONPath in {data!r}: {exc}; e.g. $response.predictions or "
                                    f"$request.instances[0]")) from exc
    return Selection(source=data, of_response=of_response, path=path)
