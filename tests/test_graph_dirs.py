"""Directories of graphs: read recursively, graph documents loaded, every other file skipped with a note."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from graph_router.errors import SpecError
from graph_router.loader import find_graphs, graph_files, load_graphs

from .conftest import ROOT
from .test_cli import GOOD, cli

GRAPHS = ROOT / "graphs"


def example_graph_names() -> set[str]:
    """The metadata.name of every graph*.yaml of the repository's examples, read without the loader."""
    names = set()
    for f in GRAPHS.glob("*/graph*.yaml"):
        names.add(yaml.safe_load(f.read_text())["metadata"]["name"])
    return names


def test_the_repositorys_graphs_directory_loads_every_example_and_skips_the_rest() -> None:
    found = find_graphs([GRAPHS])
    assert {d.name for d in found.graphs} == example_graph_names()
    assert len(found.graphs) == len(example_graph_names()) >= 9
    assert all(Path(d.source).name.startswith("graph") for d in found.graphs)
    skipped = {Path(s.source).relative_to(GRAPHS).as_posix(): s.reason for s in found.skipped}
    expected = {f.relative_to(GRAPHS).as_posix() for f in GRAPHS.glob("*/*")
                if f.suffix in (".yaml", ".json") and not f.name.startswith("graph")}
    assert set(skipped) == expected and "ensemble/deploy.yaml" in expected
    assert skipped["ensemble/deploy.yaml"] == "not a graph spec (a mapping without kind: InferenceGraph or 'nodes')"
    assert str(found.skipped[0]) == f"{found.skipped[0].source}: skipped, {found.skipped[0].reason}"


def test_validate_an_example_directory_passes_with_notes() -> None:
    out = cli("validate", "graphs/ensemble/")
    assert out.returncode == 0, out.stderr
    reason = "not a graph spec (a mapping without kind: InferenceGraph or 'nodes')"
    assert out.stdout.splitlines() == [
        f"note: graphs/ensemble/deploy.yaml: skipped, {reason}",
        f"note: graphs/ensemble/request-mean.json: skipped, {reason}",
        f"note: graphs/ensemble/request.json: skipped, {reason}",
        "ok: graphs/ensemble/graph-mean.yaml: graph 'ensemble-mean' (1 nodes, 3 steps)",
        "ok: graphs/ensemble/graph.yaml: graph 'ensemble' (1 nodes, 3 steps)",
    ]


def test_validate_the_graphs_directory_recursively() -> None:
    out = cli("validate", "graphs/")
    assert out.returncode == 0, out.stderr
    oks = [line for line in out.stdout.splitlines() if line.startswith("ok: ")]
    assert len(oks) == len(example_graph_names())
    assert "ok: graphs/sequential-pipeline/graph.yaml: graph 'sequential-pipeline' (1 nodes, 3 steps)" in oks


def test_other_kinds_lists_and_empty_files_are_skipped_with_why(tmp_path: Path) -> None:
    (tmp_path / "g.yaml").write_text(GOOD)
    (tmp_path / "isvc.yaml").write_text("apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
                                        "metadata: {name: a}\nspec: {}\n")
    (tmp_path / "rows.json").write_text("[1, 2]")
    (tmp_path / "empty.yml").write_text("# nothing yet\n")
    (tmp_path / "notes.txt").write_text("not read at all")
    found = find_graphs([tmp_path])
    assert [d.name for d in found.graphs] == ["demo"]
    assert [(Path(s.source).name, s.reason) for s in found.skipped] == [
        ("empty.yml", "empty"),
        ("isvc.yaml", "not an InferenceGraph (kind: InferenceService)"),
        ("rows.json", "not a graph spec (a list without kind: InferenceGraph or 'nodes')"),
    ]


def test_directories_are_read_recursively_without_hidden_entries(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "a" / "b" / "g.yaml").write_text(GOOD)
    (tmp_path / ".hidden" / "g.yaml").write_text(GOOD.replace("demo", "hidden"))
    (tmp_path / ".g.yaml").write_text(GOOD.replace("demo", "dotfile"))
    assert graph_files(tmp_path) == [tmp_path / "a" / "b" / "g.yaml"]
    assert [d.name for d in load_graphs([tmp_path])] == ["demo"]


def test_a_broken_graph_in_a_directory_is_still_an_error(tmp_path: Path) -> None:
    (tmp_path / "request.json").write_text('{"instances": [1]}')
    bad = tmp_path / "graph.yaml"
    bad.write_text(GOOD.replace("routerType: Switch", "routerType: Swich").replace("serviceName: a", "serviceURL: a"))
    out = cli("validate", str(tmp_path))
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.splitlines() == [
        f"error: {bad}: 3 problems:",
        "  - spec.nodes.root.steps[0].serviceURL: unknown field (did you mean 'serviceUrl'?)",
        '  - spec.nodes.root.steps[0]: Step 0 ("first") in node "root" of InferenceGraph "demo" does not '
        "specify an inference target",
        "  - spec.nodes.pick.routerType: unsupported value 'Swich' (did you mean 'Switch'?): "
        "one of Sequence, Switch, Ensemble, Splitter",
    ]


def test_a_resource_missing_its_kind_counts_as_a_graph_and_is_reported(tmp_path: Path) -> None:
    (tmp_path / "g.yaml").write_text(GOOD.replace("kind: InferenceGraph\n", ""))
    with pytest.raises(SpecError) as info:
        load_graphs([tmp_path])
    assert info.value.render() == f"{tmp_path / 'g.yaml'}: kind: missing: set kind: InferenceGraph"


def test_a_directory_without_any_graph_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "deploy.yaml").write_text("namespace: iris\n")
    (tmp_path / "request.json").write_text('{"instances": [1]}')
    out = cli("validate", str(tmp_path))
    assert out.returncode == 2 and out.stdout == ""
    why = "not a graph spec (a mapping without kind: InferenceGraph or 'nodes')"
    assert out.stderr == (
        f"error: {tmp_path}: no graph found: expected a file holding kind: InferenceGraph or a bare spec with "
        f"'nodes' ({tmp_path / 'deploy.yaml'}: skipped, {why}; {tmp_path / 'request.json'}: skipped, {why})\n")
    (tmp_path / "deploy.yaml").unlink()
    (tmp_path / "request.json").unlink()
    out = cli("validate", str(tmp_path))
    assert (out.returncode, out.stderr) == (2, f"error: {tmp_path}: directory holds no .yaml/.yml/.json file\n")


def test_a_file_named_on_its_own_must_be_a_graph() -> None:
    out = cli("validate", "graphs/ensemble/request.json")
    assert out.returncode == 2
    assert out.stderr.startswith("error: graphs/ensemble/request.json: ")


def test_graph_names_colliding_across_files_name_both_files(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    (tmp_path / "one" / "graph.yaml").write_text(GOOD)
    (tmp_path / "two" / "graph.yaml").write_text(GOOD)
    bare = "nodes:\n  root:\n    routerType: Sequence\n    steps: [{serviceName: a}]\n"
    (tmp_path / "one" / "g.yaml").write_text(bare)
    (tmp_path / "two" / "g.yaml").write_text(bare)
    with pytest.raises(SpecError) as info:
        load_graphs([tmp_path])
    one, two = tmp_path / "one", tmp_path / "two"
    assert [str(p) for p in info.value.problems] == [
        f"{two / 'g.yaml'}: (a bare spec is named after its file): graph name 'g' is also used by {one / 'g.yaml'}: "
        "graph names must be unique (the name is the URL path /<name>); rename one",
        f"{two / 'graph.yaml'}: metadata.name: graph name 'demo' is also used by {one / 'graph.yaml'}: "
        "graph names must be unique (the name is the URL path /<name>); rename one",
    ]
