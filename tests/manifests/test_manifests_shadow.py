"""A shadow in manifests (deployed like any backend) and ``rollout shadow-to-canary`` / ``canary-to-shadow``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from manifest_helpers import ROOT, cli

from graph_router import GraphRouter
from graph_router.loader import load_graph_text

GRAPH = str(ROOT / "graphs/shadow/graph.yaml")


def test_shadow_to_canary_and_back_is_the_original_graph(tmp_path: Path) -> None:
    r = cli("rollout", "shadow-to-canary", "xgboost-iris", "-f", GRAPH, "--percent", "10")
    assert (r.code, r.err) == (0, "")
    [canary] = r.docs()
    assert canary["spec"]["nodes"] == {
        "root": {"routerType": "Sequence", "steps": [{"name": "classify", "nodeName": "root-classify-canary"}]},
        "root-classify-canary": {"routerType": "Splitter", "steps": [
            {"name": "stable", "serviceName": "sklearn-iris", "weight": 90},
            {"name": "canary", "serviceName": "xgboost-iris", "weight": 10}]},
    }
    saved = canary["metadata"]["annotations"]["shadow.graph-router.dev/xgboost-iris"]
    assert orjson.loads(saved)["compare"] == "predictions.0"
    file = tmp_path / "canary.yaml"
    file.write_text(r.out)
    back = cli("rollout", "canary-to-shadow", "xgboost-iris", "-f", str(file))
    assert (back.code, back.err) == (0, "")
    assert back.docs() == [yaml.safe_load(Path(GRAPH).read_text())]


def test_canary_to_shadow_takes_percent_and_compare_and_works_on_a_bare_spec(tmp_path: Path) -> None:
    bare = {"nodes": {"root": {"routerType": "Splitter", "steps": [
        {"serviceUrl": "http://new/v1/models/m:predict", "weight": 5, "timeout": 2},
        {"name": "main", "serviceName": "old", "weight": 95, "timeout": 2}]}}}
    file = tmp_path / "g.json"
    file.write_bytes(orjson.dumps(bare))
    r = cli("rollout", "canary-to-shadow", "http://new/v1/models/m:predict", "-f", str(file), "--percent", "25",
            "--compare", "$.predictions[0]", "-o", "json")
    assert r.code == 0, r.err
    assert orjson.loads(r.out) == {"nodes": {"root": {"routerType": "Sequence", "steps": [
        {"name": "main", "serviceName": "old", "timeout": 2, "mirror": {
            "serviceUrl": "http://new/v1/models/m:predict", "percent": 25.0, "compare": "$.predictions[0]"}}]}}}


@pytest.mark.parametrize(("argv", "err"), [
    (["shadow-to-canary", "nope", "-f", GRAPH, "--percent", "10"],
     'error: rollout: expected one step mirrored to "nope", found 0; check the service name and the graph'),
    (["shadow-to-canary", "xgboost-iris", "-f", GRAPH, "--percent", "100"],
     "error: rollout: --percent: expected 1 <= 100 <= 99 (0 is the shadow, 100 is a promotion"),
    (["canary-to-shadow", "xgboost-iris", "-f", GRAPH],
     'error: rollout: expected one Splitter node of two steps, one of them calling "xgboost-iris"; found 0'),
])
def test_shadow_rollout_errors(argv: list[str], err: str) -> None:
    r = cli("rollout", *argv)
    assert (r.code, r.out) == (2, "")
    assert r.err.startswith(err), r.err


async def test_the_canary_graph_splits_real_traffic() -> None:
    r = cli("rollout", "shadow-to-canary", "xgboost-iris", "-f", GRAPH, "--percent", "30")
    [doc] = load_graph_text(r.out)
    seen: Counter[str] = Counter()

    def model(name: str) -> Any:
        def answer(_body: Any, _headers: Any) -> Any:
            seen[name] += 1
            return {"predictions": [name]}
        return answer

    services = {"sklearn-iris": model("sklearn-iris"), "xgboost-iris": model("xgboost-iris")}
    async with GraphRouter([doc], services=services) as router:
        answers = Counter([(await router.infer({"instances": [[1, 2, 3, 4]]})).json()["predictions"][0]
                           for _ in range(400)])
    assert answers == seen  # the caller now gets the canary's answer for its share
    assert 60 <= seen["xgboost-iris"] <= 180  # 30% of 400, a wide band


def test_an_undescribed_shadow_is_reported_where_the_graph_calls_it(tmp_path: Path) -> None:
    deploy = yaml.safe_load((ROOT / "graphs/shadow/deploy.yaml").read_text())
    del deploy["services"]["xgboost-iris"]
    file = tmp_path / "deploy.yaml"
    file.write_text(yaml.safe_dump(deploy))
    r = cli("manifests", GRAPH, "--deploy", str(file))
    assert r.code == 2
    assert ('services.xgboost-iris: not described: graph "shadow" calls serviceName "xgboost-iris" at '
            "nodes.root.steps[0].mirror") in r.err
