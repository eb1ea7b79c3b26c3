"""Golden files: every example graph in every router mode. UPDATE_GOLDEN=1 rewrites them."""

from __future__ import annotations

import os
from typing import Any

import pytest
from manifest_helpers import GOLDEN, ROOT, cli

from graph_router.manifests.validate import SCHEMAS, check_object

EXAMPLES = {
    "sequential-pipeline": ["graph.yaml"],
    "animal-breeds": ["graph.yaml"],
    "ensemble": ["graph.yaml", "graph-mean.yaml"],
    "ab-test": ["graph.yaml"],
    "ml-pipeline": ["graph.yaml"],
    "canary": ["graph.yaml"],
    "v2-chain": ["graph.yaml"],
    "shadow": ["graph.yaml"],
    "grpc-chain": ["graph.yaml"],
}
MODES = ("knative", "deployment", "kserve")
CASES = [(app, mode) for app in EXAMPLES for mode in MODES]


def _generate(app: str, mode: str) -> tuple[int, str, str]:
    graphs = [f"graphs/{app}/{g}" for g in EXAMPLES[app]]
    r = cli("manifests", *graphs, "--deploy", f"graphs/{app}/deploy.yaml", "--router", mode)
    return r.code, r.out, r.err


def _compare(path: str, actual: str) -> None:
    file = GOLDEN / path
    if os.environ.get("UPDATE_GOLDEN") == "1":
        file.write_text(actual, encoding="utf-8")
    assert file.exists(), f"missing golden file {file}: run with UPDATE_GOLDEN=1"
    assert actual == file.read_text(encoding="utf-8"), f"{path} differs (UPDATE_GOLDEN=1 regenerates)"


@pytest.mark.parametrize(("app", "mode"), CASES, ids=[f"{a}-{m}" for a, m in CASES])
def test_golden(app: str, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    code, out, err = _generate(app, mode)
    assert code == 0, err
    _compare(f"{app}.{mode}.yaml", out)
    _compare(f"{app}.{mode}.stderr", err)


def _strings_only(anns: Any) -> bool:
    return isinstance(anns, dict) and all(isinstance(v, str) for v in anns.values())


def _walk_annotations(obj: Any) -> list[Any]:
    found = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "annotations":
                found.append(v)
            found += _walk_annotations(v)
    elif isinstance(obj, list):
        for v in obj:
            found += _walk_annotations(v)
    return found


@pytest.mark.parametrize(("app", "mode"), CASES, ids=[f"{a}-{m}" for a, m in CASES])
def test_every_object_valid(app: str, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each CRD object passes the strict schema and the webhook rules; annotation values are strings."""
    monkeypatch.chdir(ROOT)
    r = cli(
        "manifests",
        *[f"graphs/{app}/{g}" for g in EXAMPLES[app]],
        "--deploy",
        f"graphs/{app}/deploy.yaml",
        "--router",
        mode,
    )
    assert r.code == 0, r.err
    docs = r.docs()
    crds = [d for d in docs if (d["apiVersion"], d["kind"]) in SCHEMAS]
    assert crds, "no CRD object generated"
    for d in crds:
        assert check_object(d, "strict") == [], d["metadata"]["name"]
    for d in docs:
        for anns in _walk_annotations(d):
            assert _strings_only(anns), (d["kind"], anns)
        assert d["metadata"]["namespace"]


def test_knative_services_keep_autoscaling_off_their_own_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    docs = cli(
        "manifests",
        "graphs/sequential-pipeline/graph.yaml",
        "--deploy",
        "graphs/sequential-pipeline/deploy.yaml",
    ).docs()
    ksvcs = [d for d in docs if d["kind"] == "Service" and d["apiVersion"] == "serving.knative.dev/v1"]
    assert [k["metadata"]["name"] for k in ksvcs] == ["preprocessor", "postprocessor", "sequential-pipeline"]
    for k in ksvcs:
        assert "annotations" not in k["metadata"]
        assert "autoscaling.knative.dev/min-scale" in k["spec"]["template"]["metadata"]["annotations"]


def test_examples_dir_matches_cases() -> None:
    assert sorted(p.parent.name for p in (ROOT / "graphs").glob("*/deploy.yaml")) == sorted(EXAMPLES)
