"""The example model host over real HTTP (port 0): every model's exact answers, v1 and v2, errors."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from graph_router.modelhost import EXAMPLE_MODELS, InvalidInput, Model, ModelHost, example_models
from graph_router.modelhost.cli import parse_names

ROOT = Path(__file__).resolve().parents[2]

# Real iris rows: setosa (all agree), then three hard rows the classifiers disagree on.
ROWS = [[5.1, 3.5, 1.4, 0.2], [5.9, 3.2, 4.8, 1.8], [4.9, 2.5, 4.5, 1.7], [7.2, 3.0, 5.8, 1.6]]


@pytest.fixture
async def host() -> AsyncIterator[ModelHost]:
    async with ModelHost(example_models()) as h:
        yield h


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        yield s


async def post(http: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with http.post(url, data=data, headers={"Content-Type": "application/json"}) as r:
        return r.status, orjson.loads(await r.read())


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url) as r:
        return r.status, orjson.loads(await r.read())


async def predict(http: aiohttp.ClientSession, host: ModelHost, model: str, body: Any) -> tuple[int, Any]:
    return await post(http, host.url_for(model, protocol="v1"), body)


# --- v1: status and the iris classifiers --------------------------------------------------------


@pytest.mark.parametrize("name", list(EXAMPLE_MODELS))
async def test_every_model_reports_ready(host: ModelHost, http: aiohttp.ClientSession, name: str) -> None:
    assert await get(http, f"{host.base_url}/v1/models/{name}") == (200, {"name": name, "ready": True})
    assert await get(http, f"{host.base_url}/v2/models/{name}/ready") == (200, {"name": name, "ready": True})


async def test_model_list(host: ModelHost, http: aiohttp.ClientSession) -> None:
    assert await get(http, f"{host.base_url}/v1/models") == (200, {"models": list(EXAMPLE_MODELS)})


@pytest.mark.parametrize(
    ("name", "classes", "probabilities"),
    [
        (
            "sklearn-iris",
            [0, 2, 1, 2],
            [
                [0.9652, 0.0348, 0.0],
                [0.031, 0.4269, 0.5421],
                [0.0314, 0.5785, 0.3901],
                [0.0013, 0.3296, 0.6691],
            ],
        ),
        (
            "xgboost-iris",
            [0, 1, 1, 1],
            [
                [0.7885, 0.1759, 0.0355],
                [0.1199, 0.44, 0.44],
                [0.0651, 0.8761, 0.0589],
                [0.1021, 0.5589, 0.339],
            ],
        ),
        (
            "lightgbm-iris",
            [0, 2, 2, 1],
            [
                [0.8079, 0.1476, 0.0445],
                [0.1475, 0.3628, 0.4897],
                [0.2219, 0.3311, 0.4469],
                [0.145, 0.5322, 0.3228],
            ],
        ),
    ],
)
async def test_iris_classifiers(
    host: ModelHost,
    http: aiohttp.ClientSession,
    name: str,
    classes: list[int],
    probabilities: list[list[float]],
) -> None:
    assert await predict(http, host, name, {"instances": ROWS}) == (200, {"predictions": classes})
    body = {"instances": ROWS, "parameters": {"probabilities": True}}
    assert await predict(http, host, name, body) == (200, {"predictions": probabilities})


async def test_sklearn_iris_matches_the_logistic_regression_by_hand(
    host: ModelHost, http: aiohttp.ClientSession
) -> None:
    # scores for the setosa row: 4.75, 1.428, -6.141 -> softmax 0.96517, 0.03482, 0.00002
    body = {"instances": [ROWS[0]], "parameters": {"probabilities": True}}
    status, answer = await predict(http, host, "sklearn-iris", body)
    assert status == 200
    assert answer == {"predictions": [[0.9652, 0.0348, 0.0]]}


async def test_preprocessor_classifier_postprocessor(host: ModelHost, http: aiohttp.ClientSession) -> None:
    scaled = [
        [-0.9006, 1.0322, -1.3413, -1.313],
        [0.0687, 0.3379, 0.5922, 0.7906],
        [-1.143, -1.2821, 0.4216, 0.6591],
        [1.6439, -0.125, 1.1608, 0.5276],
    ]
    assert await predict(http, host, "preprocessor", {"instances": ROWS}) == (200, {"predictions": scaled})
    # the classifier on standardised rows agrees with sklearn-iris on raw rows
    assert await predict(http, host, "classifier", {"instances": scaled}) == (
        200,
        {"predictions": [0, 2, 1, 2]},
    )
    status, answer = await predict(http, host, "postprocessor", {"instances": [0, 2, 1, [0.1, 0.2, 0.7]]})
    assert status == 200
    assert answer == {
        "predictions": [
            {"class": "setosa", "label": 0},
            {"class": "virginica", "label": 2},
            {"class": "versicolor", "label": 1},
            {"class": "virginica", "label": 2},
        ]
    }


async def test_feature_transformer_and_result_formatter(host: ModelHost, http: aiohttp.ClientSession) -> None:
    records = [
        {"sepal_length": 59, "sepal_width": 32, "petal_length": 48, "petal_width": 18, "unit": "mm"},
        {"sepal_length": 2, "sepal_width": 1, "petal_length": 0.5, "petal_width": 0.1, "unit": "in"},
        {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},
    ]
    expected = [[5.9, 3.2, 4.8, 1.8], [5.08, 2.54, 1.27, 0.254], [5.1, 3.5, 1.4, 0.2]]
    assert await predict(http, host, "feature-transformer", {"instances": records}) == (
        200,
        {"predictions": expected},
    )
    assert await predict(http, host, "result-formatter", {"instances": [2, 0, 2]}) == (
        200,
        {
            "predictions": [
                {"species": "Iris-virginica", "label": 2},
                {"species": "Iris-setosa", "label": 0},
                {"species": "Iris-virginica", "label": 2},
            ],
            "summary": {"setosa": 1, "versicolor": 0, "virginica": 2},
        },
    )


# --- v1: animals and A/B ------------------------------------------------------------------------

DETECTIONS = [
    {"label": "dog", "score": 0.83},
    {"label": "cat", "score": 0.81},
    {"label": "bird", "score": 0.85},
    {"label": "other", "score": 0.97},
    {"label": "dog", "score": 1.0},
    {"label": "dog", "score": 0.56},
]


async def test_animal_detector_on_features(host: ModelHost, http: aiohttp.ClientSession) -> None:
    features = [
        [22, 11, 0, 2.5],
        [3.5, 5, 0, 8],
        [0.2, 0.5, 22, 0],
        [500, 20, 0, 0],
        [20, 10, 0, 3],
        [12, 8, 0, 5],
    ]
    assert await predict(http, host, "animal-detector", {"instances": features}) == (
        200,
        {"predictions": DETECTIONS},
    )


async def test_animal_detector_on_images(host: ModelHost, http: aiohttp.ClientSession) -> None:
    images = [{"image": name} for name in ("dog.jpg", "tom.jpg", "tweety.png", "rex.jpg")]
    assert await predict(http, host, "animal-detector", {"instances": images}) == (
        200,
        {
            "predictions": [
                {"label": "dog", "score": 0.82},
                {"label": "cat", "score": 0.74},
                {"label": "bird", "score": 0.82},
                {"label": "other", "score": 0.95},
            ]
        },
    )


@pytest.mark.parametrize(
    ("name", "breeds"),
    [
        ("dog-breed", ["beagle", None, None, None, "labrador", "mixed"]),
        ("cat-breed", [None, "tabby", None, None, None, None]),
        ("bird-breed", [None, None, "sparrow", None, None, None]),
        ("generic-breed", ["unknown"] * 6),
    ],
)
async def test_breed_models_take_the_detector_answer(
    host: ModelHost, http: aiohttp.ClientSession, name: str, breeds: list[str | None]
) -> None:
    expected = {
        "predictions": [
            {"animal": d["label"], "breed": b, "score": d["score"]} for d, b in zip(DETECTIONS, breeds, strict=True)
        ]
    }
    # as a Switch passes the detector's answer on, and as ordinary instances
    assert await predict(http, host, name, {"predictions": DETECTIONS}) == (200, expected)
    assert await predict(http, host, name, {"instances": DETECTIONS}) == (200, expected)


@pytest.mark.parametrize(
    ("name", "answers"),
    [
        (
            "model-a",
            [
                {"sentiment": "positive", "score": 0.67},
                {"sentiment": "neutral", "score": 0.0},
                {"sentiment": "positive", "score": 0.8},
                {"sentiment": "negative", "score": -1.0},
            ],
        ),
        (
            "model-b",
            [
                {"sentiment": "neutral", "score": -0.13},
                {"sentiment": "positive", "score": 0.27},
                {"sentiment": "positive", "score": 1.0},
                {"sentiment": "negative", "score": -1.0},
            ],
        ),
    ],
)
async def test_ab_models_differ_and_say_who_they_are(
    host: ModelHost, http: aiohttp.ClientSession, name: str, answers: list[dict[str, Any]]
) -> None:
    texts = ["good but slow", {"text": "It is fine"}, "I love this, great product!", "terrible, I hate it"]
    assert await predict(http, host, name, {"instances": texts}) == (
        200,
        {"predictions": answers, "model": name},
    )


# --- v2 -----------------------------------------------------------------------------------------


def v2_request(rows: list[list[float]], name: str = "features", **extra: Any) -> dict[str, Any]:
    data = [v for row in rows for v in row]
    return {"inputs": [{"name": name, "shape": [len(rows), 4], "datatype": "FP32", "data": data}], **extra}


async def test_v2_health_and_server_metadata(host: ModelHost, http: aiohttp.ClientSession) -> None:
    assert await get(http, f"{host.base_url}/v2/health/live") == (200, {"live": True})
    assert await get(http, f"{host.base_url}/v2/health/ready") == (200, {"ready": True})
    status, meta = await get(http, f"{host.base_url}/v2")
    assert (status, meta["name"]) == (200, "graph-router-modelhost")


async def test_v2_model_metadata(host: ModelHost, http: aiohttp.ClientSession) -> None:
    assert await get(http, f"{host.base_url}/v2/models/v2-classifier") == (
        200,
        {
            "name": "v2-classifier",
            "versions": ["1"],
            "platform": "graph-router-modelhost",
            "inputs": [{"name": "scaled", "datatype": "FP32", "shape": [-1, 4]}],
            "outputs": [
                {"name": "label", "datatype": "INT64", "shape": [-1]},
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
            ],
        },
    )


async def test_v2_scaler_then_classifier(host: ModelHost, http: aiohttp.ClientSession) -> None:
    body = v2_request(ROWS[:2], id="r-7", parameters={"trace": "t1"})
    status, scaled = await post(http, host.url_for("v2-scaler"), body)
    assert status == 200
    assert scaled == {
        "model_name": "v2-scaler",
        "model_version": "1",
        "id": "r-7",
        "outputs": [
            {
                "name": "scaled",
                "shape": [2, 4],
                "datatype": "FP32",
                "data": [-0.9006, 1.0322, -1.3413, -1.313, 0.0687, 0.3379, 0.5922, 0.7906],
            }
        ],
        "parameters": {"trace": "t1", "scaler": "standard"},
    }
    # nested data is accepted too; the classifier takes its single input whatever its name
    nested = {
        "id": "r-8",
        "inputs": [
            {
                **scaled["outputs"][0],
                "data": [[-0.9006, 1.0322, -1.3413, -1.313], [0.0687, 0.3379, 0.5922, 0.7906]],
            }
        ],
    }
    assert await post(http, host.url_for("v2-classifier"), nested) == (
        200,
        {
            "model_name": "v2-classifier",
            "model_version": "1",
            "id": "r-8",
            "outputs": [
                {"name": "label", "shape": [2], "datatype": "INT64", "data": [0, 2]},
                {
                    "name": "probabilities",
                    "shape": [2, 3],
                    "datatype": "FP32",
                    "data": [0.9651, 0.0349, 0.0, 0.0308, 0.4186, 0.5507],
                },
            ],
        },
    )


async def test_v2_makes_up_an_id_when_missing(host: ModelHost, http: aiohttp.ClientSession) -> None:
    status, answer = await post(http, host.url_for("v2-scaler"), v2_request(ROWS[:1]))
    assert status == 200
    assert str(uuid.UUID(answer["id"])) == answer["id"]


# --- errors (KServe's shapes) -------------------------------------------------------------------


async def test_unknown_model_is_404(host: ModelHost, http: aiohttp.ClientSession) -> None:
    missing = (404, {"error": "Model with name nope does not exist."})
    assert await post(http, f"{host.base_url}/v1/models/nope:predict", {"instances": []}) == missing
    assert await get(http, f"{host.base_url}/v1/models/nope") == missing
    assert await post(http, f"{host.base_url}/v2/models/nope/infer", v2_request(ROWS)) == missing
    assert await get(http, f"{host.base_url}/v2/models/nope") == missing
    assert await get(http, f"{host.base_url}/v2/models/nope/ready") == missing
    assert host.requests == []


@pytest.mark.parametrize(
    ("model", "body", "error"),
    [
        ("sklearn-iris", {"instances": "x"}, 'Expected "instances" to be a list'),
        ("sklearn-iris", [1, 2], 'Expected "instances" to be a list'),
        ("sklearn-iris", {"rows": [[1, 2, 3, 4]]}, 'Expected "instances" to be a list'),
        (
            "sklearn-iris",
            {"instances": [[1, 2, 3]]},
            "instances[0]: expected a list of 4 numbers, got [1, 2, 3]",
        ),
        (
            "sklearn-iris",
            {"instances": [[1, 2, 3, 4]], "parameters": {"probabilities": "yes"}},
            'parameter "probabilities" must be true or false',
        ),
        ("sklearn-iris", {"instances": [], "parameters": [1]}, 'Expected "parameters" to be an object'),
        (
            "postprocessor",
            {"instances": [3]},
            "instances[0]: expected a class index 0-2 or 3 probabilities, got 3",
        ),
        (
            "feature-transformer",
            {"instances": [{"sepal_length": 1, "unit": "ft"}]},
            "instances[0]: unknown unit 'ft' (cm, mm or in)",
        ),
        (
            "feature-transformer",
            {"instances": [{"sepal_length": 1, "sepal_width": 1, "petal_length": 1}]},
            "instances[0]: missing or non-numeric 'petal_width'",
        ),
        (
            "animal-detector",
            {"instances": [{"photo": "x"}]},
            'instances[0]: expected {"image": "<string>"} or 4 numbers',
        ),
        (
            "dog-breed",
            {"instances": [{"score": 1}]},
            'instances[0]: expected a detection {"label": ..., "score": ...}',
        ),
        ("model-a", {"instances": [3]}, 'instances[0]: expected a text or {"text": "..."}'),
        ("v2-scaler", {"instances": [[1, 2, 3, 4]]}, "Model v2-scaler does not support the v1 protocol"),
    ],
)
async def test_v1_bad_input_is_400(
    host: ModelHost, http: aiohttp.ClientSession, model: str, body: Any, error: str
) -> None:
    url = f"{host.base_url}/v1/models/{model}:predict"
    assert await post(http, url, body) == (400, {"error": error})


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"inputs": []}, 'Expected "inputs" to be a non-empty list'),
        ({"inputs": [{"shape": [1], "datatype": "FP32", "data": [1]}]}, "inputs[0]: missing 'name'"),
        (
            {"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3]}]},
            "inputs[0] (features): shape [1, 4] needs 4 elements, got 3",
        ),
        (
            {"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP99", "data": [1, 2, 3, 4]}]},
            "inputs[0] (features): unsupported datatype 'FP99'",
        ),
        (
            {"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, "x", 4]}]},
            "inputs[0] (features): element 'x' is not FP32",
        ),
        (
            {"inputs": [{"name": "features", "shape": [4], "datatype": "FP32", "data": [1, 2, 3, 4]}]},
            "input 'features': expected FP32 with shape [N, 4], got FP32 [4]",
        ),
        ({**v2_request(ROWS), "id": 5}, 'Expected "id" to be a string'),
    ],
)
async def test_v2_bad_input_is_400(host: ModelHost, http: aiohttp.ClientSession, body: Any, error: str) -> None:
    assert await post(http, host.url_for("v2-scaler"), body) == (400, {"error": error})


async def test_not_json_is_400(host: ModelHost, http: aiohttp.ClientSession) -> None:
    for url in (host.url_for("sklearn-iris"), host.url_for("v2-scaler")):
        status, answer = await post(http, url, b"{not json")
        assert status == 400
        # the rest of the message is orjson's
        assert answer["error"].startswith("Unrecognized request format: unexpected character")


async def test_v1_only_model_refuses_v2(host: ModelHost, http: aiohttp.ClientSession) -> None:
    url = f"{host.base_url}/v2/models/sklearn-iris/infer"
    assert await post(http, url, v2_request(ROWS)) == (
        400,
        {"error": "Model sklearn-iris does not support the v2 protocol"},
    )


# --- the library API users write their own models with -----------------------------------------


class Doubler(Model):
    name = "doubler"

    def predict(self, instances: list[Any], parameters: Mapping[str, Any]) -> list[Any]:
        if not all(isinstance(x, int) for x in instances):
            raise InvalidInput("integers only")
        return [2 * x for x in instances]


class Broken(Model):
    name = "broken"

    def predict(self, instances: list[Any], parameters: Mapping[str, Any]) -> list[Any]:
        raise RuntimeError("weights file is corrupt")


async def test_user_model_and_what_it_received(http: aiohttp.ClientSession) -> None:
    async with ModelHost([Doubler(), Doubler(name="twice")], port=0) as host:
        url = host.url_for("doubler", protocol="v1")
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1/models/doubler:predict", url)
        assert host.port != 0
        async with http.post(url, data=b'{"instances": [1, 2]}', headers={"X-Request-Id": "abc"}) as r:
            assert (r.status, await r.json()) == (200, {"predictions": [2, 4]})
        assert await post(http, host.url_for("twice"), {"instances": [5]}) == (200, {"predictions": [10]})
        assert await post(http, url, {"instances": ["a"]}) == (400, {"error": "integers only"})
        assert host.url_for("twice", protocol="v2").endswith("/v2/models/twice/infer")
        assert host.service_urls() == {"doubler": url, "twice": host.url_for("twice")}
    assert [r.model for r in host.requests] == ["doubler", "twice", "doubler"]
    assert host.requests[0].headers["X-Request-Id"] == "abc"
    assert host.requests[0].body == b'{"instances": [1, 2]}'
    assert host.received("doubler") == [{"instances": [1, 2]}, {"instances": ["a"]}]


async def test_model_exception_is_500_and_not_ready_is_503(http: aiohttp.ClientSession) -> None:
    sleepy = Doubler(name="sleepy")
    sleepy.ready = False
    async with ModelHost([Broken(), sleepy]) as host:
        assert await post(http, host.url_for("broken"), {"instances": [1]}) == (
            500,
            {"error": "RuntimeError: weights file is corrupt"},
        )
        assert await post(http, host.url_for("sleepy"), {"instances": [1]}) == (
            503,
            {"error": "Model with name sleepy is not ready."},
        )
        assert await get(http, f"{host.base_url}/v1/models/sleepy") == (
            200,
            {"name": "sleepy", "ready": False},
        )
        assert await get(http, f"{host.base_url}/v2/health/ready") == (503, {"ready": False})


def test_host_rejects_duplicates_and_unknown_names() -> None:
    with pytest.raises(ValueError, match="two models named 'doubler'"):
        ModelHost([Doubler(), Doubler()])
    with pytest.raises(KeyError, match="no model named 'x'"):
        ModelHost([Doubler()]).url_for("x")
    with pytest.raises(KeyError, match="unknown example model"):
        example_models(["sklearn-iris", "nope"])


def test_parse_names() -> None:
    assert parse_names("all") is None
    assert parse_names("sklearn-iris, model-a") == ["sklearn-iris", "model-a"]
    with pytest.raises(ValueError, match="unknown model"):
        parse_names("sklearn-iris,nope")


# --- the CLI as a process -----------------------------------------------------------------------


def _cli(*args: str) -> list[str]:
    """``graph-router ARGS`` (the project's CLI with its ``models`` subcommand)."""
    return [sys.executable, "-m", "graph_router", *args]


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run subprocesses outside the repo so only PYTHONPATH decides what is imported."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p)
    return {**os.environ, "PYTHONPATH": path}


def test_models_list(elsewhere: Path) -> None:
    out = subprocess.run(_cli("models", "list"), capture_output=True, text=True, timeout=30, env=_env(), check=True)
    lines = out.stdout.splitlines()
    assert [line.split()[0] for line in lines] == list(EXAMPLE_MODELS)
    assert lines[0].split()[1] == "v1" and lines[-1].split()[1] == "v2"


async def test_models_serve_answers_and_stops_on_sigint(http: aiohttp.ClientSession, elsewhere: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        # the standalone entry point the quick start uses
        *[
            sys.executable,
            "-m",
            "graph_router.modelhost",
            "serve",
            "--port",
            "0",
            "--models",
            "sklearn-iris,v2-scaler",
        ],
        stdout=asyncio.subprocess.PIPE,
        env=_env(),
    )
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        match = re.fullmatch(r"model host listening on (http://127\.0\.0\.1:\d+)\n", first)
        assert match, first
        base = match.group(1)
        assert await post(http, f"{base}/v1/models/sklearn-iris:predict", {"instances": ROWS[:1]}) == (
            200,
            {"predictions": [0]},
        )
        assert (await get(http, f"{base}/v1/models/model-a"))[0] == 404
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
        rest = (await proc.stdout.read()).decode()
        assert rest.endswith("model host stopped\n")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_models_serve_rejects_unknown_names(elsewhere: Path) -> None:
    out = subprocess.run(
        _cli("models", "serve", "--models", "nope"), capture_output=True, text=True, timeout=30, env=_env()
    )
    assert out.returncode == 2
    assert "unknown model(s): nope" in out.stderr
