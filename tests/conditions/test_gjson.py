"""GJSON conditions: KServe's idioms, tidwall/gjson's own expectations, quirks, and syntax errors."""

from __future__ import annotations

import json
import math

import pytest

from graph_router.conditions import JsonDoc, compile_condition
from graph_router.conditions.gjson import MISSING, GjsonCondition, gjson_get
from graph_router.conditions.gjson_syntax import parse_query, split_possible_pipe
from graph_router.conditions.gjson_text import squash, unescape
from graph_router.conditions.gjson_values import Glob, go_parse_float
from graph_router.errors import SpecError


def matches(doc: str | bytes, cond: str) -> bool:
    raw = doc.encode() if isinstance(doc, str) else doc
    return compile_condition(cond).matches(JsonDoc(raw))


# --- every row of the GJSON table in shared/reference/kserve-router.md ---------------------

KSERVE_TABLE = [
    ('{"instances":[{"modelId":"2"}]}', 'instances.#(modelId=="2")', True),
    ('{"instances":[{"modelId":"2"}]}', 'instances.#(modelId=="1")', False),
    ('{"predictions":[{"label":"dog"}]}', 'predictions.#(label=="dog")', True),
    ('{"decision_picker":"ERROR"}', "[@this].#(decision_picker==ERROR)", True),
    ('{"predictions":["dog"]}', '[@this].#(predictions.0=="dog")', True),
    ('{"instances":[{"data":0.95}]}', "[@this].#(instances.0.data>0.9)", True),
    ('{"instances":[{"intval":0},{"intval":11}]}', "instances.#(intval>10)", True),
    ('{"instances":[{"strval":"1red-server1"}]}', 'instances.#(strval%"*red-server*")', True),
    ('{"instances":[{"modelId":1}]}', 'instances.#(modelId=="1")', True),
    ('{"flag":true}', '[@this].#(flag=="true")', True),
    ('{"predictions":[{"label":"cat"}]}', 'predictions.#(label=="dog")#', True),
    ('{"predictions":[]}', "predictions.0", False),
    ('{"a":null}', "a", True),
    ('{"a":1}', "", False),
    ('{"instances":[{"data":0.3}]}', "[@this].#(instances.0.data>0.5 && instances.0.data<=0.9)", True),
]


@pytest.mark.parametrize(("doc", "cond", "expected"), KSERVE_TABLE)
def test_kserve_reference_table(doc: str, cond: str, expected: bool) -> None:
    assert matches(doc, cond) is expected


# --- tidwall/gjson's own expectations ------------------------------------------------------

# The example document of SYNTAX.md.
SYNTAX_DOC = json.loads("""{
  "name": {"first": "Tom", "last": "Anderson"},
  "age":37,
  "children": ["Sara","Alex","Jack"],
  "fav.movie": "Deer Hunter",
  "friends": [
    {"first": "Dale", "last": "Murphy", "age": 44, "nets": ["ig", "fb", "tw"]},
    {"first": "Roger", "last": "Craig", "age": 68, "nets": ["fb", "tw"]},
    {"first": "Jane", "last": "Murphy", "age": 47, "nets": ["ig", "tw"]}
  ]
}""")
DALE = SYNTAX_DOC["friends"][0]

SYNTAX_CASES = [
    # SYNTAX.md "Basic"
    ("name.last", "Anderson"),
    ("age", 37),
    ("children.0", "Sara"),
    ("friends.1.first", "Roger"),
    # SYNTAX.md "Wildcards" and "Escape character"
    ("child*.2", "Jack"),
    ("c?ildren.0", "Sara"),
    ("fav\\.movie", "Deer Hunter"),
    # SYNTAX.md "Arrays"
    ("friends.#", 3),
    ("friends.#.age", [44, 68, 47]),
    # SYNTAX.md "Queries"
    ('friends.#(last=="Murphy").first', "Dale"),
    ('friends.#(last=="Murphy")#.first', ["Dale", "Jane"]),
    ("friends.#(age>45)#.last", ["Craig", "Murphy"]),
    ('friends.#(first%"D*").last', "Murphy"),
    ('friends.#(first!%"D*").last', "Craig"),
    ('children.#(!%"*a*")', "Alex"),
    ('children.#(%"*a*")#', ["Sara", "Jack"]),
    ('friends.#(nets.#(=="fb"))#.first', ["Dale", "Roger"]),
    # SYNTAX.md "Dot vs Pipe"
    ("friends|0.first", "Dale"),
    ("friends.0|first", "Dale"),
    ("friends|0|first", "Dale"),
    ("friends|#", 3),
    ('friends.#(last="Murphy")#|first', MISSING),
    ('friends.#(last="Murphy")#.0', []),
    ('friends.#(last="Murphy")#|0', DALE),
    ('friends.#(last="Murphy")#.#', []),
    ('friends.#(last="Murphy")#|#', 2),
    # SYNTAX.md "Modifiers", "Multipaths", "Literals"
    ("children.@reverse", ["Jack", "Alex", "Sara"]),
    ("children.@reverse.0", "Jack"),
    ('{name.first,age,"the_murphys":friends.#(last="Murphy")#.first}',
     {"first": "Tom", "age": 37, "the_murphys": ["Dale", "Jane"]}),
    ('{name.first,age,"company":!"Happysoft","employed":!true}',
     {"first": "Tom", "age": 37, "company": "Happysoft", "employed": True}),
]


@pytest.mark.parametrize(("path", "expected"), SYNTAX_CASES)
def test_syntax_md_examples(path: str, expected: object) -> None:
    assert gjson_get(SYNTAX_DOC, path) == expected


# gjson_test.go TestQueries
QUERIES_DOC = json.loads("""{"info": {"friends": [
  {"first": "Dale", "last": "Murphy", "kind": "Person", "cust1": true, "extra": [10,20,30],
   "details": {"city": "Tempe", "state": "Arizona"}},
  {"first": "Roger", "last": "Craig", "kind": "Person", "cust2": false, "extra": [40,50,60],
   "details": {"city": "Phoenix", "state": "Arizona"}}]}}""")

QUERY_CASES = [
    # TestQueries: numbers
    ("i*.f*.#[extra.0<11].first", "Dale"),
    ("i*.f*.#[extra.0<10].first", MISSING),
    ("i*.f*.#[extra.0<=10].first", "Dale"),
    ("i*.f*.#[extra.0=11].first", MISSING),
    ("i*.f*.#[extra.0!=10].first", "Roger"),
    ("i*.f*.#[extra.0>10].first", "Roger"),
    ("i*.f*.#[extra.0>=10].first", "Dale"),
    # TestQueries: strings (a number compared with a quoted string reads it as a number)
    ('i*.f*.#[extra.0<"11"].first', "Dale"),
    ('i*.f*.#[first>"Dale"].last', "Craig"),
    ('i*.f*.#[first>="Dale"].last', "Murphy"),
    ('i*.f*.#[first<"Dale"].last', MISSING),
    ('i*.f*.#[first%"Dale"].last', "Murphy"),
    ('i*.f*.#[first%"*a*"]#|#', 1),
    ('i*.f*.#[first%"*e*"]#|#', 2),
    ('i*.f*.#[first!%"*e*"]#|#', 0),
    # TestQueries: booleans
    ("i*.f*.#[cust1=true].first", "Dale"),
    ("i*.f*.#[cust2=false].first", "Roger"),
    ("i*.f*.#[cust1!=false].first", "Dale"),
    ("i*.f*.#[cust1>true].first", MISSING),
    ("i*.f*.#[cust1>=true].first", "Dale"),
    ("i*.f*.#[cust2<false].first", MISSING),
    ("i*.f*.#[cust2<=false].first", "Roger"),
    # TestDeepSelectors
    ('info.friends.#[first="Dale"].extra.0', 10),
    ('info.friends.#[first="Dale"].extra|0', 10),
    ('info.friends.#[first="Dale"]|extra|0', 10),
    ('info.friends.#[details.city="Phoenix"].last', "Craig"),
    ('info.friends.#[details.state="Arizona"].last', "Murphy"),
    # TestMultiArrayEx
    ('info.friends.#[kind="Person"]#.kind|0', "Person"),
    ("info.friends.#.kind", ["Person", "Person"]),
    ('info.friends.#[kind="Person"]#|kind', MISSING),
    ("info.friends.#|kind", MISSING),
    ('i*.f*.#[kind="Other"]#', []),
    # TestPipeDotMixing
    ('info|friends.#[first="Dale"]|last', "Murphy"),
    ('info|friends|#[first="Dale"]|last', "Murphy"),
    ('@ugly|info.@ugly|friends|#[first="Dale"]|last', "Murphy"),
    # TestChaining
    ("info.friends|@reverse|0|first", "Roger"),
]


@pytest.mark.parametrize(("path", "expected"), QUERY_CASES)
def test_gjson_test_go_queries(path: str, expected: object) -> None:
    assert gjson_get(QUERIES_DOC, path) == expected


# gjson_test.go TestQueryArrayValues
ARTISTS = {"artists": [["Bob Dylan"], "John Lennon", "Mick Jagger", "Elton John", "Michael Jackson",
                       "John Smith", True, 123, 456, False, None]}


@pytest.mark.parametrize(("path", "expected"), [
    ('a*.#[0="Bob Dylan"]#|#', 1),
    ('a*.#[0="Bob Dylan 2"]#|#', 0),
    ('a*.#[%"John*"]#|#', 2),
    ('a*.#[="123"]#|#', 1),
])
def test_query_array_values(path: str, expected: object) -> None:
    assert gjson_get(ARTISTS, path) == expected


@pytest.mark.parametrize(("doc", "path", "expected"), [
    # TestEscapePath
    ({"test": {"*": "valZ", "keyv.": "val5", "keyk*": {"key?": "val7"}}}, "test.\\*", "valZ"),
    ({"test": {"*": "valZ", "keyv.": "val5"}}, "test.keyv\\.", "val5"),
    ({"test": {"keyk*": {"key?": "val7"}}}, "test.keyk\\*.key\\?", "val7"),
    # TestIssue58
    ({"data": [{"uid": 1}, {"uid": 2}]}, "data.#[uid!=1]", {"uid": 2}),
    # TestObjectGrouping
    ([True, {"name": "tom"}, False, {"name": "janet"}, None], "#.name", ["tom", "janet"]),
    # TestArrayEx
    ([{"c": [{"a": 10.11}]}, {"c": [{"a": 11.11}]}], "@ugly|#.c.#[a=10.11]", [{"a": 10.11}]),
    ([{"c": [{"a": 10.11}]}, {"c": [{"a": 11.11}]}], "@ugly|#.c.#", [1, 1]),
    ([{"c": [{"a": 10.11}]}, {"c": [{"a": 11.11}]}], "@reverse|0|c|0|a", 11.11),
    ([{"c": [{"a": 10.11}]}, {"c": [{"a": 11.11}]}], "#.c|#", 2),
    # TestModifier (value-level: @pretty/@ugly do not change values)
    ({"other": {"hello": "world"}, "arr": [1, 2, 3, 4, 5, 6]}, "@pretty|@reverse|arr|@reverse|2", 4),
    # TestBasic4 / TestNullArray
    ({"name": {"first": "tom", "last": None}}, "name.last", None),
    ({"items": [1, 2, 3, {"tags": [1, 2, 3], "points": [[1, 2], [3, 4]]}]}, "items.3.points.1.#", 2),
    # SYNTAX.md tilde operator
    ({"vals": [{"a": 1, "b": True}, {"a": 3, "b": False}, {"a": 4, "b": "0"}, {"a": 5, "b": 0},
               {"a": 6, "b": "1"}, {"a": 8, "b": "true"}, {"a": 10, "b": None}, {"a": 11}]},
     "vals.#(b==~true)#.a", [1, 6, 8]),
    ({"vals": [{"a": 1, "b": True}, {"a": 3, "b": False}, {"a": 4, "b": "0"}, {"a": 5, "b": 0},
               {"a": 6, "b": "1"}, {"a": 8, "b": "true"}, {"a": 10, "b": None}, {"a": 11}]},
     "vals.#(b==~false)#.a", [3, 4, 5, 10, 11]),
])
def test_gjson_test_go_misc(doc: object, path: str, expected: object) -> None:
    assert gjson_get(doc, path) == expected


# gjson_test.go TestSplitPipe
@pytest.mark.parametrize(("path", "expected"), [
    ("hello", None),
    ("hello.world", None),
    ("hello|world", ("hello", "world")),
    ("hello\\|world", None),
    ("hello.#", None),
    ('hello.#[a|1="asdf\\"|1324"]#\\|that', None),
    ('hello.#[a|1="asdf\\"|1324"]#|that.more|yikes', ('hello.#[a|1="asdf\\"|1324"]#', "that.more|yikes")),
    ("a.#[]#\\|b", None),
])
def test_split_possible_pipe(path: str, expected: tuple[str, str] | None) -> None:
    assert split_possible_pipe(path) == expected


# --- quirks and coercions, as Go's gjson answers them ---------------------------------------

@pytest.mark.parametrize(("doc", "cond", "expected"), [
    # Bare (unquoted) rvalues and single '='.
    ('[{"s":"ERROR"}]', "#(s=ERROR)", True),
    ('[{"s":"ERROR "}]', "#(s==ERROR)", False),
    # Number vs string: the rvalue is parsed as a float (garbage reads as 0).
    ('[{"n":0}]', "#(n==abc)", True),
    ('[{"n":1}]', '#(n=="1.0")', True),
    ('[{"n":12345678901234567890123}]', "#(n>1e22)", True),
    # A string field compared with a number compares as strings.
    ('[{"s":"10"}]', "#(s>9)", False),
    # Booleans only know "true"/"false" rvalues; null never compares.
    ('[{"b":false}]', "#(b<true)", True),
    ('[{"b":true}]', "#(b==1)", False),
    ('[{"n":null}]', "#(n==null)", False),
    ('[{"n":null}]', "#(n)", True),
    # An object or array never compares, but exists.
    ('[{"o":{}}]', "#(o=={})", False),
    # gjson has no &&/||: everything after the operator is the rvalue.
    ('[{"a":"x"}]', '#(a=="x" || a=="y")', False),
    ('[{"a":5}]', "#(a>1 && a<2)", True),
    # A pipe after a missing key still runs: a multipath always builds something.
    ('{"a":1}', "nothere|[a]", True),
    ('{"a":1}', "nothere|a", False),
    # Statics.
    ('{"a":1}', "!true", True),
    ('{"a":1}', "!True", False),
    ('{"a":1}', "@tostr", True),
    # Modifiers on what does not exist.
    ('{"a":1}', "b|@keys", True),
    ('{"a":1}', "b|@this", False),
    ('{"a":1}', "b|@reverse", False),
    # Keys with odd characters.
    ('{"a.b":1}', "a\\.b", True),
    ('{"a.b":1}', "a.b", False),
    ('{"#":1}', "#", True),
    ('{"":1}', ".", False),
    # Index overflow wraps as Go's uint64 does.
    ('["x"]', "18446744073709551616", True),
    # JSON lines on a single document.
    ('{"age":37}', "..0.age", True),
    ('{"age":37}', "..1", False),
    # @dig finds values at any depth.
    ('{"a":{"b":{"c":1}}}', "@dig:c", True),
    ('{"a":{"b":{"c":1}}}', "@dig:z|0", False),
    # Unicode keys and '?' matching one character.
    ('{"的情况下解":{"key":1,"的情况":2}}', "的情况下解.的?况", True),
    ('{"的情况下解":{"key":1,"的情况":2}}', "的情下解.*?况", False),
    # Escapes inside a quoted rvalue.
    ('[{"s":"a\\"b"}]', '#(s=="a\\"b")', True),
    ('[{"s":"é"}]', '#(s=="\\u00e9")', True),
])
def test_quirks(doc: str, cond: str, expected: bool) -> None:
    assert matches(doc, cond) is expected


def test_invalid_document_never_matches() -> None:
    cond = compile_condition("a")
    assert cond.matches(JsonDoc(b'{"a":1')) is False
    assert cond.matches(JsonDoc(b"")) is False
    assert cond.matches(JsonDoc(b'{"a":1} x')) is False
    assert cond.matches(JsonDoc(b'{"a":NaN}')) is False
    assert cond.matches(JsonDoc(b'{"a":1}')) is True


def test_documents_gjson_accepts_but_orjson_does_not() -> None:
    assert matches(b'{"a":"\\ud800"}', 'a') is True
    assert matches(b'{"a":1e400}', "[@this].#(a>1e300)") is True
    assert matches(b'{"a":"\xff"}', "a") is True  # gjson does not check UTF-8


def test_big_integers_keep_precision() -> None:
    doc = JsonDoc(b'{"id":123456789012345678901234567890}')
    assert doc.value == {"id": 123456789012345678901234567890}
    assert compile_condition("[@this].#(id>1.2e29)").matches(doc)


def test_condition_object_api() -> None:
    cond = compile_condition("instances.#(modelId==\"2\")")
    assert isinstance(cond, GjsonCondition)
    assert cond.source == 'instances.#(modelId=="2")'
    assert "GjsonCondition" in repr(cond)


# --- compile-time errors -----------------------------------------------------------------

@pytest.mark.parametrize(("cond", "fragment"), [
    ("instances.#(modelId==\"2\"", "'(' at column 12 is never closed; add a matching ')'"),
    ("instances.#(modelId==\"2)", "string opened by '\"' at column 22 is never closed"),
    ("a.b)", "unexpected ')' at column 4"),
    ("[a,b}", "'}' at column 5 does not close '[' from column 1; use ']'"),
    ("a.#(b===1)", "unknown operator '===' at column 6"),
    ("a.#(b=>1)", "unknown operator '=>' at column 6"),
    ("a.#(b<>1)", "unknown operator '<>' at column 6"),
    ("a.#(b!1)", "unknown operator '!' at column 6"),
    ("a.#(b.#(c==>1))", "unknown operator '==>' at column 10"),
    ("x" * 5000, "longer than 4096 characters"),
])
def test_syntax_errors(cond: str, fragment: str) -> None:
    with pytest.raises(SpecError) as err:
        compile_condition(cond)
    assert fragment in str(err.value)
    assert err.value.problems[0].path == ""


@pytest.mark.parametrize("cond", [
    "a.#(b==\"(\")", "a\\(b", "#(a>1 && b<2)", "#()", "@reverse", "@flatten:{\"deep\":true}",
    "@join:{\"preserve\":true}", "@pretty:{\"sortKeys\":true}", "@valid", "@ugly", "@keys", "@values",
    "@tostr", "@fromstr", "@group", "@dig:name", "a|@this|b", "{a,b:c,\"d\":e}", "[a,[b,c]]", "..#",
    "!{\"a\":1}.a", "#(a==~true)#", "#(a!=~*)",
])
def test_valid_conditions_compile_and_evaluate(cond: str) -> None:
    c = compile_condition(cond)
    for doc in (b'{"a":[1,{"b":2}],"b":"x","name":"n"}', b"[1,2,3]", b'"s"', b"null"):
        assert c.matches(JsonDoc(doc)) in (True, False)


# --- the building blocks ---------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("1", 1.0), ("-2.5", -2.5), ("1e3", 1000.0), ("1_000", 1000.0), (".5", 0.5), ("5.", 5.0),
    ("inf", math.inf), ("-Infinity", -math.inf), ("0x1p-2", 0.25), ("1e400", math.inf),
    ("", 0.0), ("abc", 0.0), (" 1", 0.0), ("1__0", 0.0), ("0.5 && x<=0.9", 0.0), ("\u0661", 0.0),
])
def test_go_parse_float(text: str, expected: float) -> None:
    assert go_parse_float(text) == expected


def test_go_parse_float_nan() -> None:
    assert math.isnan(go_parse_float("NaN"))


@pytest.mark.parametrize(("pattern", "text", "expected"), [
    ("*", "", True), ("*red-server*", "1red-server1", True), ("D*", "Dale", True), ("D*", "xD", False),
    ("a?c", "abc", True), ("a?c", "ac", False), ("*a*b*c*", "xaxbxcx", True), ("*a*b*c*", "cba", False),
    ("a\\*", "a*", True), ("a\\*", "ab", False), ("a\\", "a", False), ("", "", True), ("", "a", False),
    ("*?", "", False), ("*?", "x", True), ("**a", "a", True), ("a*a", "a", False), ("é?", "éx", True),
])
def test_glob(pattern: str, text: str, expected: bool) -> None:
    assert Glob(pattern).match(text) is expected


def test_glob_is_not_exponential() -> None:
    pattern = "*a" * 30 + "*b"
    assert Glob(pattern).match("a" * 5000) is False


@pytest.mark.parametrize(("text", "expected"), [
    ("plain", "plain"), ('a\\"b', 'a"b'), ("\\u00e9", "é"), ("\\ud83d\\ude00", "😀"),
    ("\\ud83d", "\ufffd"), ("a\\qb", "a"), ("a\\", "a"), ("\\n\\t", "\n\t"),
])
def test_unescape(text: str, expected: str) -> None:
    assert unescape(text) == expected


def test_parse_query_parts() -> None:
    q = parse_query('#(nets.#(=="fb") == "x").first')
    assert q is not None
    assert (q.path, q.op, q.value) == ('nets.#(=="fb")', "=", '"x"')
    assert parse_query("#(a==1") is None


# --- modifiers, with the examples of gjson's README and its TestFlatten/TestJoin --------------

@pytest.mark.parametrize(("doc", "path", "expected"), [
    ([1, [2], [3, 4], [5, [6, 7]]], "@flatten", [1, 2, 3, 4, 5, [6, 7]]),
    ([1, [2], [3, 4], [5, [6, 7]]], '@flatten:{"deep":true}', [1, 2, 3, 4, 5, 6, 7]),
    ([1, [], [2]], "@flatten", [1, 2]),
    ({}, "@flatten", {}),
    ([{"first": "tom", "age": 72}, {"last": "anderson", "age": 68}], "@join",
     {"first": "tom", "age": 68, "last": "anderson"}),
    ([{"first": "tom", "age": 72}, {"last": "anderson", "age": 68}], '@join:{"preserve":true}|age', 72),
    ({"first": "Tom", "last": "Smith"}, "@keys", ["first", "last"]),
    ({"first": "Tom", "last": "Smith"}, "@values", ["Tom", "Smith"]),
    ([1, 2], "@keys", [None, None]),
    ({"id": ["123", "456", "789"], "val": [2, 1]}, "@group",
     [{"id": "123", "val": 2}, {"id": "456", "val": 1}, {"id": "789"}]),
    ({"id": 1023, "name": "alert"}, "@tostr", '{"id":1023,"name":"alert"}'),
    ({"s": '{"id":1023,"name":"alert"}'}, "s|@fromstr|name", "alert"),
    ({"s": "xyz"}, "s|@fromstr", MISSING),
    ({"s": "not json"}, "s|@fromstr", 0.0),  # gjson's Parse reads "n..." as a (bad) number
    ({"something": {"anything": {"abcdefg": {"finally": {"important": {"secret": "password"}}}}}},
     "@dig:secret", ["password"]),
    ({"a": [3, 1, 2]}, "a|@reverse", [2, 1, 3]),
    ({"a": 1, "b": 2}, "@reverse|@keys", ["b", "a"]),
    ({"a": 1}, "@valid.a", 1),
    ({"a": 1}, "@unknown", MISSING),
    ({"@unknown": 5}, "@unknown", 5),
])
def test_modifiers(doc: object, path: str, expected: object) -> None:
    assert gjson_get(doc, path) == expected


# gjson_test.go TestValid: JsonDoc.valid is gjson.ValidBytes.
@pytest.mark.parametrize(("text", "expected"), [
    ("{}", True), ("{", False), ("-", False), ("-1", True), ("-1.", False), ("-1.0", True),
    (" -1.0", True), (" -1.0 ", True), ("-1.0 i", False), ("true", True), (" True ", False),
    (" tru", False), (" false ", True), (" False ", False), (" null ", True), (" Null ", False),
    (" nul", False), (" []", True), (" [true]", True), (" [ true, null ]", True), (" [ true,]", False),
    ('{"hello":"world"}', True), ('{ "hello": "world", }', False), ('{"a":"b",}', False),
    ('{"a":"b","a"}', False), ('{"a":"b","a":}', False), ('{"a":"b","a":1}', True),
    ('{"a":"b",2"1":2}', False), ('""', True), ('"', False), (r'"\n"', True), ('"\\"', False),
    (r'"\\"', True), (r'"a\\b"', True), (r'"a\\b\\\"a"', True), (r'"a\\b\\\uFFAAa"', True),
    (r'"a\\b\\\uFFAZa"', False), (r'"a\\b\\\uFFA"', False),
    # Beyond TestValid: what orjson would reject but gjson accepts, and the other way round.
    ('"\\ud800"', True), ("1e400", True), ("123456789012345678901234567890", True),
    ("\ufeff{}", False), ("\x0c{}", False), ("NaN", False), ("[1,]", False), ("", False),
])
def test_valid_is_gjson_valid(text: str, expected: bool) -> None:
    assert JsonDoc(text.encode()).valid is expected


# --- more of gjson_test.go: TestParenQueries, TestSubSelectors, TestParentSubQuery, ... -------

FRIENDS_A = {"friends": [{"a": 10}, {"a": 20}, {"a": 30}, {"a": 40}]}
TOPOLOGY = {"topology": {"instances": [
    {"service_version": "1.2.3", "service_locale": {"lang": "en"}, "service_roles": ["one", "two"]},
    {"service_version": "1.2.4", "service_locale": {"lang": "th"}, "service_roles": ["three", "four"]},
    {"service_version": "1.2.2", "service_locale": {"lang": "en"}, "service_roles": ["one"]},
]}}
FLAT = [1, [2], [3, 4], [5, [6, [7]]], {"hi": "there"}, 8, [9]]
JOINS = [{"a": 1, "b": 1}, {"b": 2}, 5, {"c": 3}]
HOURS = {"historical": {"summary": {"days": [
    {"hours": [{"humidity": {"value": 92.0}}, {"humidity": {"value": 92.0}}, {"humidity": {"value": 91.0}}]},
    {"hours": [{"humidity": {"value": 91.0}}, {"humidity": {"value": 67.0}}]},
]}}}


@pytest.mark.parametrize(("doc", "path", "expected"), [
    (FRIENDS_A, "friends.#(a>9)#|#", 4),  # TestParenQueries
    (FRIENDS_A, "friends.#(a>10)#|#", 3),
    (FRIENDS_A, "friends.#(a>40)#|#", 0),
    (QUERIES_DOC, "[]", []),  # TestSubSelectors
    (QUERIES_DOC, "{}", {}),
    (QUERIES_DOC, "info.friends.[0.first,1.extra.0]", ["Dale", 40]),
    (QUERIES_DOC, "info.friends.#.[first,extra.0]", [["Dale", 10], ["Roger", 40]]),
    (QUERIES_DOC, '{abc:info.friends.0.first,info.friends.1.last,{123:info.friends.1.cust2}}.@pretty.@ugly',
     {"abc": "Dale", "last": "Craig", "_": {"123": False}}),
    (QUERIES_DOC, '{"a\ra":info.friends.0.kind}|"a\ra"', "Person"),  # an invalid JSON name is taken as is
    ([1, 2, 3, 4], "#", 4),  # TestArrayCountRawOutput
    (TOPOLOGY, 'topology.instances.#( service_roles.#(=="one"))#.service_version',
     ["1.2.3", "1.2.2"]),  # TestParentSubQuery
    ({"@key": "value"}, "@key", "value"),  # TestSingleModifier
    ({"@key": "value"}, "\\@key", "value"),
    ({"data": [{"q": 11, "w": 12}, {"q": 21, "w": 22}]}, "data.#.{q}|@ugly", [{"q": 11}, {"q": 21}]),  # #141
    (FLAT, "@flatten", [1, 2, 3, 4, 5, [6, [7]], {"hi": "there"}, 8, 9]),  # TestFlatten
    (FLAT, '@flatten:{"deep":true}', [1, 2, 3, 4, 5, 6, 7, {"hi": "there"}, 8, 9]),
    ({"9999": 1234}, "@flatten", {"9999": 1234}),
    ([{}, {}], "@join", {}),  # TestJoin
    (JOINS, "@join", {"a": 1, "b": 2, "c": 3}),
    (JOINS, '@join:{"preserve":true}.b', 1),
    ({"9999": 1234}, "@join", {"9999": 1234}),
    ([{}], "@valid", [{}]),  # TestValid
    (HOURS, "historical.summary.days.#.hours|@flatten|#.humidity.value",
     [92.0, 92.0, 91.0, 91.0, 67.0]),  # TestJoin152
])
def test_gjson_test_go_more(doc: object, path: str, expected: object) -> None:
    assert gjson_get(doc, path) == expected


# gjson_test.go TestParseQuery
@pytest.mark.parametrize(("query", "parts"), [
    ('#(service_roles.#(=="one").()==asdf).cap', ('service_roles.#(=="one").()', "=", "asdf", ".cap")),
    ('#(first_name%"Murphy").last', ("first_name", "%", '"Murphy"', ".last")),
    ('#( first_name !% "Murphy" ).last', ("first_name", "!%", '"Murphy"', ".last")),
    ('#(service_roles.#(=="one"))', ('service_roles.#(=="one")', "", "", "")),
    ('#(a\\("\\"(".#(=="o\\"(ne")%"ab\\")").remain', ('a\\("\\"(".#(=="o\\"(ne")', "%", '"ab\\")"', ".remain")),
])
def test_parse_query_go(query: str, parts: tuple[str, str, str, str]) -> None:
    q = parse_query(query)
    assert q is not None
    assert (q.path, q.op, q.value, query[q.end:]) == parts


# gjson_test.go TestVariousFuzz
@pytest.mark.parametrize(("text", "expected"), [
    ('"000"hello', '"000"'), ('"000"', '"000"'), ('"000', '"000'), ('"', '"'),
    ("[000]hello", "[000]"), ("[000]", "[000]"), ("[000", "[000"), ("[", "["), ("]", "]"),
])
def test_squash(text: str, expected: str) -> None:
    assert squash(text) == expected


@pytest.mark.parametrize("path", [
    '0.#[[{}]].@valid:"000',
    "\\************************************" + '**********{**",**,,**,**,**,**,"",**,**,**,**,**,**,**,**,**,**]',
    '[#.@pretty.@join:{""[]""preserve"3,"][{]]]',
])
def test_fuzz_paths_do_not_crash(path: str) -> None:
    gjson_get({"a": [1, {"b": [2]}]}, path)
    gjson_get([0, [1], {"": 2}], path)
