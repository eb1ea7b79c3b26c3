"""One JSON document as the router sees it: the raw bytes, parsed at most once, on demand."""

from __future__ import annotations

import json
from typing import Final

import orjson

__all__ = ["INVALID", "JsonDoc", "dumps"]


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


class JsonDoc:
    """One JSON document: ``raw`` bytes plus the lazily parsed ``value``."""

    __slots__ = ("_value", "raw")

    def __init__(self, raw: bytes, value: object = _UNSET) -> None:
        self.raw = raw
        self._value: object = value

    @classmethod
    def of(cls, value: object) -> JsonDoc:
        """A document the router builds from a parsed value: encoded once, never parsed back."""
        return cls(dumps(value), value)

    @property
    def value(self) -> object:
        """The parsed value (dict/list/str/int/float/bool/None), or :data:`INVALID`."""
        if self._value is _UNSET:
            self._value = parse_json(self.raw)
        return self._value

    @property
    def valid(self) -> bool:
        """True when the whole document is one valid JSON value (gjson.ValidBytes)."""
        return self.value is not INVALID

    def __repr__(self) -> str:
        head = self.raw[:60]
        return f"JsonDoc({head!r}{'...' if len(self.raw) > 60 else ''})"


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
