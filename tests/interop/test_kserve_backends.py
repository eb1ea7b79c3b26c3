"""Sequence, Switch and Ensemble graphs over real ``kserve.Model`` backends (v1 and v2 protocol)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from graph_router import GraphRouter

from ..support.router import RouterProcess
from .conftest import ModelServerProcess, import_kserve

import_kserve()
pytestmark = pytest.mark.interop

NO_ROUTE = {"error": "Failed to process request", "cause": "None of the routes matched with the switch condition"}


def seq(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"nodes": {"root": {"routerType": "Sequence", "steps": list(steps)}}}


async def run(models: ModelServerProcess, spec: dict[str, Any], body: Any) -> tuple[int, bytes, str]:
    # an unknown serviceName would resolve to a cluster address and hang on DNS: fail fast instead
    names = {s["serviceName"] for n in spec["nodes"].values() for s in n["steps"] if "serviceName" in s}
    assert names <= models.services().keys(), names - models.services().keys()
    async with GraphRouter.from_spec(spec, services=models.services()) as router:
        res = await router.infer(body)
    return res.status, res.body, res.route


# --- Sequence ----------------------------------------------------------------------------------


async def test_sequence_response_feeds_next_model(models: ModelServerProcess) -> None:
    spec = seq(
        {"serviceName": "doubler"}, {"serviceName": "tripler", "data": "$response", "mapPredictionsToInstances": True}
    )
    status, body, route = await run(models, spec, {"instances": [1, 2.5]})
    assert (status, body) == (200, b'{"predictions":[6,15.0]}')
    assert route == "root>0:doubler,root>1:tripler"
    assert [s["body"] for s in models.seen("tripler")] == [{"instances": [2, 5.0]}]
    assert models.seen("doubler")[0]["headers"] == {"content-type": "application/json"}


async def test_sequence_request_goes_to_every_step(models: ModelServerProcess) -> None:
    spec = seq({"serviceName": "doubler"}, {"serviceName": "tripler", "data": "$request"})
    status, body, _ = await run(models, spec, {"instances": [1, 2.5]})
    assert (status, body) == (200, b'{"predictions":[3,7.5]}')
    assert [s["body"] for s in models.seen("doubler")] == [{"instances": [1, 2.5]}]
    assert [s["body"] for s in models.seen("tripler")] == [{"instances": [1, 2.5]}]


@pytest.mark.parametrize(
    ("x", "expected", "classified"),
    [
        (2, {"predictions": [4]}, False),
        (6, {"predictions": [{"label": "high", "score": 12}]}, True),
    ],
)
async def test_sequence_condition_on_previous_response(
    models: ModelServerProcess, x: int, expected: dict[str, Any], classified: bool
) -> None:
    spec = seq(
        {"serviceName": "doubler"},
        {
            "serviceName": "thresholder",
            "data": "$response",
            "mapPredictionsToInstances": True,
            "condition": "[@this].#(predictions.0>10)",
        },
    )
    status, body, _ = await run(models, spec, {"instances": [x]})
    assert (status, orjson.loads(body)) == (200, expected)
    assert len(models.seen("thresholder")) == int(classified)


# --- Switch ------------------------------------------------------------------------------------

SWITCH_V1 = {
    "nodes": {
        "root": {
            "routerType": "Switch",
            "steps": [
                {"serviceName": "doubler", "condition": '[@this].#(task=="double")'},
                {"serviceName": "thresholder", "condition": '[@this].#(task=="classify")'},
            ],
        }
    }
}


async def test_switch_v1_picks_the_model_and_sends_the_body_verbatim(models: ModelServerProcess) -> None:
    status, body, route = await run(models, SWITCH_V1, {"task": "classify", "instances": [3, 30]})
    assert (status, orjson.loads(body)) == (
        200,
        {"predictions": [{"label": "low", "score": 3}, {"label": "high", "score": 30}]},
    )
    assert route == "root>1:thresholder"
    assert [s["body"] for s in models.seen("thresholder")] == [{"task": "classify", "instances": [3, 30]}]
    assert models.seen("doubler") == []


async def test_switch_without_a_match_is_404_and_calls_nothing(models: ModelServerProcess) -> None:
    status, body, _ = await run(models, SWITCH_V1, {"task": "explain", "instances": [3]})
    assert (status, orjson.loads(body)) == (404, NO_ROUTE)
    assert models.seen("doubler") == models.seen("thresholder") == []


async def test_switch_v2_on_input_names(models: ModelServerProcess) -> None:
    spec = {
        "nodes": {
            "root": {
                "routerType": "Switch",
                "steps": [
                    {"serviceName": "scaler", "condition": 'inputs.#(name=="raw")'},
                    {"serviceName": "classifier", "condition": 'inputs.#(name=="features")'},
                ],
            }
        }
    }
    req = {"id": "sw-1", "inputs": [{"name": "features", "shape": [1, 2], "datatype": "FP32", "data": [4, 8.5]}]}
    status, body, route = await run(models, spec, req)
    assert status == 200 and route == "root>1:classifier"
    assert orjson.loads(body) == {
        "model_name": "classifier",
        "model_version": None,
        "id": "sw-1",
        "parameters": None,
        "outputs": [
            {"name": "label", "shape": [1], "datatype": "INT64", "parameters": None, "data": [1]},
            {"name": "total", "shape": [1], "datatype": "FP32", "parameters": None, "data": [12.5]},
        ],
    }
    assert models.seen("scaler") == []


# --- Ensemble ----------------------------------------------------------------------------------


async def test_ensemble_merge_keeps_each_model_answer_exactly(models: ModelServerProcess) -> None:
    spec = {
        "nodes": {
            "root": {
                "routerType": "Ensemble",
                "steps": [{"name": "double", "serviceName": "doubler"}, {"serviceName": "thresholder"}],
            }
        }
    }
    status, body, _ = await run(models, spec, {"instances": [1, 12.5]})
    direct = [models.post(models.v1(m), b'{"instances": [1, 12.5]}')[1] for m in ("doubler", "thresholder")]
    assert status == 200
    assert body == b'{"double":' + direct[0] + b',"1":' + direct[1] + b"}"
    assert orjson.loads(body) == {
        "double": {"predictions": [2, 25.0]},
        "1": {"predictions": [{"label": "low", "score": 1}, {"label": "high", "score": 12.5}]},
    }


async def test_ensemble_mean_over_v1_predictions(models: ModelServerProcess) -> None:
    spec = {
        "nodes": {
            "root": {
                "routerType": "Ensemble",
                "aggregate": "mean",
                "steps": [{"serviceName": "doubler"}, {"serviceName": "tripler"}],
            }
        }
    }
    status, body, _ = await run(models, spec, {"instances": [1, 2, -4]})
    assert (status, orjson.loads(body)) == (200, {"predictions": [2.5, 5.0, -10.0]})


async def test_ensemble_mean_over_v2_outputs(models: ModelServerProcess) -> None:
    spec = {
        "nodes": {
            "root": {
                "routerType": "Ensemble",
                "aggregate": "mean",
                "steps": [{"serviceName": "scaler"}, {"serviceName": "scaler2"}],
            }
        }
    }
    req = {"id": "e-1", "inputs": [{"name": "raw", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4.5]}]}
    status, body, _ = await run(models, spec, req)
    # 0.5 x and 1.5 x average to x
    assert (status, orjson.loads(body)) == (
        200,
        {
            "id": "e-1",
            "outputs": [{"name": "features", "shape": [2, 2], "datatype": "FP64", "data": [1.0, 2.0, 3.0, 4.5]}],
        },
    )


@pytest.mark.parametrize("dependency", ["Soft", "Hard"])
async def test_ensemble_with_a_failing_model(models: ModelServerProcess, dependency: str) -> None:
    spec = {
        "nodes": {
            "root": {
                "routerType": "Ensemble",
                "steps": [{"serviceName": "doubler"}, {"serviceUrl": models.v1("nosuch"), "dependency": dependency}],
            }
        }
    }
    status, body, _ = await run(models, spec, {"instances": [1]})
    kserve_404 = models.post(models.v1("nosuch"), b'{"instances": [1]}')
    assert kserve_404 == (404, b'{"error":"Model with name nosuch does not exist."}')
    if dependency == "Soft":  # a soft failure is a value in the merged answer, as in KServe
        assert (status, body) == (200, b'{"0":{"predictions":[2]},"1":' + kserve_404[1] + b"}")
    else:
        assert (status, body) == kserve_404


# --- errors from the real model server ----------------------------------------------------------

BAD = [
    pytest.param("v1", "doubler", b"not json", 400, id="v1-not-json"),
    pytest.param("v1", "doubler", b'{"instances": ["a"]}', 400, id="v1-invalid-input"),
    pytest.param("v1", "nosuch", b'{"instances": [1]}', 404, id="v1-unknown-model"),
    pytest.param(
        "v2",
        "scaler",
        b'{"inputs": [{"name": "raw", "shape": [2, 2], "datatype": "FP32", "data": [1]}]}',
        500,
        id="v2-bad-shape",
    ),
    pytest.param("v2", "scaler", b'{"inputs": 3}', 422, id="v2-not-a-request"),
]


@pytest.mark.parametrize("dependency", ["Soft", "Hard"])
@pytest.mark.parametrize(("protocol", "model", "raw", "code"), BAD)
async def test_model_server_error_is_passed_through_exactly(
    models: ModelServerProcess, dependency: str, protocol: str, model: str, raw: bytes, code: int
) -> None:
    url = models.v1(model) if protocol == "v1" else models.v2(model)
    expected = models.post(url, raw)
    assert expected[0] == code, expected  # what KServe itself answers
    spec = seq({"serviceUrl": url, "dependency": dependency})
    status, body, _ = await run(models, spec, raw)
    assert (status, body) == expected


async def test_soft_failure_continues_with_the_error_body(models: ModelServerProcess) -> None:
    spec = seq({"serviceName": "doubler"}, {"serviceName": "tripler", "data": "$response"})
    status, body, _ = await run(models, spec, {"instances": ["a"]})
    doubler_error = {"error": "doubler: expected 'instances' to be a list of numbers"}
    assert [s["body"] for s in models.seen("tripler")] == [doubler_error]
    assert (status, orjson.loads(body)) == (400, {"error": "tripler: expected 'instances' to be a list of numbers"})


async def test_hard_failure_stops_the_sequence(models: ModelServerProcess) -> None:
    spec = seq({"serviceName": "doubler", "dependency": "Hard"}, {"serviceName": "tripler", "data": "$response"})
    status, body, route = await run(models, spec, {"instances": ["a"]})
    assert (status, body) == (400, b'{"error":"doubler: expected \'instances\' to be a list of numbers"}')
    assert route == "root>0:doubler"
    assert models.seen("tripler") == []


async def test_a_slow_model_times_out_and_the_model_server_keeps_serving(models: ModelServerProcess) -> None:
    spec = seq({"name": "slow", "serviceName": "sleeper", "timeout": 0.3})
    async with GraphRouter.from_spec(spec, services=models.services()) as router:
        res = await router.infer({"instances": [1]})
        assert res.status == 504
        cause = f"step timeout of 0.3s exceeded calling {models.v1('sleeper')}"
        assert res.json() == {"error": "Failed to process request", "cause": cause}
        assert ("X-Graph-Error-Step", "slow") in res.headers
        res = await router.infer({"instances": [0]})
        assert (res.status, res.json()) == (200, {"predictions": [0]})
    assert [s["body"] for s in models.seen("sleeper")] == [{"instances": [1]}, {"instances": [0]}]


# --- the same through a real `graph-router serve` process --------------------------------------


def test_served_router_over_kserve_models(
    models: ModelServerProcess, router_process: Callable[..., RouterProcess]
) -> None:
    spec = {
        "nodes": {
            "root": {
                "routerType": "Sequence",
                "steps": [
                    {"serviceName": "doubler"},
                    {"nodeName": "both", "data": "$response", "mapPredictionsToInstances": True},
                ],
            },
            "both": {
                "routerType": "Ensemble",
                "steps": [{"name": "mean", "nodeName": "avg"}, {"name": "label", "serviceName": "thresholder"}],
            },
            "avg": {
                "routerType": "Ensemble",
                "aggregate": "mean",
                "steps": [{"serviceName": "doubler"}, {"serviceName": "tripler"}],
            },
        }
    }
    flags = [f"--service={name}={url}" for name, url in models.services().items()]
    rp = router_process("--graph-json", orjson.dumps(spec).decode(), *flags)
    status, body = models.post(rp.url, b'{"instances": [1, 3]}')
    # doubler: [2, 6]; then mean(2x, 3x) = 2.5x and the labels of [2, 6]
    assert (status, orjson.loads(body)) == (
        200,
        {
            "mean": {"predictions": [5.0, 15.0]},
            "label": {"predictions": [{"label": "low", "score": 2}, {"label": "low", "score": 6}]},
        },
    )
    assert [s["body"] for s in models.seen("tripler")] == [{"instances": [2, 6]}]
