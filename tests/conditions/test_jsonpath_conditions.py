"""JSONPath comparison conditions: ``{ <path> <op> <literal> }`` with && || ! and parentheses."""

from __future__ import annotations

import pytest

from graph_router.conditions import JsonDoc, compile_condition, is_jsonpath
from graph_router.conditions.jsonpath import JsonPathCondition, compare, json_equal
from graph_router.errors import SpecError

DOC = (b'{"predictions":[{"class":"dog","score":0.91},{"class":"cat","score":0.2}],'
       b'"instances":[{"score":0.3},{"score":0.7}],"flag":true,"n":null,"count":3,'
       b'"big":123456789012345678901234567890,"label":"7","tags":[]}')


def matches(cond: str, doc: bytes = DOC) -> bool:
    return compile_condition(cond).matches(JsonDoc(doc))


@pytest.mark.parametrize(("cond", "expected"), [
    # The user guide forms.
    ("{ .predictions[0].class == 'dog' }", True),
    ("{ .predictions[0].class == 'cat' }", False),
    ("{ $.instances[*].score > 0.5 }", True),
    ("{ $.instances[*].score > 0.8 }", False),
    ('{ $.predictions[1].class == "cat" }', True),
    # Every operator.
    ("{ $.count == 3 }", True), ("{ $.count != 3 }", False), ("{ $.count < 4 }", True),
    ("{ $.count <= 3 }", True), ("{ $.count > 3 }", False), ("{ $.count >= 3 }", True),
    ("{ $.count == 3.0 }", True), ("{ $.count > -1e2 }", True),
    # Any selected value satisfies it.
    ("{ $.predictions[*].class == 'cat' }", True),
    ("{ $.predictions[*].class != 'dog' }", True),
    ("{ $.tags[*] == 1 }", False),
    ("{ $.tags[*] != 1 }", False),
    # Boolean logic and precedence (&& binds tighter than ||).
    ("{ $.flag == true && $.count == 3 }", True),
    ("{ $.flag == false || $.count == 3 }", True),
    ("{ $.flag == false || $.count == 4 && $.flag == true }", False),
    ("{ ($.flag == false || $.count == 3) && $.flag == true }", True),
    ("{ !($.count == 3) }", False),
    ("{ !$.missing }", True),
    ("{ !!$.flag }", True),
    # A bare path: does it select anything (null counts).
    ("{ $.n }", True), ("{ $.missing }", False), ("{ .predictions }", True), ("{ $.tags[*] }", False),
    # Type rules: no coercion.
    ("{ $.label == 7 }", False), ("{ $.label == '7' }", True), ("{ $.label > 5 }", False),
    ("{ $.flag == 1 }", False), ("{ $.count == true }", False), ("{ $.n == null }", True),
    ("{ $.n != null }", False), ("{ $.flag > false }", False), ("{ $.predictions[0].class < 'e' }", True),
    # Big integers compare exactly.
    ("{ $.big == 123456789012345678901234567890 }", True),
    ("{ $.big == 123456789012345678901234567891 }", False),
    # Literal on the left, path against path.
    ("{ 3 == $.count }", True), ("{ 0.5 < $.instances[*].score }", True),
    ("{ $.predictions[0].score > $.instances[*].score }", True),
    # Filters from jsonpath-ng's extended syntax.
    ("{ $.predictions[?(@.score > 0.5)].class == 'dog' }", True),
    ("{ $.predictions[?(@.score > 0.95)] }", False),
    ("{ $.predictions[?(@.class == '=~')] }", False),
    # Quoted keys and escapes in strings.
    ("{ $.predictions[0].class == 'd\\'og' }", False), ('{ $.label == "\\u0037" }', True),
    # Whitespace around and inside.
    ("  {$.count==3}  ", True),
])
def test_conditions(cond: str, expected: bool) -> None:
    assert matches(cond) is expected


def test_dispatch() -> None:
    assert isinstance(compile_condition("{ $.a == 1 }"), JsonPathCondition)
    assert isinstance(compile_condition("{ .a }"), JsonPathCondition)
    assert isinstance(compile_condition("{ !$.a }"), JsonPathCondition)
    assert isinstance(compile_condition("{ ($.a == 1) }"), JsonPathCondition)
    # GJSON object multipaths stay GJSON.
    assert not is_jsonpath("{a,b}")
    assert not is_jsonpath('{name.first,"n":age}')
    assert compile_condition("{a,b}").matches(JsonDoc(b'{"a":1}'))


def test_invalid_documents_never_match() -> None:
    cond = compile_condition("{ !$.a }")
    assert cond.matches(JsonDoc(b"{")) is False
    assert cond.matches(JsonDoc(b"")) is False
    assert cond.matches(JsonDoc(b"{}")) is True


def test_non_object_documents() -> None:
    assert matches("{ $[0] == 1 }", b"[1,2]")
    assert matches("{ $ == 'x' }", b'"x"')
    assert not matches("{ $.a }", b"5")


def test_source_and_repr() -> None:
    cond = compile_condition("{ $.a == 1 }")
    assert cond.source == "{ $.a == 1 }"
    assert "JsonPathCondition" in repr(cond)


@pytest.mark.parametrize(("cond", "fragment"), [
    ("{ $.a == }", "expected a path or a literal, found the end of the condition at column 10"),
    ("{ $.a = 1 }", "unexpected '=' at column 7; use '==' to compare"),
    ("{ $.a == 1", "must be wrapped in { } at column 11; add the closing '}'"),
    ("{ ($.a == 1 }", "the '(' at column 3 is not closed at column 13; add ')'"),
    ("{ $.a == 'x }", "the string opened by ' is never closed at column 10"),
    ("{ $.a == 1 $.b == 2 }", "unexpected '$.b' at column 12; join conditions with && or ||"),
    ("{ $.a == 1 & $.b }", "unexpected '&' at column 12"),
    ("{ $.a[ == 1 }", "bad path '$.a[ == 1 '"),
    ("{ $.a == 1 && }", "found the end of the condition at column 15"),
    ("{ $.a == True }", "unexpected 'T' at column 10"),
    ("{ $.a == 'x' == 1 }", "unexpected '==' at column 14"),
    ("{ $.a && 1 }", "the literal 1 is not a condition at column 10"),
    ("{ $.a..b..[ }", "bad path"),
    ("{ $.a[?(@.b =~ '(a+)+$')] }", "regex filters (=~) are not supported at column 13"),
])
def test_syntax_errors(cond: str, fragment: str) -> None:
    with pytest.raises(SpecError) as err:
        compile_condition(cond)
    assert fragment in str(err.value)
    assert err.value.problems[0].path == ""
    assert str(err.value).startswith(f"invalid JSONPath condition {cond!r}")


@pytest.mark.parametrize(("a", "op", "b", "expected"), [
    (1, "==", 1.0, True), (1, "==", True, False), (True, "==", True, True), (None, "==", None, True),
    ("a", "<", "b", True), ("a", "<", 1, False), (1, "<", "a", False), (True, "<", 2, False),
    ([1, 2], "==", [1, 2.0], True), ([1], "==", [True], False), ({"a": 1}, "==", {"a": 1}, True),
    ({"a": 1}, "!=", {"b": 1}, True), ([1], "<", [2], False), (2**70, ">", 2**70 - 1, True),
])
def test_compare(a: object, op: str, b: object, expected: bool) -> None:
    assert compare(a, op, b) is expected


def test_json_equal_is_type_strict() -> None:
    assert json_equal(0, False) is False
    assert json_equal("1", 1) is False
