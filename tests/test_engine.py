"""Graph semantics over in-process backends: every rule of the reference doc, and our extensions."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from graph_router import GraphRouter
from graph_router.backend import BackendResponse, to_response
from graph_router.conditions import INVALID, JsonDoc
from graph_router.errors import BackendConnectError

ENVELOPE = "Failed to process request"


class Fake:
    """An in-process model that records what it received and answers from a script."""

    def __init__(self, *answers: Any, delay: float = 0.0) -> None:
        self.answers = list(answers) or [{"ok": True}]
        self.received: list[Any] = []
        self.headers: list[dict[str, str]] = []
        self.delay = delay
        self.cancelled = False

    async def __call__(self, body: Any, headers: dict[str, str]) -> Any:
        self.received.append(body)
        self.headers.append(headers)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        a = self.answers[0] if len(self.answers) == 1 else self.answers.pop(0)
        if isinstance(a, BaseException):
            raise a
        return a


def graph(nodes: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"nodes": nodes, **spec}


def svc(service: str, **kw: Any) -> dict[str, Any]:
    return {"serviceName": service, **kw}


# Every test runs twice: over in-process backends, and over real HTTP backends on 127.0.0.1
# (each fake served by an aiohttp app at /v1/models/<name>:predict). Tests whose fake raises a
# transport exception or observes cancellation run in-process only.
TRANSPORT: list[str] = ["inproc"]
SKIP_HEADERS = {"host", "content-length", "user-agent", "accept-encoding", "accept", "connection"}


@pytest.fixture(autouse=True, params=["inproc", "http"])
def transport(request: pytest.FixtureRequest) -> Any:
    if request.param == "http" and request.node.get_closest_marker("inproc_only"):
        pytest.skip("the fake raises a transport exception or observes cancellation: in-process only")
    TRANSPORT[0] = request.param
    return request.param


inproc_only = pytest.mark.inproc_only


@contextlib.asynccontextmanager
async def router(spec: dict[str, Any], services: dict[str, Any], **kw: Any) -> AsyncIterator[GraphRouter]:
    if TRANSPORT[0] == "inproc":
        async with GraphRouter.from_spec(spec, services=services, **kw) as r:
            yield r
        return
    app = web.Application()
    for name, fn in services.items():
        app.router.add_post(f"/v1/models/{name}:predict", _serve(fn))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    urls = {name: f"http://127.0.0.1:{port}/v1/models/{name}:predict" for name in services}
    try:
        async with GraphRouter.from_spec(spec, services=urls, **kw) as r:
            yield r
    finally:
        await runner.cleanup()


def _serve(fn: Any) -> Any:
    async def handle(request: web.Request) -> web.Response:
        raw = await request.read()
        value = JsonDoc(raw).value
        body: Any = raw if value is INVALID else value
        headers = {k.lower(): v for k, v in request.headers.items() if k.lower() not in SKIP_HEADERS}
        result = fn(body, headers)
        if asyncio.iscoroutine(result):
            result = await result
        resp = to_response(result)
        return web.Response(status=resp.status, body=resp.body)

    return handle


async def run(spec: dict[str, Any], services: dict[str, Any], body: Any = None,
              headers: dict[str, str] | None = None, **kw: Any) -> Any:
    async with router(spec, services, **kw) as r:
        return await r.infer(body if body is not None else {"instances": [1]}, headers=headers)


# --- Sequence ---------------------------------------------------------------------------------


async def test_sequence_passes_request_and_response_as_configured() -> None:
    a, b, c = Fake({"predictions": [1]}), Fake({"predictions": [2]}), Fake({"predictions": [3]})
    spec = graph({"root": {"routerType": "Sequence", "steps": [
        svc("a"), svc("b", data="$response"), svc("c", data="$request")]}})
    res = await run(spec, {"a": a, "b": b, "c": c}, {"instances": [9]})
    assert res.status == 200
    assert res.json() == {"predictions": [3]}
    assert a.received == [{"instances": [9]}]
    assert b.received == [{"predictions": [1]}]
    assert c.received == [{"instances": [9]}]
    assert ("Content-Type", "application/json") in res.headers
    assert dict(res.headers)["X-Graph-Route"] == "root>0:a,root>1:b,root>2:c"


async def test_sequence_response_on_first_step_gets_the_request() -> None:
    a = Fake({"x": 1})
    res = await run(graph({"root": {"routerType": "Sequence", "steps": [svc("a", data="$response")]}}),
                    {"a": a}, {"in": 1})
    assert a.received == [{"in": 1}] and res.status == 200


async def test_sequence_condition_not_matching_stops_with_previous_response_and_200() -> None:
    a, b = Fake((201, {"predictions": [{"label": "cat"}]})), Fake({"never": 1})
    spec = graph({"root": {"routerType": "Sequence", "steps": [
        svc("a"), svc("b", data="$response", condition='predictions.#(label=="dog")')]}})
    res = await run(spec, {"a": a, "b": b})
    assert res.status == 200
    assert res.json() == {"predictions": [{"label": "cat"}]}
    assert b.received == []


async def test_sequence_condition_matching_runs_the_step() -> None:
    a, b = Fake({"predictions": [{"label": "dog"}]}), Fake({"breed": "corgi"})
    spec = graph({"root": {"routerType": "Sequence", "steps": [
        svc("a"), svc("b", data="$response", condition='predictions.#(label=="dog")')]}})
    res = await run(spec, {"a": a, "b": b})
    assert res.json() == {"breed": "corgi"} and b.received == [{"predictions": [{"label": "dog"}]}]


async def test_sequence_condition_on_non_json_previous_response_is_invalid_response() -> None:
    a, b = Fake(b"not json"), Fake({"x": 1})
    spec = graph({"root": {"routerType": "Sequence", "steps": [svc("a"), svc("b", condition="x")]}})
    res = await run(spec, {"a": a, "b": b})
    assert res.status == 500
    assert res.json() == {"error": ENVELOPE, "cause": "invalid response"}


async def test_sequence_hard_failure_stops_with_its_status_and_body() -> None:
    a, b = Fake((503, {"err": "down"})), Fake({"x": 1})
    spec = graph({"root": {"routerType": "Sequence", "steps": [svc("a", dependency="Hard"), svc("b")]}})
    res = await run(spec, {"a": a, "b": b})
    assert (res.status, res.json()) == (503, {"err": "down"}) and b.received == []


async def test_sequence_soft_failures_continue_and_last_step_decides_status() -> None:
    a, b = Fake((500, {"e": 1})), Fake((418, b"teapot"))
    spec = graph({"root": {"routerType": "Sequence", "steps": [svc("a"), svc("b", data="$response")]}})
    res = await run(spec, {"a": a, "b": b})
    assert res.status == 418 and res.body == b"teapot"
    assert b.received == [{"e": 1}]
    assert ("Content-Type", "application/json") not in res.headers  # body is not JSON


async def test_map_predictions_to_instances() -> None:
    a, b = Fake({"predictions": [[1, 2]], "model": "x"}), Fake({"ok": 1})
    spec = graph({"root": {"routerType": "Sequence", "steps": [
        svc("a"), svc("b", data="$response", mapPredictionsToInstances=True)]}})
    await run(spec, {"a": a, "b": b})
    assert b.received == [{"instances": [[1, 2]]}]


@pytest.mark.parametrize("answer", [{"predictions": []}, {"other": 1}, [1, 2]])
async def test_map_predictions_leaves_other_bodies_unchanged(answer: Any) -> None:
    a, b = Fake(answer), Fake({"ok": 1})
    spec = graph({"root": {"routerType": "Sequence", "steps": [
        svc("a"), svc("b", data="$response", mapPredictionsToInstances=True)]}})
    await run(spec, {"a": a, "b": b})
    assert b.received == [answer]


# --- Switch -----------------------------------------------------------------------------------


async def test_switch_runs_first_matching_step_with_node_input() -> None:
    a, b, c = Fake({"a": 1}), Fake((202, {"b": 1})), Fake({"c": 1})
    spec = graph({"root": {"routerType": "Switch", "steps": [
        svc("a", condition='instances.#(modelId=="1")'),
        svc("b", condition='instances.#(modelId=="2")'),
        svc("c", condition='instances.#(modelId=="2")')]}})
    res = await run(spec, {"a": a, "b": b, "c": c}, {"instances": [{"modelId": "2"}]})
    assert (res.status, res.json()) == (202, {"b": 1})
    assert b.received == [{"instances": [{"modelId": "2"}]}] and a.received == c.received == []
    assert dict(res.headers)["X-Graph-Route"] == "root>1:b"


@pytest.mark.parametrize("body", [{"instances": [{"modelId": "9"}]}, b"not json"])
async def test_switch_without_match_is_404_at_root(body: Any) -> None:
    spec = graph({"root": {"routerType": "Switch", "steps": [svc("a", condition='instances.#(modelId=="1")')]}})
    res = await run(spec, {"a": Fake()}, body)
    assert res.status == 404
    assert res.json() == {"error": ENVELOPE, "cause": "None of the routes matched with the switch condition"}
    assert ("Content-Type", "application/json") in res.headers


async def test_switch_without_match_nested_is_500() -> None:
    spec = graph({
        "root": {"routerType": "Sequence", "steps": [{"nodeName": "pick"}]},
        "pick": {"routerType": "Switch", "steps": [svc("a", condition="nope")]},
    })
    res = await run(spec, {"a": Fake()})
    assert res.status == 500
    assert res.json()["cause"] == "None of the routes matched with the switch condition"
    assert dict(res.headers)["X-Graph-Error-Node"] == "pick"


# --- Ensemble ---------------------------------------------------------------------------------


async def test_ensemble_merges_by_name_or_index_in_step_order_keeping_bytes() -> None:
    a = Fake(b'{"predictions": [12345678901234567890123, 0.1000000000000000055511151231257827]}')
    b = Fake((500, {"error": "soft"}))
    c = Fake(b"null")
    spec = graph({"root": {"routerType": "Ensemble", "steps": [svc("a", name="zeta"), svc("b"), svc("c")]}})
    res = await run(spec, {"a": a, "b": b, "c": c})
    assert res.status == 200
    assert res.body == (b'{"zeta":{"predictions": [12345678901234567890123, 0.1000000000000000055511151231257827]},'
                        b'"1":{"error":"soft"},"2":null}')
    assert a.received == b.received == c.received == [{"instances": [1]}]


@inproc_only
async def test_ensemble_hard_failure_returns_its_answer_and_cancels_siblings() -> None:
    slow = Fake({"slow": 1}, delay=5)
    bad = Fake((503, {"error": "cold"}))
    spec = graph({"root": {"routerType": "Ensemble", "steps": [svc("bad", dependency="Hard"), svc("slow")]}})
    res = await asyncio.wait_for(run(spec, {"bad": bad, "slow": slow}), 3)
    assert (res.status, res.json()) == (503, {"error": "cold"})
    assert slow.cancelled


async def test_ensemble_hard_failures_are_judged_in_step_order() -> None:
    first = Fake((502, {"first": 1}), delay=0.2)
    second = Fake((503, {"second": 1}))
    spec = graph({"root": {"routerType": "Ensemble", "steps": [
        svc("first", dependency="Hard"), svc("second", dependency="Hard")]}})
    res = await run(spec, {"first": first, "second": second})
    assert (res.status, res.json()) == (502, {"first": 1})


@pytest.mark.parametrize(("answer", "cause"), [
    ([1, 2], "json: cannot unmarshal array into Go value of type map[string]interface {}"),
    ('"s"', "json: cannot unmarshal string into Go value of type map[string]interface {}"),
    ("42", "json: cannot unmarshal number into Go value of type map[string]interface {}"),
    (b"oops", "invalid character 'o' looking for beginning of value"),
    (b"", "unexpected end of JSON input"),
])
async def test_ensemble_step_not_a_json_object_fails_with_500(answer: Any, cause: str) -> None:
    spec = graph({"root": {"routerType": "Ensemble", "steps": [svc("a"), svc("b")]}})
    body = answer.encode() if isinstance(answer, str) else answer
    res = await run(spec, {"a": Fake({"ok": 1}), "b": Fake(body)})
    assert res.status == 500
    assert res.json() == {"error": ENVELOPE, "cause": cause}


@inproc_only
async def test_transport_error_is_500_with_envelope() -> None:
    err = BackendConnectError('Post "http://x/": dial tcp 10.0.0.1:80: connect: connection refused')
    spec = graph({"root": {"routerType": "Ensemble", "steps": [svc("a"), svc("b")]}})
    res = await run(spec, {"a": Fake({"ok": 1}), "b": Fake(err)}, default_retry=False)
    assert res.status == 500
    assert res.json() == {"error": ENVELOPE, "cause": err.cause}
    assert dict(res.headers)["X-Graph-Error-Step"] == "1"


# --- Splitter ---------------------------------------------------------------------------------


async def test_splitter_follows_weights() -> None:
    a, b, z = Fake({"m": "a"}), Fake({"m": "b"}), Fake({"m": "z"})
    spec = graph({"root": {"routerType": "Splitter", "steps": [
        svc("a", weight=70), svc("z", weight=0), svc("b", weight=30)]}})
    async with router(spec, {"a": a, "b": b, "z": z}) as r:
        seen = Counter([(await r.infer({"i": 1})).json()["m"] for _ in range(2000)])
    assert seen["z"] == 0
    assert 1250 < seen["a"] < 1550 and seen["a"] + seen["b"] == 2000


async def test_splitter_sticky_header_is_stable_and_weighted() -> None:
    a, b = Fake({"m": "a"}), Fake({"m": "b"})
    spec = graph({"root": {"routerType": "Splitter", "stickyHeader": "x-user-id",
                           "steps": [svc("a", weight=70), svc("b", weight=30)]}})
    async with router(spec, {"a": a, "b": b}) as r:
        firsts = {}
        for u in range(1000):
            firsts[u] = (await r.infer({}, headers={"X-User-Id": f"user-{u}"})).json()["m"]
        for u in range(0, 1000, 37):  # same value, same branch, every time
            assert (await r.infer({}, headers={"x-user-id": f"user-{u}"})).json()["m"] == firsts[u]
    share = Counter(firsts.values())["a"] / 1000
    assert 0.62 < share < 0.78


# --- extensions -------------------------------------------------------------------------------


async def test_data_selection_sends_part_of_the_response() -> None:
    a, b = Fake({"predictions": [1, 2], "meta": {}}), Fake({"ok": 1})
    spec = graph({"root": {"routerType": "Sequence", "steps": [
        svc("a"), svc("b", data="$response.predictions", name="second")]}})
    await run(spec, {"a": a, "b": b})
    assert b.received == [[1, 2]]


async def test_data_selection_finding_nothing_names_the_step() -> None:
    a, b = Fake({"other": 1}), Fake({"ok": 1})
    spec = graph({"root": {"routerType": "Sequence", "steps": [
        svc("a"), svc("b", data="$response.predictions", name="second")]}})
    res = await run(spec, {"a": a, "b": b})
    assert res.status == 500
    assert res.json()["cause"] == "data '$response.predictions' selected nothing from the previous response"
    assert dict(res.headers)["X-Graph-Error-Step"] == "second"


async def test_ensemble_vote_mean_weighted() -> None:
    a, b, c = Fake({"predictions": [0, 1, 2]}), Fake({"predictions": [0, 2, 1]}), Fake({"predictions": [1, 2, 0]})
    services = {"a": a, "b": b, "c": c}
    steps = [svc("a", weight=50), svc("b", weight=25), svc("c", weight=25)]
    vote = await run(graph({"root": {"routerType": "Ensemble", "aggregate": "vote", "steps": steps}}), services)
    assert vote.json() == {"predictions": [0, 2, 2]}
    mean = await run(graph({"root": {"routerType": "Ensemble", "aggregate": "mean", "steps": steps}}), services)
    assert mean.json() == {"predictions": [1 / 3, 5 / 3, 1.0]}
    w = await run(graph({"root": {"routerType": "Ensemble", "aggregate": "weighted", "steps": steps}}), services)
    assert w.json() == {"predictions": [0.25, 1.5, 1.25]}


async def test_ensemble_vote_tie_goes_to_earlier_step() -> None:
    a, b = Fake({"predictions": ["cat"]}), Fake({"predictions": ["dog"]})
    res = await run(graph({"root": {"routerType": "Ensemble", "aggregate": "vote",
                                    "steps": [svc("a"), svc("b")]}}), {"a": a, "b": b})
    assert res.json() == {"predictions": ["cat"]}


async def test_ensemble_mean_v2_outputs() -> None:
    def out(d: list[float]) -> dict[str, Any]:
        return {"id": "r1", "outputs": [{"name": "p", "shape": [2], "datatype": "FP32", "data": d}]}
    res = await run(graph({"root": {"routerType": "Ensemble", "aggregate": "mean",
                                    "steps": [svc("a"), svc("b")]}}), {"a": Fake(out([1, 2])), "b": Fake(out([3, 4]))})
    assert res.json() == {"id": "r1", "outputs": [{"name": "p", "shape": [2], "datatype": "FP64", "data": [2.0, 3.0]}]}


async def test_ensemble_mean_shape_mismatch_names_the_step() -> None:
    res = await run(graph({"root": {"routerType": "Ensemble", "aggregate": "mean", "steps": [
        svc("a", name="one"), svc("b", name="two")]}}),
        {"a": Fake({"predictions": [1, 2]}), "b": Fake({"predictions": [1]})})
    assert res.status == 500
    assert res.json()["cause"] == "aggregate mean: step 'two' answered 1 predictions, step 'one' answered 2"


async def test_map_outputs_to_inputs_chains_v2() -> None:
    a = Fake({"model_name": "a", "id": "42", "parameters": {"p": 1},
              "outputs": [{"name": "o", "shape": [1, 2], "datatype": "FP32", "data": [1.0, 2.0]}]})
    b = Fake({"ok": 1})
    await run(graph({"root": {"routerType": "Sequence", "steps": [
        svc("a"), svc("b", data="$response", mapOutputsToInputs=True)]}}), {"a": a, "b": b})
    assert b.received == [{"id": "42", "inputs": [{"name": "o", "shape": [1, 2], "datatype": "FP32",
                                                   "data": [1.0, 2.0]}], "parameters": {"p": 1}}]


async def test_step_timeout_is_504_naming_the_step() -> None:
    spec = graph({"root": {"routerType": "Sequence", "steps": [svc("a", timeout=0.1, name="slow")]}})
    res = await run(spec, {"a": Fake({"x": 1}, delay=5)})
    assert res.status == 504
    target = "a" if TRANSPORT[0] == "inproc" else res.json()["cause"].rsplit(" ", 1)[1]
    assert target == "a" or re.fullmatch(r"http://127\.0\.0\.1:\d+/v1/models/a:predict", target)
    assert res.json()["cause"] == f"step timeout of 0.1s exceeded calling {target}"
    assert dict(res.headers)["X-Graph-Error-Step"] == "slow"


async def test_graph_timeout_is_504_naming_node_and_step() -> None:
    spec = graph({"root": {"routerType": "Sequence", "steps": [svc("a"), svc("b", name="stuck")]}}, timeout=1)
    res = await run(spec, {"a": Fake({"x": 1}), "b": Fake({"x": 1}, delay=5)})
    assert res.status == 504
    assert res.json()["cause"] == "graph timeout of 1.0s exceeded while node 'root' step 'stuck' was running"


@inproc_only
async def test_default_retry_covers_refused_connections_only() -> None:
    refused = BackendConnectError("connection refused")
    flaky = Fake(refused, refused, {"ok": 1})
    res = await run(graph({"root": {"routerType": "Sequence", "steps": [svc("a")]}}), {"a": flaky})
    assert res.status == 200 and len(flaky.received) == 3
    unavailable = Fake((503, {"e": 1}), (503, {"e": 1}), {"ok": 1})
    res = await run(graph({"root": {"routerType": "Sequence", "steps": [svc("a")]}}), {"a": unavailable})
    assert res.status == 503 and len(unavailable.received) == 1


async def test_default_retry_config_retries_503_but_never_4xx() -> None:
    retry = {"maxRetries": 3, "initialDelayMs": 1, "maxDelayMs": 5}
    unavailable = Fake((503, {"e": 1}), (503, {"e": 1}), {"ok": 1})
    res = await run(graph({"root": {"routerType": "Sequence", "steps": [svc("a")]}}, defaultRetry=retry),
                    {"a": unavailable})
    assert res.status == 200 and len(unavailable.received) == 3
    bad = Fake((400, {"e": 1}), {"ok": 1})
    res = await run(graph({"root": {"routerType": "Sequence", "steps": [svc("a")]}}, defaultRetry=retry),
                    {"a": bad})
    assert res.status == 400 and len(bad.received) == 1


async def test_retry_budget_is_bounded_by_the_deadline() -> None:
    # Full jitter: the 10 delays, each U(0, 1 s), fit in the 1 s deadline with probability 1/10!
    # (delays of U(0, 0.4 s) fitted 9 of them about once in a hundred runs).
    retry = {"maxRetries": 10, "initialDelayMs": 1000, "maxDelayMs": 1000}
    always = Fake((503, {"e": 1}))
    spec = graph({"root": {"routerType": "Sequence", "steps": [svc("a", retry=retry)]}}, timeout=1)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    res = await run(spec, {"a": always})
    assert loop.time() - t0 < 1.5
    assert res.status in (503, 504) and 1 <= len(always.received) < 11


async def test_header_propagation_kserve_semantics() -> None:
    a = Fake({"ok": 1})
    spec = graph({"root": {"routerType": "Sequence", "steps": [svc("a")]}}, propagateHeaders=["^X-Tenant$"])
    await run(spec, {"a": a}, headers={"x-request-id": "r1", "Authorization": "Bearer s", "X-Tenant": "t",
                                       "traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01",
                                       "connection": "keep-alive"},
              propagate_headers=["Request-Id", "("])
    assert a.headers == [{"x-request-id": "r1", "x-tenant": "t", "traceparent": "00-" + "1" * 32 + "-" + "2" * 16
                          + "-01", "content-type": "application/json"}]


async def test_unknown_graph_lists_known_ones() -> None:
    async with router(graph({"root": {"routerType": "Sequence", "steps": [svc("a")]}}), {"a": Fake()}) as r:
        res = await r.infer({}, graph="nope")
    assert res.status == 404
    assert orjson.loads(res.body)["cause"] == "graph 'nope' not found; known graphs: graph"


@inproc_only
async def test_in_process_backend_may_return_a_backend_response() -> None:
    def fn(body: Any, headers: dict[str, str]) -> BackendResponse:
        return BackendResponse(207, b"raw")
    res = await run(graph({"root": {"routerType": "Sequence", "steps": [svc("a")]}}), {"a": fn})
    assert (res.status, res.body) == (207, b"raw")


async def test_selection_keeps_integers_beyond_64_bits_exact() -> None:
    a, b = Fake(b'{"predictions": [123456789012345678901234567890]}'), Fake({"ok": 1})
    spec = graph({"root": {"routerType": "Sequence", "steps": [
        svc("a"), svc("b", data="$response.predictions", mapPredictionsToInstances=False)]}})
    async with router(spec, {"a": a, "b": b}) as r:
        await r.infer({})
        got = b.received
    assert got == [[123456789012345678901234567890]]


@inproc_only
async def test_retries_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    refused = BackendConnectError("connection refused")
    flaky = Fake(refused, {"ok": 1})
    with caplog.at_level("INFO", logger="graph_router.retry"):
        res = await run(graph({"root": {"routerType": "Sequence", "steps": [svc("a")]}}), {"a": flaky})
    assert res.status == 200
    [record] = [r for r in caplog.records if r.name == "graph_router.retry"]
    assert record.getMessage().startswith("retrying a: attempt 1 got backend_connect; next attempt in ")


@inproc_only
async def test_replace_keeps_in_flight_requests_on_the_graph_they_started_with() -> None:
    from graph_router.loader import load_graph_json

    old, new = Fake({"v": "old"}, delay=0.3), Fake({"v": "new"})
    spec = graph({"root": {"routerType": "Sequence", "steps": [svc("old")]}})
    async with GraphRouter.from_spec(spec, services={"old": old, "new": new}) as r:
        in_flight = asyncio.create_task(r.infer({}))
        await asyncio.sleep(0.05)
        assert old.received  # started on the old graph
        r.replace([load_graph_json(orjson.dumps(graph({"root": {"routerType": "Sequence",
                                                                "steps": [svc("new")]}})).decode())])
        after = await r.infer({})
        assert (await in_flight).json() == {"v": "old"}
    assert after.json() == {"v": "new"} and len(old.received) == 1


def test_header_policy_never_propagates_hop_by_hop_and_defaults_content_type() -> None:
    from graph_router.headers import HeaderPolicy, compile_patterns

    policy = HeaderPolicy(compile_patterns([".*"]))  # even a pattern that matches everything
    got = policy.select([("Connection", "close"), ("TE", "trailers"), ("Host", "evil"), ("Proxy-Authorization", "x"),
                         ("X-A", "1"), ("traceparent", "t")])
    assert got == [("X-A", "1"), ("traceparent", "t"), ("Content-Type", "application/json")]
    # KServe: the incoming Content-Type travels only when a pattern propagates it, else JSON is declared
    assert HeaderPolicy().select([("content-type", "text/csv")]) == [("Content-Type", "application/json")]
    propagated = HeaderPolicy(compile_patterns(["Content-Type"]))
    assert propagated.select([("content-type", "text/csv")]) == [("Content-Type", "text/csv")]


async def test_a_callers_deadline_bounds_the_graph() -> None:
    """router.run(deadline=...) (the gRPC front's deadline): the earlier of it and the graph timeout wins."""
    spec = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceName": "a", "name": "stuck"}]}},
            "timeout": 30}
    async with GraphRouter.from_spec(spec, services={"a": Fake({"x": 1}, delay=5)}) as router:
        g = router.graphs["graph"]
        loop = asyncio.get_running_loop()
        start = loop.time()
        res = await router.run(g, b"{}", [], deadline=start + 0.2)
        assert loop.time() - start < 3
    assert res.status == 504
    assert res.json()["cause"] == "the caller's deadline exceeded while node 'root' step 'stuck' was running"
    assert res.error is not None and res.error.code == "timeout"


# --- compiling -----------------------------------------------------------------------------------


def test_compiled_graph_is_data_nested_nodes_built_first() -> None:
    """Each node is built whole (frozen), its nested node bound before it; the engine dispatches on the type."""
    import dataclasses

    from graph_router.compiler import Resolver, compile_graph
    from graph_router.loader import load_graph_json
    from graph_router.spec import RouterType

    doc = load_graph_json(orjson.dumps({"nodes": {
        "root": {"routerType": "Sequence", "steps": [{"nodeName": "inner"}, {"serviceName": "b", "name": "last"}]},
        "inner": {"routerType": "Splitter", "steps": [{"serviceName": "a", "weight": 30},
                                                       {"serviceName": "b", "weight": 70}]},
    }}).decode())
    g = compile_graph(doc, Resolver(services={"a": lambda body, h: 1, "b": lambda body, h: 2}))
    assert list(g.nodes) == ["root", "inner"]  # document order
    assert g.root.steps[0].node is g.nodes["inner"]
    assert g.nodes["inner"].router_type is RouterType.SPLITTER
    assert g.nodes["inner"].cumulative == (30, 100)
    assert g.root.keys == ("0", "last")
    assert [s.route_entry for s in g.root.steps] == ["root>0:inner", "root>last:b"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.root.steps = ()  # type: ignore[misc]


def test_a_cycle_in_a_document_built_by_hand_is_a_spec_error() -> None:
    from graph_router.compiler import Resolver, compile_graph
    from graph_router.errors import SpecError
    from graph_router.spec import GraphDocument, GraphSpec

    spec = GraphSpec.model_validate({"nodes": {"root": {"routerType": "Sequence", "steps": [{"nodeName": "a"}]},
                                               "a": {"routerType": "Sequence", "steps": [{"nodeName": "root"}]}}})
    with pytest.raises(SpecError, match=r"nodes\.root: nodes form a cycle"):
        compile_graph(GraphDocument(name="g", spec=spec), Resolver())
