"""One JSON document as the router sees it: the raw bytes, parsed at most once, on demand.

Whether a document is JSON at all (the final answer's ``Content-Type``, the Ensemble's object
check) is answered by a validating scan that builds no Python objects when msgspec is installed
(the ``fast`` extra): about a quarter of the CPU of a parse on large bodies. Without it, or when
the scan refuses a document, the parse decides, so the answer is the same either way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Final

import orjson

__all__ = ["INVALID", "JsonDoc", "MergedDoc", "dumps", "is_json"]

_scan: Callable[[bytes], object] | None
try:
    from msgspec import DecodeError as _ScanError
    from msgspec import Raw as _Raw
    from msgspec.json import Decoder as _Decoder

    _scan = _Decoder(_Raw).decode  # validates the whole document, returns a view of the bytes
except ImportError:  # pragma: no cover - the fast extra is installed in CI
    _scan = None
    _ScanError = ValueError  # type: ignore[assignment,misc]


class _Invalid:
    """Type of :data:`INVALID`, the parsed value of a document that is not JSON."""

    __slots__ = ()
    _instance: _Invalid | None = None

    def __new__(cls) -> _Invalid:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "INVALID"

    def __bool__(self) -> bool:
        return False


INVALID: Final = _Invalid()

# orjson silently turns integers beyond 64 bits into floats; any run of 19+ digits sends the
# document to the stdlib parser, which keeps them exact (a run inside a string costs only speed).
# translate + substring search is several times faster than a regex scan.
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= c <= 0x39 else 0x20 for c in range(256))
_LONG_RUN = b"0" * 19
_UNSET: Final = object()


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def parse_json(raw: bytes) -> object:
    """Parse ``raw`` strictly (RFC 8259); :data:`INVALID` when it is not one JSON value."""
    if _LONG_RUN not in raw.translate(_DIGITS_AS_ZERO):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # lone surrogates, 1e400, deep nesting...: let the stdlib decide
    try:
        # surrogateescape: gjson does not check UTF-8, so neither do we; bytes survive as surrogates.
        text = raw.decode("utf-8", "surrogateescape")
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return INVALID


def is_json(raw: bytes) -> bool:
    """True when ``raw`` is one JSON value, as :func:`parse_json` decides, without building objects.

    The scan accepts a subset of what the parse accepts (it refuses lone surrogate escapes, which
    the parse keeps), so a refusal is checked by the parse. One difference is left: a document
    nested within a few levels of the interpreter's recursion limit whose numbers send the parse
    to the stdlib (integers of 19+ digits) is JSON to the scan, as to Go, where the parse's answer
    depended on how deep the caller's stack was.
    """
    if _scan is not None:
        try:
            _scan(raw)
            return True
        except (_ScanError, RecursionError):
            pass
    return parse_json(raw) is not INVALID


# The first byte of an object or of null, after JSON's whitespace (both parsers accept exactly this set).
_OBJECT_OR_NULL = re.compile(rb"[ \t\n\r]*[{n]")


class JsonDoc:
    """One JSON document: ``raw`` bytes plus the lazily parsed ``value`` and lazily checked validity."""

    __slots__ = ("_valid", "_value", "raw")

    def __init__(self, raw: bytes, value: object = _UNSET, *, valid: bool | None = None) -> None:
        self.raw = raw
        self._value: object = value
        self._valid = valid if value is _UNSET else value is not INVALID

    @classmethod
    def of(cls, value: object) -> JsonDoc:
        """A document the router builds from a parsed value: encoded once, never parsed back."""
        return cls(dumps(value), value)

    @property
    def value(self) -> object:
        """The parsed value (dict/list/str/int/float/bool/None), or :data:`INVALID`."""
        if self._value is _UNSET:
            self._value = INVALID if self._valid is False else parse_json(self.raw)
        return self._value

    @property
    def valid(self) -> bool:
        """True when the whole document is one valid JSON value; scanned, not parsed, when not parsed yet."""
        valid = self._valid
        if valid is None:
            # Without the scanner the parse decides, and its value is kept.
            valid = self.value is not INVALID if _scan is None else is_json(self.raw)
            self._valid = valid
        return valid

    def object_or_null(self) -> bool:
        """True when the document is valid JSON whose value is an object or null (KServe's Ensemble check)."""
        if self._value is not _UNSET:
            return self._value is None or isinstance(self._value, dict)
        return self.valid and _OBJECT_OR_NULL.match(self.raw) is not None

    def __repr__(self) -> str:
        head = self.raw[:60]
        return f"JsonDoc({head!r}{'...' if len(self.raw) > 60 else ''})"


class MergedDoc(JsonDoc):
    """A JSON object built from member documents (an Ensemble's answer): valid by construction,
    its value built from the members' values only when something looks at it."""

    __slots__ = ("_members",)

    def __init__(self, raw: bytes, members: dict[str, JsonDoc]) -> None:
        super().__init__(raw, valid=True)
        self._members = members

    @property
    def value(self) -> object:
        if self._value is _UNSET:
            self._value = {key: d.value for key, d in self._members.items()}
        return self._value


def dumps(value: object) -> bytes:
    """Encode a parsed value; integers beyond 64 bits (kept exact by :func:`parse_json`) stay exact."""
    try:
        return orjson.dumps(value)
    except TypeError:
        pass  # integers beyond 64 bits, or nesting orjson refuses
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogateescape")
    except RecursionError:
        raise ValueError("JSON nested too deeply to re-encode") from None
