"""v2 chaining (KServe #3051): ``mapOutputsToInputs`` between two real kserve v2 models."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from graph_router import GraphRouter

from ..support.router import RouterProcess
from .conftest import ModelServerProcess, import_kserve

import_kserve()
pytestmark = pytest.mark.interop

CHAIN = Path(__file__).parent / "graphs" / "v2-chain.yaml"


def raw_request(shape: list[int], data: list[float], **extra: Any) -> dict[str, Any]:
    return {**extra, "inputs": [{"name": "raw", "shape": shape, "datatype": "FP32", "data": data}]}


def classified(request_id: str, labels: list[int], totals: list[float]) -> dict[str, Any]:
    """The classifier's v2 response, as kserve's model server writes it."""
    n = len(labels)
    return {
        "model_name": "classifier",
        "model_version": None,
        "id": request_id,
        "parameters": None,
        "outputs": [
            {"name": "label", "shape": [n], "datatype": "INT64", "parameters": None, "data": labels},
            {"name": "total", "shape": [n], "datatype": "FP32", "parameters": None, "data": totals},
        ],
    }


# values chosen to be exact in FP32, so data can be compared with ==
CASES = [
    pytest.param([2, 2], [1, 2, 30, 4.5], [0.5, 1.0, 15.0, 2.25], [0, 1], [1.5, 17.25], id="2x2"),
    pytest.param([1, 4], [2, 4, 6, 8], [1.0, 2.0, 3.0, 4.0], [0], [10.0], id="1x4"),
    pytest.param([3, 1], [30, 1, -2], [15.0, 0.5, -1.0], [1, 0, 0], [15.0, 0.5, -1.0], id="3x1"),
]


@pytest.mark.parametrize(("shape", "data", "scaled", "labels", "totals"), CASES)
async def test_outputs_become_the_next_models_inputs(
    models: ModelServerProcess,
    shape: list[int],
    data: list[float],
    scaled: list[float],
    labels: list[int],
    totals: list[float],
) -> None:
    req = raw_request(shape, data, id="chain-1", parameters={"tenant": "a", "top_k": 2})
    async with GraphRouter.from_file(CHAIN, services=models.services()) as router:
        res = await router.infer(req)
    assert (res.status, res.route) == (200, "root>scale:scaler,root>classify:classifier")
    assert res.json() == classified("chain-1", labels, totals)
    assert [s["body"] for s in models.seen("scaler")] == [
        {
            "id": "chain-1",
            "parameters": {"tenant": "a", "top_k": 2},
            "inputs": [{"name": "raw", "shape": shape, "datatype": "FP32", "data": data, "parameters": {}}],
        }
    ]
    # the scaler's response, as a request: its id and (response) parameters carried over, the tensor
    # renamed by the model itself ("features"), shape / datatype / data / tensor parameters kept
    assert [s["body"] for s in models.seen("classifier")] == [
        {
            "id": "chain-1",
            "parameters": {"scaled_by": "0.5"},
            "inputs": [
                {
                    "name": "features",
                    "shape": shape,
                    "datatype": "FP32",
                    "data": scaled,
                    "parameters": {"unit": "scaled"},
                }
            ],
        }
    ]


async def test_three_models_chained(models: ModelServerProcess) -> None:
    """The classifier answers ``parameters: null``; the third model gets that, and INT64 and FP32 tensors."""
    spec = {
        "nodes": {
            "root": {
                "routerType": "Sequence",
                "steps": [
                    {"serviceName": "scaler"},
                    {"serviceName": "classifier", "data": "$response", "mapOutputsToInputs": True},
                    {"serviceName": "echo", "data": "$response", "mapOutputsToInputs": True},
                ],
            }
        }
    }
    async with GraphRouter.from_spec(spec, services=models.services()) as router:
        res = await router.infer(raw_request([2, 2], [1, 2, 30, 4.5], id="three"))
    assert [s["body"] for s in models.seen("echo")] == [
        {
            "id": "three",
            "parameters": None,
            "inputs": [
                {"name": "label", "shape": [2], "datatype": "INT64", "data": [0, 1], "parameters": {}},
                {"name": "total", "shape": [2], "datatype": "FP32", "data": [1.5, 17.25], "parameters": {}},
            ],
        }
    ]
    out = res.json()
    assert (res.status, out["model_name"], out["id"]) == (200, "echo", "three")
    assert [(o["name"], o["datatype"], o["data"]) for o in out["outputs"]] == [
        ("label", "INT64", [0, 1]),
        ("total", "FP32", [1.5, 17.25]),
    ]


async def test_every_datatype_survives_the_mapping(models: ModelServerProcess) -> None:
    tensors = [
        {"name": "ids", "shape": [1, 3], "datatype": "INT64", "data": [1, -2, 9007199254740993]},
        {"name": "words", "shape": [2], "datatype": "BYTES", "data": ["héllo", ""]},
        {"name": "mask", "shape": [2, 1], "datatype": "BOOL", "data": [True, False]},
        {"name": "x", "shape": [1], "datatype": "FP32", "data": [0.25]},
    ]
    spec = {
        "nodes": {
            "root": {
                "routerType": "Sequence",
                "steps": [
                    {"serviceName": "echo"},
                    {"serviceName": "echo", "data": "$response", "mapOutputsToInputs": True},
                ],
            }
        }
    }
    async with GraphRouter.from_spec(spec, services=models.services()) as router:
        res = await router.infer({"id": "types", "inputs": tensors})
    first, second = (s["body"] for s in models.seen("echo"))
    assert first == second == {"id": "types", "parameters": None, "inputs": [{**t, "parameters": {}} for t in tensors]}
    assert res.status == 200
    assert [{k: o[k] for k in ("name", "shape", "datatype", "data")} for o in res.json()["outputs"]] == tensors


async def test_a_large_tensor_through_the_chain(models: ModelServerProcess) -> None:
    n = 300  # 90 000 FP32 values, about 350 kB of JSON each way
    data = [float(i % 7) for i in range(n * n)]
    spec = {
        "nodes": {
            "root": {
                "routerType": "Sequence",
                "steps": [
                    {"serviceName": "scaler"},
                    {"serviceName": "echo", "data": "$response", "mapOutputsToInputs": True},
                ],
            }
        }
    }
    async with GraphRouter.from_spec(spec, services=models.services()) as router:
        res = await router.infer(raw_request([n, n], data, id="big"))
    assert res.status == 200
    (out,) = res.json()["outputs"]
    assert (out["name"], out["shape"], out["datatype"]) == ("features", [n, n], "FP32")
    assert out["data"] == [x * 0.5 for x in data]


async def test_the_id_the_first_model_made_up_is_carried_over(models: ModelServerProcess) -> None:
    async with GraphRouter.from_file(CHAIN, services=models.services()) as router:
        res = await router.infer(raw_request([1, 2], [4, 8]))
    assert res.status == 200
    (scaler_seen,) = models.seen("scaler")
    (classifier_seen,) = models.seen("classifier")
    assert scaler_seen["body"]["id"] is None
    made_up = classifier_seen["body"]["id"]
    assert isinstance(made_up, str) and len(made_up) == 36  # kserve's uuid4 for the scaler's response
    assert res.json() == classified(made_up, [0], [6.0])


async def test_without_the_mapping_the_real_classifier_rejects_a_response(models: ModelServerProcess) -> None:
    """The control: a v2 response is not a v2 request; kserve answers 422 and the Soft step passes it on."""
    spec = {
        "nodes": {
            "root": {
                "routerType": "Sequence",
                "steps": [{"serviceName": "scaler"}, {"serviceName": "classifier", "data": "$response"}],
            }
        }
    }
    req = raw_request([1, 2], [4, 8], id="no-map")
    async with GraphRouter.from_spec(spec, services=models.services()) as router:
        res = await router.infer(req)
    scaler_answer = models.post(models.v2("scaler"), orjson.dumps(req))
    assert scaler_answer[0] == 200
    assert (res.status, res.body) == models.post(models.v2("classifier"), scaler_answer[1])
    assert res.status == 422 and orjson.loads(res.body)["detail"][0]["loc"] == ["body", "InferenceRequest", "inputs"]
    assert models.seen("classifier") == []  # kserve refused it before the model saw it


def test_served_chain(models: ModelServerProcess, router_process: Callable[..., RouterProcess]) -> None:
    flags = [f"--service={name}={url}" for name, url in models.services().items()]
    rp = router_process(str(CHAIN), *flags)
    req = raw_request([2, 2], [1, 2, 30, 4.5], id="served-1", parameters={"tenant": "b"})
    status, body = models.post(rp.url, orjson.dumps(req))
    assert (status, orjson.loads(body)) == (200, classified("served-1", [0, 1], [1.5, 17.25]))
    assert [s["body"]["parameters"] for s in models.seen("classifier")] == [{"scaled_by": "0.5"}]
