"""KServe's own Python client (``InferenceRESTClient``, InferenceGraph mode) calling a served router."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from ..support.router import RouterProcess
from .conftest import SKIP_REASON, ModelServerProcess, import_kserve

kserve = import_kserve()
httpx = pytest.importorskip("httpx", reason=SKIP_REASON)
np = pytest.importorskip("numpy", reason=SKIP_REASON)
pytestmark = pytest.mark.interop

CHAIN = Path(__file__).parent / "graphs" / "v2-chain.yaml"
NO_ROUTE = {"error": "Failed to process request", "cause": "None of the routes matched with the switch condition"}
SEQUENCE_V1 = {
    "nodes": {
        "root": {
            "routerType": "Sequence",
            "steps": [
                {"serviceName": "doubler"},
                {"serviceName": "tripler", "data": "$response", "mapPredictionsToInstances": True},
            ],
        }
    }
}
SWITCH_ENSEMBLE_V1 = {
    "nodes": {
        "root": {
            "routerType": "Switch",
            "steps": [
                {"serviceName": "doubler", "condition": '[@this].#(task=="double")'},
                {"nodeName": "avg", "condition": '[@this].#(task=="average")'},
            ],
        },
        "avg": {
            "routerType": "Ensemble",
            "aggregate": "mean",
            "steps": [{"serviceName": "doubler"}, {"serviceName": "tripler"}],
        },
    }
}

Serve = Callable[..., RouterProcess]


@pytest.fixture
def serve(models: ModelServerProcess, router_process: Callable[..., RouterProcess]) -> Serve:
    """Start ``graph-router serve`` for a graph (a spec dict, or a file) bound to the kserve models."""

    def start(graph: dict[str, Any] | Path, env: dict[str, str] | None = None) -> RouterProcess:
        flags = [f"--service={name}={url}" for name, url in models.services().items()]
        source = [str(graph)] if isinstance(graph, Path) else ["--graph-json", orjson.dumps(graph).decode()]
        return router_process(*source, *flags, env=env)

    return start


@pytest.fixture
async def v1_client() -> AsyncIterator[Any]:
    async with kserve.InferenceRESTClient(kserve.RESTConfig(protocol="v1", timeout=10)) as client:
        yield client


@pytest.fixture
async def v2_client() -> AsyncIterator[Any]:
    async with kserve.InferenceRESTClient(kserve.RESTConfig(protocol="v2", timeout=10)) as client:
        yield client


async def test_v1_client_sequence_with_propagated_headers(
    serve: Serve, v1_client: Any, models: ModelServerProcess
) -> None:
    rp = serve(SEQUENCE_V1, env={"PROPAGATE_HEADERS": "X-Request-Id,X-Tenant"})
    response_headers: dict[str, str] = {}
    out = await v1_client.infer(
        rp.url,
        {"instances": [1, 2.5]},
        headers={"X-Request-Id": "req-7", "X-Tenant": "acme", "X-Secret": "s"},
        response_headers=response_headers,
        is_graph_endpoint=True,
    )
    assert out == {"predictions": [6, 15.0]}
    assert response_headers["content-type"] == "application/json"
    assert response_headers["x-graph-route"] == "root>0:doubler,root>1:tripler"
    expected_headers = {"content-type": "application/json", "x-request-id": "req-7", "x-tenant": "acme"}
    assert [s["headers"] for s in models.seen("doubler")] == [expected_headers]
    assert [s["headers"] for s in models.seen("tripler")] == [expected_headers]


@pytest.mark.parametrize(
    ("task", "expected"),
    [("double", {"predictions": [2, 8]}), ("average", {"predictions": [2.5, 10.0]})],
)
async def test_v1_client_switch_and_ensemble(serve: Serve, v1_client: Any, task: str, expected: Any) -> None:
    rp = serve(SWITCH_ENSEMBLE_V1)
    out = await v1_client.infer(rp.url, {"task": task, "instances": [1, 4]}, is_graph_endpoint=True)
    assert out == expected


async def test_v2_client_infer_request_through_the_v2_chain(
    serve: Serve, v2_client: Any, models: ModelServerProcess
) -> None:
    rp = serve(CHAIN)
    raw = kserve.InferInput("raw", [2, 3], "FP32")
    raw.set_data_from_numpy(np.array([[1, 2, 3], [4, 5, 16.5]], dtype=np.float32), binary_data=False)
    request = kserve.InferRequest(
        model_name="v2-chain", infer_inputs=[raw], request_id="client-1", parameters={"tenant": "c"}
    )
    out = await v2_client.infer(rp.url, request, is_graph_endpoint=True)
    # graph mode returns the parsed JSON; kserve's own response type reads it back
    response = kserve.InferResponse.from_rest(out)
    assert response.id == "client-1"
    assert [(o.name, o.shape, o.datatype) for o in response.outputs] == [
        ("label", [2], "INT64"),
        ("total", [2], "FP32"),
    ]
    np.testing.assert_array_equal(response.outputs[0].as_numpy(), np.array([0, 1], dtype=np.int64))
    np.testing.assert_array_equal(response.outputs[1].as_numpy(), np.array([3.0, 12.75], dtype=np.float32))
    (seen,) = models.seen("scaler")
    assert seen["body"]["parameters"] == {"tenant": "c"}
    assert seen["body"]["inputs"][0]["data"] == [1, 2, 3, 4, 5, 16.5]


async def test_client_sees_the_router_error_envelope(serve: Serve, v1_client: Any) -> None:
    rp = serve(SWITCH_ENSEMBLE_V1)
    with pytest.raises(httpx.HTTPStatusError) as info:
        await v1_client.infer(rp.url, {"task": "explain", "instances": [1]}, is_graph_endpoint=True)
    assert info.value.response.status_code == 404
    assert info.value.response.json() == NO_ROUTE
    # the client lifts "error" out of a JSON error body into its message
    assert str(info.value) == f"Failed to process request, '404 Not Found' for url '{rp.url}'"


async def test_client_sees_the_model_servers_own_error(serve: Serve, v1_client: Any) -> None:
    rp = serve(SEQUENCE_V1)
    with pytest.raises(httpx.HTTPStatusError) as info:
        await v1_client.infer(rp.url, {"instances": ["a"]}, is_graph_endpoint=True)
    assert info.value.response.status_code == 400
    assert str(info.value) == (
        f"tripler: expected 'instances' to be a list of numbers, '400 Bad Request' for url '{rp.url}'"
    )


def binary_request() -> Any:
    raw = kserve.InferInput("raw", [1, 2], "FP32")
    raw.set_data_from_numpy(np.array([[1, 2]], dtype=np.float32), binary_data=True)
    return kserve.InferRequest(model_name="scaler", infer_inputs=[raw], request_id="bin-1")


SCALE = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceName": "scaler"}]}}}


async def test_v2_binary_tensors_with_their_headers_propagated(
    serve: Serve, v2_client: Any, models: ModelServerProcess
) -> None:
    rp = serve(SCALE, env={"PROPAGATE_HEADERS": "Content-Type,Inference-Header-Content-Length"})
    out = await v2_client.infer(rp.url, binary_request(), is_graph_endpoint=True)
    assert out["id"] == "bin-1" and out["outputs"][0]["data"] == [0.5, 1.0]
    (seen,) = models.seen("scaler")
    assert seen["body"]["inputs"][0]["data"] == [1.0, 2.0]
    assert seen["headers"]["content-type"] == "application/octet-stream"


async def test_v2_binary_tensors_without_their_headers(
    serve: Serve, v2_client: Any, models: ModelServerProcess
) -> None:
    """As KServe's router: unpropagated, the body goes out as application/json and the model server refuses it."""
    rp = serve(SCALE)
    with pytest.raises(httpx.HTTPStatusError) as info:
        await v2_client.infer(rp.url, binary_request(), is_graph_endpoint=True)
    assert info.value.response.status_code == 400
    assert info.value.response.json() == {"detail": "There was an error parsing the body"}
    assert models.seen("scaler") == []
