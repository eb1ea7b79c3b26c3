"""Every example graph in graphs/ run by the router against the example models over real HTTP,
and the quick start as a process (start, one request, Ctrl-C, nothing left running)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml

from graph_router import GraphRouter
from graph_router.loader import load_graphs
from graph_router.mermaid import to_mermaid
from graph_router.modelhost import ModelHost, example_models
from graph_router.modelhost.quickstart import run_quickstart

from .support.ports import free_port
from .support.quickstart import kill_quickstart, start_quickstart, stop_quickstart
from .support.router import ROOT

GRAPHS = ROOT / "graphs"

SERVICES = {
    "sequential-pipeline/graph.yaml": {"preprocessor", "classifier", "postprocessor"},
    "animal-breeds/graph.yaml": {"animal-detector", "dog-breed", "cat-breed", "bird-breed", "generic-breed"},
    "ensemble/graph.yaml": {"sklearn-iris", "xgboost-iris", "lightgbm-iris"},
    "ensemble/graph-mean.yaml": {"sklearn-iris", "xgboost-iris", "lightgbm-iris"},
    "ab-test/graph.yaml": {"model-a", "model-b"},
    "ml-pipeline/graph.yaml": {
        "feature-transformer",
        "sklearn-iris",
        "xgboost-iris",
        "lightgbm-iris",
        "result-formatter",
    },
    "canary/graph.yaml": {"fraud-model"},
    "v2-chain/graph.yaml": {"v2-scaler", "v2-classifier"},
    "shadow/graph.yaml": {"sklearn-iris"},  # and xgboost-iris, its shadow (mirror)
    "grpc-chain/graph.yaml": {"v2-scaler", "v2-classifier"},
}


@pytest.fixture
async def host() -> AsyncIterator[ModelHost]:
    async with ModelHost(example_models()) as h:
        yield h


def request(example: str, name: str = "request.json") -> Any:
    return orjson.loads((GRAPHS / example / name).read_bytes())


async def run(host: ModelHost, graph: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    async with GraphRouter.from_file(GRAPHS / graph, services=host.service_urls()) as router:
        return await router.infer(body, headers=headers or {})


def called(host: ModelHost) -> list[str]:
    return [r.model for r in host.requests]


# --- the files ----------------------------------------------------------------------------------


def test_every_example_is_listed_and_valid() -> None:
    on_disk = {str(p.relative_to(GRAPHS)) for p in GRAPHS.glob("*/graph*.yaml")}
    assert on_disk == set(SERVICES)
    for graph, services in SERVICES.items():
        (doc,) = load_graphs([GRAPHS / graph])
        raw = yaml.safe_load((GRAPHS / graph).read_text())
        assert raw["apiVersion"] == "serving.kserve.io/v1alpha1"
        assert raw["kind"] == "InferenceGraph"
        expected_name = graph.split("/")[0] + ("-mean" if graph.endswith("graph-mean.yaml") else "")
        assert doc.name == raw["metadata"]["name"] == expected_name
        found = {s.service_name for n in doc.spec.nodes.values() for s in n.steps if s.service_name}
        assert found == services, graph
        assert (GRAPHS / graph).with_name("request.json").is_file()


def test_docs_show_each_example_with_its_generated_diagram() -> None:
    """docs/examples.md holds what `graph-router graph` prints for every example (regenerate on change)."""
    text = (ROOT / "docs/examples.md").read_text()
    assert text.startswith("# Examples\n")
    sections = dict(re.findall(r"^## ([a-z0-9-]+)\n(?:(?!\n## ).)*?```mermaid\n(.*?)```", text, flags=re.S | re.M))
    examples = sorted(p.parent.name for p in GRAPHS.glob("*/graph.yaml"))
    assert sorted(sections) == examples
    for name, diagram in sections.items():
        (doc,) = load_graphs([GRAPHS / name / "graph.yaml"])
        assert diagram == to_mermaid(doc), name


# --- each example, end to end -------------------------------------------------------------------


async def test_sequential_pipeline(host: ModelHost) -> None:
    result = await run(host, "sequential-pipeline/graph.yaml", request("sequential-pipeline"))
    assert result.status == 200
    assert result.json() == {
        "predictions": [
            {"class": "setosa", "label": 0},
            {"class": "versicolor", "label": 1},
            {"class": "virginica", "label": 2},
        ]
    }
    assert called(host) == ["preprocessor", "classifier", "postprocessor"]
    assert host.received("classifier") == [
        {
            "instances": [
                [-0.9006, 1.0322, -1.3413, -1.313],
                [0.6745, 0.3379, 0.4216, 0.3961],
                [0.5534, 0.5693, 1.2746, 1.7109],
            ]
        }
    ]
    assert host.received("postprocessor") == [{"instances": [0, 1, 2]}]


@pytest.mark.parametrize(
    ("instance", "model", "answer"),
    [
        ({"image": "dog.jpg"}, "dog-breed", {"animal": "dog", "breed": "beagle", "score": 0.82}),
        ([20, 10, 0, 3], "dog-breed", {"animal": "dog", "breed": "labrador", "score": 1.0}),
        ({"image": "tom.jpg"}, "cat-breed", {"animal": "cat", "breed": "tabby", "score": 0.74}),
        ({"image": "tweety.png"}, "bird-breed", {"animal": "bird", "breed": "sparrow", "score": 0.82}),
        ({"image": "rex.jpg"}, "generic-breed", {"animal": "other", "breed": "unknown", "score": 0.95}),
    ],
)
async def test_animal_breeds(host: ModelHost, instance: Any, model: str, answer: dict[str, Any]) -> None:
    result = await run(host, "animal-breeds/graph.yaml", {"instances": [instance]})
    assert (result.status, result.json()) == (200, {"predictions": [answer]})
    assert called(host) == ["animal-detector", model]
    detection = {"label": answer["animal"], "score": answer["score"]}
    # the Switch passes the detector's answer on unchanged
    assert host.received(model) == [{"predictions": [detection]}]
    assert model in result.route


async def test_animal_breeds_sample_request(host: ModelHost) -> None:
    result = await run(host, "animal-breeds/graph.yaml", request("animal-breeds"))
    assert (result.status, result.json()) == (
        200,
        {"predictions": [{"animal": "dog", "breed": "beagle", "score": 0.82}]},
    )


IRIS = ("sklearn-iris", "xgboost-iris", "lightgbm-iris")


async def test_ensemble_vote(host: ModelHost) -> None:
    body = request("ensemble")
    result = await run(host, "ensemble/graph.yaml", body)
    # sklearn [0, 2, 1, 2], xgboost [0, 1, 1, 1], lightgbm [0, 2, 2, 1]: the majority differs from each
    assert (result.status, result.json()) == (200, {"predictions": [0, 2, 1, 1]})
    assert sorted(called(host)) == sorted(IRIS)
    for model in IRIS:
        assert host.received(model) == [body]


async def test_ensemble_mean(host: ModelHost) -> None:
    body = request("ensemble", "request-mean.json")
    result = await run(host, "ensemble/graph-mean.yaml", body)
    per_model = [
        [[0.9652, 0.0348, 0.0], [0.031, 0.4269, 0.5421]],
        [[0.7885, 0.1759, 0.0355], [0.1199, 0.44, 0.44]],
        [[0.8079, 0.1476, 0.0445], [0.1475, 0.3628, 0.4897]],
    ]
    mean = [[sum(m[r][c] for m in per_model) / 3 for c in range(3)] for r in range(2)]
    assert result.status == 200
    answer = result.json()
    assert list(answer) == ["predictions"]
    assert answer["predictions"] == [pytest.approx(row, abs=1e-9) for row in mean]
    for model in IRIS:
        assert host.received(model) == [body]


async def test_ensemble_without_aggregate_is_kserves_merge(host: ModelHost) -> None:
    spec = yaml.safe_load((GRAPHS / "ensemble/graph.yaml").read_text())
    del spec["spec"]["nodes"]["root"]["aggregate"]
    async with GraphRouter.from_spec(spec, services=host.service_urls()) as router:
        result = await router.infer(request("ensemble"))
    assert (result.status, result.json()) == (
        200,
        {
            "sklearn": {"predictions": [0, 2, 1, 2]},
            "xgboost": {"predictions": [0, 1, 1, 1]},
            "lightgbm": {"predictions": [0, 2, 2, 1]},
        },
    )


AB_ANSWERS = {
    "model-a": {
        "predictions": [{"sentiment": "positive", "score": 0.67}, {"sentiment": "neutral", "score": 0.0}],
        "model": "model-a",
    },
    "model-b": {
        "predictions": [{"sentiment": "neutral", "score": -0.13}, {"sentiment": "positive", "score": 0.27}],
        "model": "model-b",
    },
}


async def test_ab_test_is_sticky_and_split_70_30(host: ModelHost) -> None:
    body = request("ab-test")
    chosen: dict[str, str] = {}
    async with GraphRouter.from_file(GRAPHS / "ab-test/graph.yaml", services=host.service_urls()) as router:
        for i in range(200):
            user = f"user-{i}"
            first = await router.infer(body, headers={"x-user-id": user})
            assert first.status == 200
            model = first.json()["model"]
            assert first.json() == AB_ANSWERS[model]
            assert model in first.route
            chosen[user] = model
        for user in list(chosen)[:20]:  # the same user always gets the same model
            again = await router.infer(body, headers={"x-user-id": user})
            assert again.json()["model"] == chosen[user]
    share_a = sum(m == "model-a" for m in chosen.values()) / len(chosen)
    assert 0.55 <= share_a <= 0.85, share_a  # 70% expected; a stable hash, not a coin
    assert len(host.requests) == 220


async def test_ml_pipeline(host: ModelHost) -> None:
    result = await run(host, "ml-pipeline/graph.yaml", request("ml-pipeline"))
    assert result.status == 200
    assert result.json() == {
        "predictions": [
            {"species": "Iris-setosa", "label": 0},
            {"species": "Iris-virginica", "label": 2},
            {"species": "Iris-versicolor", "label": 1},
        ],
        "summary": {"setosa": 1, "versicolor": 1, "virginica": 1},
    }
    rows = {"instances": [[5.1, 3.5, 1.4, 0.2], [5.9, 3.2, 4.8, 1.8], [7.2, 3.0, 5.8, 1.6]]}
    for model in IRIS:
        assert host.received(model) == [rows]
    assert host.received("result-formatter") == [{"instances": [0, 2, 1]}]
    assert called(host)[0] == "feature-transformer" and called(host)[-1] == "result-formatter"


async def test_shadow_answers_as_the_real_model_and_compares_in_the_dark(host: ModelHost) -> None:
    rows = [[5.9, 3.2, 4.8, 1.8], [5.1, 3.5, 1.4, 0.2], [7.2, 3.0, 5.8, 1.6], [6.3, 2.8, 5.1, 1.5]]
    async with GraphRouter.from_file(GRAPHS / "shadow/graph.yaml", services=host.service_urls()) as router:
        first = await router.infer(request("shadow"))
        answers = [await router.infer({"instances": [r]}) for r in rows[1:]]
        async with asyncio.timeout(10):
            await router.shadows.idle()
    assert (first.status, first.json()) == (200, {"predictions": [2]})  # sklearn-iris's answer, not xgboost's 1
    assert [a.json() for a in answers] == [{"predictions": [0]}, {"predictions": [2]}, {"predictions": [1]}]
    assert sorted(called(host)) == ["sklearn-iris"] * 4 + ["xgboost-iris"] * 4


async def test_v2_chain(host: ModelHost) -> None:
    result = await run(host, "v2-chain/graph.yaml", request("v2-chain"))
    assert result.status == 200
    assert result.json() == {
        "model_name": "v2-classifier",
        "model_version": "1",
        "id": "req-1",
        "outputs": [
            {"name": "label", "shape": [2], "datatype": "INT64", "data": [0, 2]},
            {
                "name": "probabilities",
                "shape": [2, 3],
                "datatype": "FP32",
                "data": [0.9651, 0.0349, 0.0, 0.0004, 0.0308, 0.9688],
            },
        ],
    }
    # the scaler's outputs became the classifier's inputs; id and parameters carried over
    assert host.received("v2-classifier") == [
        {
            "id": "req-1",
            "inputs": [
                {
                    "name": "scaled",
                    "shape": [2, 4],
                    "datatype": "FP32",
                    "data": [-0.9006, 1.0322, -1.3413, -1.313, 0.5534, 0.5693, 1.2746, 1.7109],
                }
            ],
            "parameters": {"trace": "demo", "scaler": "standard"},
        }
    ]


# --- the quick start ----------------------------------------------------------------------------


def test_quickstart_rejects_unknown_and_manifest_only_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_quickstart("nope", port=1, models_port=1) == 2
    err = capsys.readouterr().err
    assert "no example 'nope'; examples: ab-test, animal-breeds, canary, ensemble" in err
    assert run_quickstart("canary", port=1, models_port=1) == 2
    assert "needs models the host does not have: fraud-model" in capsys.readouterr().err


def test_quickstart_reports_a_busy_port(capfd: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        models_port = busy.getsockname()[1]
        assert run_quickstart("ensemble", port=free_port(), models_port=models_port) == 2
    out, err = capfd.readouterr()
    assert err == (f"graph-router quickstart: port {models_port} for the model host is not free "
                   "(Address already in use); pick another with --models-port\n")
    assert out == ""  # nothing was started, nothing said "ready"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_quickstart_process(tmp_path: Path) -> None:
    port, models_port = free_port(), free_port()
    proc, lines = await start_quickstart("sequential-pipeline", "--port", str(port), "--models-port", str(models_port),
                                         terminal=True)  # stdout and stderr in one stream, as a terminal shows
    pids: list[int] = []
    try:
        assert proc.stdout is not None
        pids = [int(m.group(1)) for line in lines if (m := re.match(r"started .* \(pid (\d+)\)", line))]
        assert len(pids) == 2, lines
        curl = next(line.strip() for line in lines if line.strip().startswith("curl "))
        assert curl == (
            f"curl -i http://127.0.0.1:{port}/ -H 'Content-Type: application/json'"
            " -d @graphs/sequential-pipeline/request.json"
        )
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
            http.post(
                f"http://127.0.0.1:{port}/",
                data=(GRAPHS / "sequential-pipeline/request.json").read_bytes(),
                headers={"Content-Type": "application/json"},
            ) as r,
        ):
            assert r.status == 200
            assert (await r.json())["predictions"][2] == {"class": "virginica", "label": 2}
        await asyncio.sleep(0.5)  # (an access log would write its batch within 0.25 s)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        lines += (await asyncio.wait_for(proc.stdout.read(), 10)).decode().splitlines(keepends=True)
        text = "".join(lines)
        assert not [line for line in lines if line.lstrip().startswith("{")], text  # text logs only
        assert "INFO graph_router.process: SIGINT received: draining" in text, text
        assert "SIGTERM" not in text and "model host stopped\n" in text and text.endswith("quickstart: stopped\n")
        assert [pid for pid in pids if _alive(pid)] == []
    finally:
        await stop_quickstart(proc)
        kill_quickstart(proc, lines)
