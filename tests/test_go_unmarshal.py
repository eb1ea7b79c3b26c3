"""graph_router.go_unmarshal: Go's json.Unmarshal(raw, &map[string]interface{}) error text, byte for byte.

Expected messages come from Go's encoding/json tests where they exist (decode_test.go's unmarshalTests
"syntax errors" and "raw value errors", scanner_test.go's TestIndentErrors) and otherwise from
scanner.go's state functions and decode.go's UnmarshalTypeError (Go is not installed here). A
byte-at-a-time transliteration of scanner.go below is the oracle for the property tests, so the
module's token-level scan and its regex shortcuts are checked against Go's state machine itself.
"""

from __future__ import annotations

import json
import math
import string
import time
import unicodedata
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graph_router.go_unmarshal import MAX_DEPTH, go_unmarshal_error, quote_char, unmarshal_object_error

MAP = "map[string]interface {}"


def type_err(kind: str, target: str = MAP) -> str:
    return f"json: cannot unmarshal {kind} into Go value of type {target}"


CASES: list[tuple[bytes, str | None]] = [
    # decode_test.go, unmarshalTests, "syntax errors"
    (b'{"X": "foo", "Y"}', "invalid character '}' after object key"),
    (b"[1, 2, 3+]", "invalid character '+' after array element"),
    (b'{"X":12x}', "invalid character 'x' after object key:value pair"),
    (b"[2, 3", "unexpected end of JSON input"),
    (b'{"F3": -}', "invalid character '}' in numeric literal"),
    # decode_test.go, unmarshalTests, "raw value errors"
    (b"\x01 42", "invalid character '\\x01' looking for beginning of value"),
    (b" 42 \x01", "invalid character '\\x01' after top-level value"),
    (b"\x01 true", "invalid character '\\x01' looking for beginning of value"),
    (b" false \x01", "invalid character '\\x01' after top-level value"),
    (b"\x01 1.2", "invalid character '\\x01' looking for beginning of value"),
    (b" 3.4 \x01", "invalid character '\\x01' after top-level value"),
    (b'\x01 "string"', "invalid character '\\x01' looking for beginning of value"),
    (b' "string" \x01', "invalid character '\\x01' after top-level value"),
    # scanner_test.go, TestIndentErrors
    (b'{"X": "foo" "Y": "bar"}', "invalid character '\"' after object key:value pair"),
    # scanner.go: end of input feeds one space (eof), so unfinished tokens fail on ' '
    (b"", "unexpected end of JSON input"),
    (b" \t\r\n", "unexpected end of JSON input"),
    (b"{", "unexpected end of JSON input"),
    (b'{"a"', "unexpected end of JSON input"),
    (b'{"a":', "unexpected end of JSON input"),
    (b'{"a":1,', "unexpected end of JSON input"),
    (b'"abc', "unexpected end of JSON input"),
    (b"-", "invalid character ' ' in numeric literal"),
    (b"[1.", "invalid character ' ' after decimal point in numeric literal"),
    (b"1e+", "invalid character ' ' in exponent of numeric literal"),
    (b"t", "invalid character ' ' in literal true (expecting 'r')"),
    (b"nul", "invalid character ' ' in literal null (expecting 'l')"),
    (b'"\\', "invalid character ' ' in string escape code"),
    (b'"\\u00', "invalid character ' ' in \\u hexadecimal character escape"),
    # scanner.go: each state's context
    (b"oops", "invalid character 'o' looking for beginning of value"),
    (b"+1", "invalid character '+' looking for beginning of value"),
    (b".5", "invalid character '.' looking for beginning of value"),
    (b"[1,]", "invalid character ']' looking for beginning of value"),
    (b'{"a":}', "invalid character '}' looking for beginning of value"),
    (b"{,}", "invalid character ',' looking for beginning of object key string"),
    (b'{"a":1,}', "invalid character '}' looking for beginning of object key string"),
    (b"{'a':1}", "invalid character '\\'' looking for beginning of object key string"),
    (b'{"a" 1}', "invalid character '1' after object key"),
    (b'{"a", 1}', "invalid character ',' after object key"),
    (b"[1 2]", "invalid character '2' after array element"),
    (b"[1}", "invalid character '}' after array element"),
    (b'{"a":1]', "invalid character ']' after object key:value pair"),
    (b"[01]", "invalid character '1' after array element"),
    (b"01", "invalid character '1' after top-level value"),
    (b"1.5.3", "invalid character '.' after top-level value"),
    (b"{}}", "invalid character '}' after top-level value"),
    (b"truex", "invalid character 'x' after top-level value"),
    (b"-a", "invalid character 'a' in numeric literal"),
    (b"1.e5", "invalid character 'e' after decimal point in numeric literal"),
    (b"1ex", "invalid character 'x' in exponent of numeric literal"),
    (b"fals", "invalid character ' ' in literal false (expecting 'e')"),
    (b"fxlse", "invalid character 'x' in literal false (expecting 'a')"),
    (b"trUe", "invalid character 'U' in literal true (expecting 'u')"),
    (b"nUll", "invalid character 'U' in literal null (expecting 'u')"),
    # the same inside runs of elements and members, which the scanner skips in bulk
    (b"[0,nul,1]", "invalid character ',' in literal null (expecting 'l')"),
    (b'{"a":1,"b":-,"c":2}', "invalid character ',' in numeric literal"),
    (b'{"a":[1,2],"b":{"c":1.},"d":2}', "invalid character '}' after decimal point in numeric literal"),
    (b'"a\tb"', "invalid character '\\t' in string literal"),
    (b'{"a":"\n"}', "invalid character '\\n' in string literal"),
    (b'[0,"\x1f",1]', "invalid character '\\x1f' in string literal"),
    (b'{"a":"b","\x10":1}', "invalid character '\\x10' in string literal"),
    (b'{"data":"\\xc2"}', "invalid character 'x' in string escape code"),
    (b'"\\v"', "invalid character 'v' in string escape code"),
    (b'[1,"\\v",2]', "invalid character 'v' in string escape code"),
    (b'[1,"\\u123x",2]', "invalid character 'x' in \\u hexadecimal character escape"),
    (b'{"a":"\\u12",', "invalid character '\"' in \\u hexadecimal character escape"),
    (b'"\\u12g4"', "invalid character 'g' in \\u hexadecimal character escape"),
    # quoteChar: Latin-1 rune of the byte, strconv.Quote escapes for the unprintable
    (b"\xef\xbb\xbf{}", "invalid character '\u00ef' looking for beginning of value"),  # a UTF-8 BOM
    (b"\xff", "invalid character '\u00ff' looking for beginning of value"),
    (b"\x80", "invalid character '\\u0080' looking for beginning of value"),
    (b"\xa0", "invalid character '\\u00a0' looking for beginning of value"),
    (b"\x7f", "invalid character '\\x7f' looking for beginning of value"),
    (b"\\", "invalid character '\\\\' looking for beginning of value"),
    (b"[\x0b]", "invalid character '\\v' looking for beginning of value"),
    (b"<html>", "invalid character '<' looking for beginning of value"),
    # a syntax error anywhere wins over the type error (checkValid runs first)
    (b"[1, 2] x", "invalid character 'x' after top-level value"),
    (b'{"a":1e400} x', "invalid character 'x' after top-level value"),
    # decode.go: valid JSON that is not an object
    (b"[1, 2]", type_err("array")),
    (b' "s" ', type_err("string")),
    (b"42", type_err("number")),
    (b"-0.5e-7", type_err("number")),
    (b"1e400", type_err("number")),  # a top-level number is never converted
    (b"true", type_err("bool")),
    (b"\n false\r\n", type_err("bool")),
    # decode.go: convertNumber keeps the first float64 overflow inside an object
    (b'{"a":1e400}', type_err("number 1e400", "float64")),
    (b'{"a":[1,-2E+999,3e999]}', type_err("number -2E+999", "float64")),
    (b'{"a":1' + b"0" * 309 + b"}", type_err("number 1" + "0" * 309, "float64")),
    (b'{"a":1' + b"0" * 309 + b',"b":1}', type_err("number 1" + "0" * 309, "float64")),
    (b'{"a":[0,1e400,2],"b":3e999,"c":0}', type_err("number 1e400", "float64")),
    (b'{"a":{"x":1},"b":{"y":-1.5E0999},"c":0}', type_err("number -1.5E0999", "float64")),
    # success: an object (anything inside, invalid UTF-8 included), or null
    (b"{}", None),
    (b' {"a": [1, {"b": null}], "c": "\xff\xfe"} ', None),
    (b'{"a":1e-400,"b":"\\ud800"}', None),  # underflow is no error; lone surrogates are replaced
    (b'{"a":1' + b"0" * 308 + b"}", None),
    (b"null", None),
    (b"\tnull ", None),
]


@pytest.mark.parametrize(("raw", "message"), CASES, ids=[repr(c[0][:24]) for c in CASES])
def test_go_message(raw: bytes, message: str | None) -> None:
    assert unmarshal_object_error(raw) == message


def test_nesting_depth_limit_is_go_maxNestingDepth() -> None:
    assert unmarshal_object_error(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) == type_err("array")
    assert unmarshal_object_error(b"[" * MAX_DEPTH) == "unexpected end of JSON input"
    assert unmarshal_object_error(b"[" * (MAX_DEPTH + 1)) == "invalid character '[' exceeded max depth"
    deep_obj = b'{"a":' * (MAX_DEPTH + 1)
    assert unmarshal_object_error(deep_obj) == "invalid character '{' exceeded max depth"
    nested = b'{"a":' * (MAX_DEPTH - 1) + b"[1,2]" + b"}" * (MAX_DEPTH - 1)
    assert unmarshal_object_error(nested) is None
    assert unmarshal_object_error(nested[:-1]) == "unexpected end of JSON input"
    one_too_deep = b"[" * MAX_DEPTH + b"[1],2" + b"]" * MAX_DEPTH
    assert unmarshal_object_error(one_too_deep) == "invalid character '[' exceeded max depth"
    members = b'{"a":' * (MAX_DEPTH - 1) + b'{"b":{"c":1},"d":2' + b"}" * MAX_DEPTH
    assert unmarshal_object_error(members) == "invalid character '{' exceeded max depth"


def test_quote_char_matches_go_isprint_for_every_byte() -> None:
    """strconv.Quote(string(rune(b))): printable runes (Go: categories L, M, N, P, S, or ' ') stay."""
    named = dict(zip(b"\a\b\f\n\r\t\v", "abfnrtv", strict=True))
    for b in range(256):
        ch = chr(b)
        if b == 0x27:
            want = "\\'"
        elif ch in "\"\\":
            want = "\\" + ch if ch == "\\" else ch
        elif b in named:
            want = "\\" + named[b]
        elif b < 0x20 or b == 0x7F:
            want = f"\\x{b:02x}"
        elif ch == " " or unicodedata.category(ch)[0] in "LMNPS":
            want = ch
        else:
            want = f"\\u{b:04x}"
        assert quote_char(b) == f"'{want}'", b


def test_big_truncated_bodies_are_scanned_in_linear_time() -> None:
    tensor = b'{"outputs":[{"data":[' + b",".join(b"%d.25e-3" % i for i in range(200_000))
    nested = b"[" + b",".join(b'{"k":{"a":[1,"s"]}}' for _ in range(20_000))
    start = time.perf_counter()
    assert unmarshal_object_error(tensor) == "unexpected end of JSON input"
    assert unmarshal_object_error(nested + b"]x") == "invalid character 'x' after top-level value"
    assert time.perf_counter() - start < 2.0


def test_engine_go_unmarshal_error_uses_it() -> None:
    assert go_unmarshal_error(b"[1,]") == "invalid character ']' looking for beginning of value"
    assert go_unmarshal_error(b"[1]") == type_err("array")


# --- oracle: scanner.go transliterated, one byte per step -------------------------------------


class GoScanner:
    """scanner.go's checkValid, state for state: returns the SyntaxError text or None."""

    def __init__(self) -> None:
        self.stack: list[str] = []
        self.step: Callable[[int], bool] = self.begin_value
        self.end_top = False
        self.err: str | None = None

    def check(self, data: bytes) -> str | None:
        for c in data:
            if not self.step(c) or self.err is not None:
                return self.err
        if self.end_top:
            return None
        self.step(0x20)
        return None if self.end_top else self.err or "unexpected end of JSON input"

    def fail(self, c: int, ctx: str) -> bool:
        self.err = f"invalid character {quote_char(c)} {ctx}"
        return False

    def goto(self, state: Callable[[int], bool]) -> bool:
        self.step = state
        return True

    def push(self, c: int, ps: str, then: Callable[[int], bool]) -> bool:
        self.stack.append(ps)
        return self.goto(then) if len(self.stack) <= MAX_DEPTH else self.fail(c, "exceeded max depth")

    def begin_value(self, c: int) -> bool:
        if c in b" \t\r\n":
            return True
        if c == ord("{"):
            return self.push(c, "key", self.begin_string_or_empty)
        if c == ord("["):
            return self.push(c, "array", self.begin_value_or_empty)
        if c == ord('"'):
            return self.goto(self.in_string)
        if c == ord("-"):
            return self.goto(self.neg)
        if c == ord("0"):
            return self.goto(self.zero)
        if ord("1") <= c <= ord("9"):
            return self.goto(self.digits)
        for word in (b"true", b"false", b"null"):
            if c == word[0]:
                return self.goto(self.literal(word, 1))
        return self.fail(c, "looking for beginning of value")

    def begin_value_or_empty(self, c: int) -> bool:
        if c == ord("]"):
            return self.end_value(c)
        return self.begin_value(c)

    def begin_string_or_empty(self, c: int) -> bool:
        if c == ord("}"):
            self.stack[-1] = "value"
            return self.end_value(c)
        return self.begin_string(c)

    def begin_string(self, c: int) -> bool:
        if c in b" \t\r\n":
            return True
        if c == ord('"'):
            return self.goto(self.in_string)
        return self.fail(c, "looking for beginning of object key string")

    def end_value(self, c: int) -> bool:
        if not self.stack:
            self.end_top = True
            return self.end_top_state(c)
        if c in b" \t\r\n":
            return self.goto(self.end_value)
        ps = self.stack[-1]
        if ps == "key":
            if c == ord(":"):
                self.stack[-1] = "value"
                return self.goto(self.begin_value)
            return self.fail(c, "after object key")
        if ps == "value":
            if c == ord(","):
                self.stack[-1] = "key"
                return self.goto(self.begin_string)
            return self.pop() if c == ord("}") else self.fail(c, "after object key:value pair")
        if c == ord(","):
            return self.goto(self.begin_value)
        return self.pop() if c == ord("]") else self.fail(c, "after array element")

    def pop(self) -> bool:
        self.stack.pop()
        if not self.stack:
            self.end_top = True
            return self.goto(self.end_top_state)
        return self.goto(self.end_value)

    def end_top_state(self, c: int) -> bool:
        self.step = self.end_top_state
        if c not in b" \t\r\n":
            self.fail(c, "after top-level value")
        return True

    def in_string(self, c: int) -> bool:
        if c == ord('"'):
            return self.goto(self.end_value)
        if c == ord("\\"):
            return self.goto(self.in_string_esc)
        return True if c >= 0x20 else self.fail(c, "in string literal")

    def in_string_esc(self, c: int) -> bool:
        if c in b'bfnrt\\/"':
            return self.goto(self.in_string)
        if c == ord("u"):
            return self.goto(self.hex(4))
        return self.fail(c, "in string escape code")

    def hex(self, left: int) -> Callable[[int], bool]:
        def state(c: int) -> bool:
            if c not in string.hexdigits.encode():
                return self.fail(c, "in \\u hexadecimal character escape")
            return self.goto(self.hex(left - 1) if left > 1 else self.in_string)
        return state

    def neg(self, c: int) -> bool:
        if c == ord("0"):
            return self.goto(self.zero)
        if ord("1") <= c <= ord("9"):
            return self.goto(self.digits)
        return self.fail(c, "in numeric literal")

    def digits(self, c: int) -> bool:
        return True if ord("0") <= c <= ord("9") else self.zero(c)

    def zero(self, c: int) -> bool:
        if c == ord("."):
            return self.goto(self.dot)
        if c in b"eE":
            return self.goto(self.exp)
        return self.end_value(c)

    def dot(self, c: int) -> bool:
        if ord("0") <= c <= ord("9"):
            return self.goto(self.dot0)
        return self.fail(c, "after decimal point in numeric literal")

    def dot0(self, c: int) -> bool:
        if ord("0") <= c <= ord("9"):
            return True
        if c in b"eE":
            return self.goto(self.exp)
        return self.end_value(c)

    def exp(self, c: int) -> bool:
        if c in b"+-":
            return self.goto(self.exp_sign)
        return self.exp_sign(c)

    def exp_sign(self, c: int) -> bool:
        if ord("0") <= c <= ord("9"):
            return self.goto(self.exp0)
        return self.fail(c, "in exponent of numeric literal")

    def exp0(self, c: int) -> bool:
        return True if ord("0") <= c <= ord("9") else self.end_value(c)

    def literal(self, word: bytes, k: int) -> Callable[[int], bool]:
        def state(c: int) -> bool:
            if c != word[k]:
                return self.fail(c, f"in literal {word.decode()} (expecting '{chr(word[k])}')")
            return self.goto(self.literal(word, k + 1) if k + 1 < len(word) else self.end_value)
        return state


def go_unmarshal(raw: bytes) -> str | None:
    """The oracle: GoScanner for syntax, then decode.go's outcome (overflows found by the stdlib)."""
    syntax = GoScanner().check(raw)
    if syntax is not None:
        return syntax
    first = raw.lstrip(b" \t\r\n")[:1]
    if first == b"{":
        overflow: list[str] = []

        def number(lit: str) -> float:
            if not overflow and math.isinf(float(lit)):
                overflow.append(lit)
            return 0.0

        json.loads(raw.decode("latin-1"), parse_float=number, parse_int=number)
        return type_err(f"number {overflow[0]}", "float64") if overflow else None
    kinds = {b"[": "array", b'"': "string", b"t": "bool", b"f": "bool", b"n": None}
    kind = kinds.get(first, "number")
    return None if kind is None else type_err(kind)


def test_oracle_agrees_with_the_table() -> None:
    for raw, message in CASES:
        assert go_unmarshal(raw) == message, raw


# --- properties --------------------------------------------------------------------------------

TOKENS = [
    "{", "}", "[", "]", ",", ":", " ", "\n", '"', "\\", '"k"', '"k":', '"a\\n\\u00e9"', "\\u12",
    "0", "1", "-", ".", "e", "E", "+", "12.5e-3", "1e400", "-1E+999", "true", "tru", "false", "null",
    "nul", "x", "'", "\x01", "\x1f", "\t", "\x7f", "\xff", "\xa0",
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def mutated_json(draw: st.DrawFn) -> bytes:
    raw = json.dumps(draw(json_values), indent=draw(st.sampled_from([None, 1]))).encode()
    if not raw:
        return raw
    cut = draw(st.integers(0, len(raw)))
    action = draw(st.sampled_from(["keep", "truncate", "insert", "replace"]))
    token = draw(st.sampled_from(TOKENS)).encode("latin-1")
    if action == "truncate":
        return raw[:cut]
    if action == "insert":
        return raw[:cut] + token + raw[cut:]
    if action == "replace":
        return raw[:cut] + token + raw[cut + 1:]
    return raw


token_soup = st.lists(st.sampled_from(TOKENS), max_size=14).map(lambda ts: "".join(ts).encode("latin-1"))
PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(st.one_of(mutated_json(), token_soup))
def test_exact_message_matches_go_state_machine(raw: bytes) -> None:
    assert unmarshal_object_error(raw) == go_unmarshal(raw)


def _python_says_object_or_null(raw: bytes) -> bool:
    def reject(name: str) -> object:
        raise ValueError(name)

    def number(lit: str) -> float:
        if math.isinf(float(lit)):
            raise ValueError(lit)  # Go's float64 conversion fails where Python's gives inf
        return 0.0

    try:
        value = json.loads(raw.decode("latin-1"), parse_constant=reject, parse_float=number, parse_int=number)
    except ValueError:
        return False
    return value is None or isinstance(value, dict)


@PROPS
@given(st.one_of(st.binary(max_size=64), mutated_json(), token_soup))
def test_never_raises_and_none_exactly_for_object_or_null(raw: bytes) -> None:
    result = unmarshal_object_error(raw)
    assert (result is None) == _python_says_object_or_null(raw)
    assert result is None or isinstance(result, str)
