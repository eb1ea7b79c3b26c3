"""Property tests: compiling never fails but with SpecError; matching never raises, never hangs, and
does not depend on how an equivalent document is written."""

from __future__ import annotations

import json
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graph_router.conditions import Condition, JsonDoc, compile_condition
from graph_router.errors import SpecError

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Pieces that make up GJSON and JSONPath conditions, so generated text reaches deep into both parsers.
PIECES = [
    "a", "b", "instances", "predictions", "0", "1", ".", "..", "#", "#(", "#[", "(", ")", "[", "]", "{", "}",
    "|", ",", ":", "*", "?", "\\", '"', '"x"', "'y'", "==", "=", "!=", "<", "<=", ">", ">=", "%", "!%", "!",
    "~true", "~*", "&&", "||", " ", "@this", "@reverse", "@flatten", "@keys", "@dig:", "@tostr", "@fromstr",
    "@join", "@valid", "!true", "$", "$.", "[*]", "[?(@.a > 1)]", "true", "null", "-1.5e3", "é",
]
condition_text = st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(PIECES), max_size=14).map("".join),
    st.lists(st.sampled_from(PIECES), max_size=10).map(lambda p: "{ " + "".join(p) + " }"),
)

KEYS = st.sampled_from(["a", "b", "instances", "predictions", "modelId", "score", "0", "#", ""]) | st.text(
    max_size=4
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
    st.sampled_from(["2", "dog", "true"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=30,
)

# Conditions whose answer cannot depend on object key order (no wildcards, no order-revealing modifiers).
ORDER_FREE = [
    "a", "a.b", "a.0", "instances.#", 'instances.#(modelId=="2")', "instances.#(score>0.5)#",
    "[@this].#(a==1)", "[@this].#(instances.0.score>0.5 && instances.0.score<=0.9)",
    "predictions.0", "#.a", "#(a)", "a|@this", "[a,b]", "{a,b}", "..0.a", "a.#(==\"dog\")",
    "{ $.a == 1 }", "{ $.instances[*].score > 0.5 }", "{ .predictions[0] == 'dog' || !$.b }",
    "{ $.a.b }", "{ $..score >= 0 }",
]
ALL_CONDITIONS = [*ORDER_FREE, "*", "a*.b", "@keys|0", "@values|0", "@reverse|0", "@dig:a", "@tostr",
                  "#(%\"d*\")", "a|@flatten:{\"deep\":true}|#", "a.@join", "@this|@group|#"]
COMPILED: list[Condition] = [compile_condition(c) for c in ALL_CONDITIONS]
ORDER_FREE_COMPILED = COMPILED[: len(ORDER_FREE)]


def reorder(v: object) -> object:
    """The same JSON value with every object's keys in reverse order."""
    if isinstance(v, dict):
        return {k: reorder(v[k]) for k in reversed(list(v))}
    if isinstance(v, list):
        return [reorder(x) for x in v]
    return v


def answer(cond: Condition, raw: bytes) -> bool:
    start = time.monotonic()
    result = cond.matches(JsonDoc(raw))
    assert time.monotonic() - start < 2.0, "a condition took too long"
    assert type(result) is bool
    return result


@FUZZ
@given(condition_text)
def test_compile_raises_only_spec_error(text: str) -> None:
    try:
        cond = compile_condition(text)
    except SpecError as err:
        assert err.problems and err.problems[0].path == ""
        return
    assert cond.source == text
    for raw in (b'{"a":{"b":[1,"x",null]},"instances":[{"score":0.7}]}', b"[]", b"oops"):
        answer(cond, raw)


@FUZZ
@given(condition_text, json_values)
def test_generated_conditions_on_generated_documents(text: str, value: object) -> None:
    try:
        cond = compile_condition(text)
    except SpecError:
        return
    answer(cond, json.dumps(value).encode())


@FUZZ
@given(json_values)
def test_matches_never_raises_on_json(value: object) -> None:
    raw = json.dumps(value).encode()
    for cond in COMPILED:
        answer(cond, raw)


@FUZZ
@given(st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()[:-1])))
def test_matches_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    for cond in COMPILED:
        answer(cond, raw)


@FUZZ
@given(json_values)
def test_same_answer_on_equivalent_documents(value: object) -> None:
    compact = json.dumps(value, separators=(",", ":")).encode()
    spaced = json.dumps(value, indent=3).encode()
    padded = b" \n\t" + json.dumps(value, separators=(" , ", " : ")).encode() + b"\r\n"
    for cond in COMPILED:
        assert answer(cond, compact) == answer(cond, spaced) == answer(cond, padded), cond.source
    reordered = json.dumps(reorder(value)).encode()
    for cond in ORDER_FREE_COMPILED:
        assert answer(cond, compact) == answer(cond, reordered), cond.source
