"""Property tests: the engine never raises and never answers a failure without KServe's envelope.

Random graphs (every node type, nesting, conditions, data selections, Hard/Soft, aggregates) run on
random request bytes against in-process backends that answer random statuses and bodies or fail
with transport errors. An answer either comes from a backend verbatim, is a 200 the graph composed,
or is ``{"error": "Failed to process request", "cause": <str>}`` with ``Content-Type: application/json``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from graph_router import GraphRouter
from graph_router.backend import BackendResponse
from graph_router.conditions import JsonDoc
from graph_router.engine import Result
from graph_router.errors import (
    ENVELOPE_ERROR,
    BackendConnectError,
    BackendDisconnected,
    BackendError,
    BackendProtocolError,
    BackendTimeout,
    SpecError,
)

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SERVICES = ("s0", "s1", "s2")
JSON_CT = ("Content-Type", "application/json")
#: What the scripted backends say their answers are; a non-JSON answer keeps it, a JSON one is JSON.
FUZZ_CT = "application/x-fuzz"

CONDITIONS = ["predictions", "instances", 'instances.#(modelId=="2")', "predictions.0", "{ $.a == 1 }",
              "[@this].#(score>0.5)", "a", "#.a"]
DATA = [None, None, None, "$request", "$response", "$request.instances", "$response.predictions",
        "$request.instances[0]"]


@st.composite
def node(draw: st.DrawFn, index: int, depth: int) -> dict[str, Any]:
    kind = draw(st.sampled_from(["Sequence", "Switch", "Ensemble", "Splitter"]))
    n = draw(st.integers(min_value=1, max_value=3))
    steps: list[dict[str, Any]] = []
    for i in range(n):
        step: dict[str, Any] = {}
        if draw(st.booleans()):
            step["name"] = f"n{i}"
        if index + 1 < depth and draw(st.integers(0, 3)) == 0:
            step["nodeName"] = f"node{draw(st.integers(index + 1, depth - 1))}"
        else:
            step["serviceName"] = draw(st.sampled_from(SERVICES))
        if kind == "Switch" or (kind == "Sequence" and i > 0 and draw(st.booleans())):
            step["condition"] = draw(st.sampled_from(CONDITIONS))
        if kind == "Splitter":
            step["weight"] = 100 // n + (100 % n if i == 0 else 0)
        data = draw(st.sampled_from(DATA))
        if data is not None and ((kind == "Sequence" and i > 0) or not data.startswith("$response")):
            step["data"] = data
        if draw(st.integers(0, 2)) == 0:
            step["dependency"] = "Hard"
        if draw(st.integers(0, 4)) == 0:
            step["mapPredictionsToInstances"] = True
        if draw(st.integers(0, 5)) == 0:
            retry_on = draw(st.sampled_from([["connect-failure", "503"], ["reset", "timeout", "502"]]))
            step["retry"] = {"maxRetries": 2, "initialDelayMs": 1, "maxDelayMs": 2, "retryOn": retry_on}
        steps.append(step)
    out: dict[str, Any] = {"routerType": kind, "steps": steps}
    if kind == "Ensemble" and draw(st.booleans()):
        out["aggregate"] = draw(st.sampled_from(["merge", "mean", "vote", "weighted"]))
        if out["aggregate"] == "weighted":
            for s in steps:
                s["weight"] = draw(st.integers(1, 10))
    return out


@st.composite
def graph_spec(draw: st.DrawFn) -> dict[str, Any]:
    depth = draw(st.integers(min_value=1, max_value=3))
    nodes = {("root" if i == 0 else f"node{i}"): draw(node(i, depth)) for i in range(depth)}
    for n in nodes.values():
        for s in n["steps"]:
            if s.get("nodeName") == "node0":
                s["nodeName"] = "root"
    return {"nodes": nodes}


json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=6)
    | st.sampled_from(["dog", "2", "ERROR"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["a", "instances", "predictions", "modelId", "score", "outputs", "x"]), inner, max_size=4),
    max_leaves=15,
)


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()  # not orjson: integers beyond 64 bits stay exact


bodies = st.one_of(
    st.binary(max_size=60),
    json_values.map(_dumps),
    st.lists(json_values, max_size=3).map(lambda v: _dumps({"instances": v})),
    st.lists(st.floats(-5, 5) | st.sampled_from(["cat", "dog"]), min_size=1, max_size=3).map(
        lambda v: orjson.dumps({"predictions": v})),
    st.sampled_from([b"", b"null", b"[", b'{"a":1', b"[" * 2000, b'"\xff"']),
)
FAILURES = [BackendConnectError, BackendTimeout, BackendProtocolError, "disconnect"]
predictions = st.lists(st.floats(-5, 5) | st.sampled_from(["cat", "dog"]), min_size=1, max_size=3).map(
    lambda v: orjson.dumps({"predictions": v, "instances": [{"modelId": "2", "score": 0.7}]}))
# mostly well-formed answers, so graphs get past their first step often
answers = st.one_of(
    st.tuples(st.just(200), predictions),
    st.tuples(st.just(200), predictions),
    st.tuples(st.sampled_from([200, 201, 204, 301, 400, 404, 500, 502, 503, 504]), bodies),
    st.sampled_from(FAILURES),
)


def scripted(script: list[Any], answered: list[tuple[int, bytes]]) -> Callable[[Any, Any], BackendResponse]:
    """An in-process backend replaying ``script`` in a loop; records every answer it gives."""
    cycle = itertools.cycle(script)

    def backend(_body: Any, _headers: Any) -> BackendResponse:
        item = next(cycle)
        if item == "disconnect":
            raise BackendDisconnected("unexpected EOF", nothing_received=False)
        if isinstance(item, type) and issubclass(item, BackendError):
            raise item(f"injected {item.__name__}")
        status, body = item
        answered.append((status, body))
        return BackendResponse(status, body, [("content-type", FUZZ_CT)])

    return backend


def check(result: Result, answered: list[tuple[int, bytes]]) -> None:
    assert 100 <= result.status <= 599
    if (result.status, result.body) in answered:
        return  # a backend's answer, verbatim
    if result.status == 200 and (any(result.body == b for _, b in answered) or _is_json(result.body)):
        return  # a previous answer (Sequence condition stop) or a merged/aggregated Ensemble object
    doc = orjson.loads(result.body)
    assert isinstance(doc, dict) and set(doc) == {"error", "cause"}, result
    assert doc["error"] == ENVELOPE_ERROR and isinstance(doc["cause"], str) and doc["cause"]
    assert JSON_CT in result.headers and result.status >= 400


def _is_json(body: bytes) -> bool:
    return JsonDoc(body).valid  # as gjson (and Go's json.Valid): UTF-8 inside strings is not checked


@FUZZ
@given(graph_spec(), st.lists(st.lists(answers, min_size=1, max_size=4), min_size=3, max_size=3), bodies)
def test_engine_answers_every_failure_with_the_envelope(spec: dict[str, Any], scripts: list[list[Any]],
                                                        body: bytes) -> None:
    answered: list[tuple[int, bytes]] = []
    services = {name: scripted(script, answered) for name, script in zip(SERVICES, scripts, strict=True)}
    try:
        router = GraphRouter.from_spec(spec, services=services, default_retry=False)
    except SpecError:
        reject()

    async def go() -> Result:
        async with router:
            return await asyncio.wait_for(router.infer(body, {"x-request-id": "r1"}), 10)

    check(asyncio.run(go()), answered)


@FUZZ
@given(st.lists(answers, min_size=1, max_size=4), bodies)
def test_one_step_sequence_passes_backend_answers_verbatim(script: list[Any], body: bytes) -> None:
    answered: list[tuple[int, bytes]] = []
    spec = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceName": "s0"}]}}}
    router = GraphRouter.from_spec(spec, services={"s0": scripted(script, answered)}, default_retry=False)

    async def go() -> Result:
        async with router:
            return await router.infer(body)

    result = asyncio.run(go())
    if answered:
        assert (result.status, result.body) == answered[0]
        expected = "application/json" if _is_json(answered[0][1]) else FUZZ_CT
        assert [v for k, v in result.headers if k == "Content-Type"] == [expected]
    else:
        assert result.status in (500, 502)
        assert orjson.loads(result.body)["cause"].startswith(("injected", "unexpected EOF"))


@pytest.mark.parametrize(("spec", "body"), [
    ({"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceName": "s0", "data": "$request.a"}]}}},
     b'{"a":' * 1000 + b"1" + b"}" * 1000),
    ({"nodes": {"root": {"routerType": "Ensemble", "aggregate": "mean",
                         "steps": [{"serviceName": "s0"}, {"serviceName": "s1"}]}}},
     b'{"predictions":' + b"[" * 1000 + b"]" * 1000 + b"}"),
], ids=["selection", "aggregate"])
def test_json_just_under_the_parser_depth_limit(spec: dict[str, Any], body: bytes) -> None:
    answered: list[tuple[int, bytes]] = []
    services = {n: scripted([(200, body)], answered) for n in SERVICES}
    router = GraphRouter.from_spec(spec, services=services, default_retry=False)

    async def go() -> Result:
        async with router:
            return await router.infer(body)

    check(asyncio.run(go()), answered)
