"""Bodies nothing looks at are not parsed; whether a body is JSON is scanned, with the parse's answer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graph_router import GraphRouter
from graph_router.backend import BackendRequest, BackendResponse, InProcessBackend
from graph_router.conditions import INVALID, document
from graph_router.conditions.document import JsonDoc, is_json, parse_json

ENVELOPE = "Failed to process request"


@pytest.fixture(params=["scan", "parse-only"])
def scanner(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs with msgspec's scan and without it (the fallback a plain install uses)."""
    if request.param == "parse-only":
        monkeypatch.setattr(document, "_scan", None)
    else:
        assert document._scan is not None, "msgspec (the fast extra) is a test requirement"
    return str(request.param)


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """Every body the router parses into Python objects, in order."""
    seen: list[bytes] = []
    real = document.parse_json

    def counting(raw: bytes) -> object:
        seen.append(raw)
        return real(raw)

    monkeypatch.setattr(document, "parse_json", counting)
    yield seen


class Raw:
    """A backend answering fixed bytes and recording the bytes it got (no parsing on its side)."""

    def __init__(self, answer: bytes, status: int = 200) -> None:
        self.answer, self.status = answer, status
        self.got: list[bytes] = []
        self.target = "raw"

    async def call(self, request: BackendRequest) -> BackendResponse:
        self.got.append(request.body)
        return BackendResponse(self.status, self.answer, [])

    async def aclose(self) -> None:
        return None


BIG = b'{"predictions":[' + b",".join(b"%d.5" % i for i in range(20000)) + b"]}"


async def run(spec: dict[str, Any], services: dict[str, Any], body: bytes) -> tuple[int, bytes, dict[str, str]]:
    async with GraphRouter.from_spec(spec, services=services) as r:
        res = await r.infer(body)
    return res.status, res.body, dict(res.headers)


def seq(n: int, **step: Any) -> dict[str, Any]:
    return {"nodes": {"root": {"routerType": "Sequence", "steps": [
        {"serviceName": f"m{i}", "name": f"s{i}", **(step if i else {})} for i in range(n)]}}}


async def test_a_sequence_passes_bodies_through_without_parsing(scanner: str, parses: list[bytes]) -> None:
    backends = {f"m{i}": Raw(BIG) for i in range(3)}
    status, body, headers = await run(seq(3, data="$response"), backends, BIG)
    assert (status, body) == (200, BIG)
    assert body is BIG  # the backend's bytes object itself: no copy on the way out
    assert headers["Content-Type"] == "application/json"
    assert [b.got for b in backends.values()] == [[BIG], [BIG], [BIG]]
    assert backends["m1"].got[0] is BIG
    # Only the final answer's Content-Type needed to know if it is JSON: the scan answers that.
    assert parses == ([] if scanner == "scan" else [BIG])


async def test_an_ensemble_merges_without_parsing_the_parts(scanner: str, parses: list[bytes]) -> None:
    spec = {"nodes": {"root": {"routerType": "Ensemble", "steps": [
        {"serviceName": "a", "name": "a"}, {"serviceName": "b"}]}}}
    status, body, headers = await run(spec, {"a": Raw(b' {"x": [1, 2]}\n'), "b": Raw(b"null")}, b"{}")
    assert (status, body) == (200, b'{"a":{"x": [1, 2]},"1":null}')
    assert headers["Content-Type"] == "application/json"
    # Without the scan, the Ensemble check parses each part (in the order they answer).
    assert sorted(parses) == ([] if scanner == "scan" else [b' {"x": [1, 2]}\n', b"null"])


@pytest.mark.parametrize(("answer", "cause"), [
    (b"[1,2]", "json: cannot unmarshal array into Go value of type map[string]interface {}"),
    (b'"text"', "json: cannot unmarshal string into Go value of type map[string]interface {}"),
    (b"nul", "invalid character ' ' in literal null (expecting 'l')"),
])
async def test_an_ensemble_part_that_is_not_an_object_still_fails_the_node(
        scanner: str, answer: bytes, cause: str) -> None:
    spec = {"nodes": {"root": {"routerType": "Ensemble", "steps": [{"serviceName": "a"}, {"serviceName": "b"}]}}}
    status, body, headers = await run(spec, {"a": Raw(b"{}"), "b": Raw(answer)}, b"{}")
    assert status == 500
    assert json.loads(body) == {"error": ENVELOPE, "cause": cause}
    assert headers["X-Graph-Error-Node"] == "root"


async def test_a_merged_answer_is_parsed_once_when_a_condition_reads_it(scanner: str, parses: list[bytes]) -> None:
    spec = {"nodes": {
        "root": {"routerType": "Sequence", "steps": [
            {"nodeName": "ens", "name": "ens"},
            {"serviceName": "c", "name": "c", "condition": "a.x", "data": "$response"}]},
        "ens": {"routerType": "Ensemble", "steps": [
            {"serviceName": "a", "name": "a"}, {"serviceName": "b", "name": "b"}]},
    }}
    c = Raw(b'{"done":true}')
    status, body, _ = await run(spec, {"a": Raw(b'{"x":1}'), "b": Raw(b'{"y":2}'), "c": c}, b"{}")
    assert (status, body) == (200, b'{"done":true}')
    assert c.got == [b'{"a":{"x":1},"b":{"y":2}}']
    # The condition needs the parts' values: each part parsed once, the merged bytes never.
    final = [] if scanner == "scan" else [b'{"done":true}']  # the final answer: scanned, or parsed
    assert sorted(parses) == [*final, b'{"x":1}', b'{"y":2}']


@pytest.mark.parametrize(("answer", "json_ct"), [
    (b'{"a":1}', True),
    (b'  [1, 2.5e3, true, null]\r\n', True),
    (b'"\\ud800"', True),  # a lone surrogate escape: the scan refuses it, the parse (stdlib) keeps it
    (b'"\xff\xfe"', True),  # invalid UTF-8 inside a string: JSON to Go, and to us
    (b"[1e400]", True),
    (b"[12345678901234567890123]", True),
    (b"NaN", False),
    (b"{'a':1}", False),
    (b"\xef\xbb\xbf{}", False),
    (b"", False),
    (b"ok", False),
])
async def test_content_type_is_json_exactly_when_the_parse_says_json(
        scanner: str, answer: bytes, json_ct: bool) -> None:
    status, body, headers = await run(seq(1), {"m0": Raw(answer)}, b"{}")
    assert (status, body) == (200, answer)
    assert ("Content-Type" in headers) is json_ct
    assert (parse_json(answer) is not INVALID) is json_ct


async def test_a_selection_parses_the_response_once(scanner: str, parses: list[bytes]) -> None:
    second = InProcessBackend(lambda body, headers: b'{"ok":1}', raw=True)
    status, body, _ = await run(seq(2, data="$response.predictions[0]"), {"m0": Raw(BIG), "m1": second}, b"{}")
    assert (status, body) == (200, b'{"ok":1}')
    assert second.calls[0].body == b"0.5"
    assert parses.count(BIG) == 1


# --- the scan agrees with the parse --------------------------------------------------------------

_ATOMS = st.sampled_from([
    b"0", b"-0", b"1", b"-1.5e3", b"1E+2", b"01", b"1.", b".5", b"+1", b"12345678901234567890", b"1e400",
    b"true", b"false", b"null", b"nul", b"NaN", b"Infinity", b'""', b'"a"', b'"\\u00e9"', b'"\\ud800"',
    b'"\\uD834\\uDD1E"', b'"\\x"', b'"\t"', b'"\x7f"', b'"\xff"', b'"\xed\xa0\x80"', b"'a'",
])
_WS = st.sampled_from([b"", b" ", b"\n", b"\t", b"\r", b"\x0c", b"\x00", b"\xef\xbb\xbf"])


def _docs() -> st.SearchStrategy[bytes]:
    def extend(inner: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
        arrays = st.lists(inner, max_size=4).map(lambda xs: b"[" + b",".join(xs) + b"]")
        members = st.lists(st.tuples(st.sampled_from([b'"k"', b'"\\u006b"', b"k", b"1"]), inner), max_size=3)
        objects = members.map(lambda kv: b"{" + b",".join(k + b":" + v for k, v in kv) + b"}")
        broken = st.tuples(inner, st.sampled_from([b",", b"]", b"}", b":", b"[", b"{"])).map(b"".join)
        return arrays | objects | broken
    return st.recursive(_ATOMS, extend, max_leaves=12)


@settings(max_examples=600, deadline=None)
@given(st.tuples(_WS, _docs(), _WS).map(b"".join))
def test_the_scan_answers_as_the_parse(raw: bytes) -> None:
    assert is_json(raw) is (parse_json(raw) is not INVALID)
    doc = JsonDoc(raw)
    if doc.valid:
        assert doc.object_or_null() is (parse_json(raw) is None or isinstance(parse_json(raw), dict))


def test_deep_nesting_within_the_parsers_limits_is_json() -> None:
    for depth in (100, 900):
        raw = b"[" * depth + b"1" + b"]" * depth
        assert is_json(raw) is True
    assert is_json(b"[" * 1100 + b"]" * 1100) is False  # beyond orjson's 1024 and the stdlib's recursion limit


async def test_an_aggregating_ensemble_parses_each_answer_once(scanner: str, parses: list[bytes]) -> None:
    spec = {"nodes": {"root": {"routerType": "Ensemble", "aggregate": "mean", "steps": [
        {"serviceName": "a", "name": "a"}, {"serviceName": "b", "name": "b"}]}}}
    answers = {"a": Raw(b'{"predictions":[1.0,3.0]}'), "b": Raw(b'{"predictions":[3.0,5.0]}')}
    status, body, headers = await run(spec, answers, b"{}")
    assert (status, json.loads(body)) == (200, {"predictions": [2.0, 4.0]})
    assert headers["Content-Type"] == "application/json"
    assert sorted(parses) == [b'{"predictions":[1.0,3.0]}', b'{"predictions":[3.0,5.0]}']
