"""`graph_router.testing` behaves as docs/library.md describes it (beside the page's own examples, run as written)."""

from __future__ import annotations

from pathlib import Path

from graph_router import GraphRouter
from graph_router.testing import FakeModel, refused, run_graph


async def test_testing_helpers_as_documented(tmp_path: Path) -> None:
    graph = tmp_path / "graph.yaml"
    graph.write_text("nodes:\n  root:\n    routerType: Sequence\n    steps:\n      - serviceName: classifier\n")
    classifier = FakeModel({"predictions": [1]})
    result = await run_graph(graph, {"x": 1}, services={"classifier": classifier})
    assert result.status == 200 and result.json() == {"predictions": [1]}
    assert classifier.received == [{"x": 1}]


async def test_fake_model_scripts_a_cold_start() -> None:
    cold = FakeModel(refused(), refused(), {"predictions": ["warm"]})
    spec = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceName": "m"}]}}}
    async with GraphRouter.from_spec(spec, services={"m": cold}) as router:
        result = await router.infer({"instances": [1]})
    assert result.json() == {"predictions": ["warm"]} and cold.calls == 3
