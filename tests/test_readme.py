"""The README's code is real: its Python snippets run, and its library example passes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from graph_router import GraphRouter
from graph_router.testing import FakeModel, refused, run_graph

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_readme_opens_with_setup_and_test_commands() -> None:
    first = re.search(r"```sh\n(.*?)```", README, flags=re.S)
    assert first is not None
    commands = [ln for ln in first.group(1).splitlines() if ln and not ln.startswith("#")]
    assert commands[0].endswith("graph-router quickstart")
    assert commands[1] == "bash .ci/run"


def test_library_example_runs_as_written(tmp_path: Path) -> None:
    snippet = next(b for b in python_blocks() if "asyncio.run(main())" in b)
    script = tmp_path / "example.py"
    script.write_text(snippet)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr


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


def test_readme_is_built_from_the_docs_chapters() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "docs/build_readme.py"), "--check"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
