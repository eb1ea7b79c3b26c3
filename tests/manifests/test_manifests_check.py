"""``graph-router manifests --check``: hand-written manifests against the schemas and the webhook rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from manifest_helpers import ROOT, cli

IN = "tests/manifests/manifests_in"


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def test_good_file() -> None:
    r = cli("manifests", "--check", f"{IN}/good.yaml")
    assert (r.code, r.out) == (0, "")
    assert r.err == (
        f"note: {IN}/good.yaml: ConfigMap/not-checked: not checked (v1 ConfigMap has no schema here)\n"
        "ok: 3 object(s) valid\n"
    )


def test_bad_file_lists_every_problem() -> None:
    r = cli("manifests", "--check", f"{IN}/bad.yaml")
    assert r.code == 2
    f = f"{IN}/bad.yaml"
    assert r.err.splitlines() == [
        f"error: {f}: 11 problems:",
        "  - Service/pre: metadata.annotations.autoscaling.knative.dev/min-scale: invalid key name "
        '"autoscaling.knative.dev/min-scale": autoscaling annotations must be put under '
        '"spec.template.metadata.annotations" to work',
        "  - Service/pre: spec.template.metadata.annotations.autoscaling.knative.dev/window: "
        "expected 6s <= 5s <= 1h0m0s",
        "  - Service/pre: spec.template.metadata.annotations.autoscaling.knative.dev/metric: invalid value: cpu",
        "  - Service/pre: spec.template.spec.timeoutSeconds: expected 0 <= 900 <= 600",
        '  - Service/pre: spec.template.metadata.name: invalid value: "v2" must have prefix "pre-"',
        "  - Service/pre: spec.traffic: Traffic targets sum to 90, want 100",
        "  - InferenceService/sklearn-iris: spec.predictor.minReplicas: "
        "'MinReplicas' cannot be greater than MaxReplicas",
        "  - InferenceService/sklearn-iris: spec.predictor.scaleMetric: [cpu] is not a supported metric",
        "  - InferenceService/sklearn-iris: spec.predictor.canaryTrafficPercent: expected 0 <= 120 <= 100",
        "  - InferenceService/sklearn-iris: metadata.annotations.serving.kserve.io/deploymentMode: "
        'unknown deployment mode "Serverles": KServe silently falls back to the cluster default; use one of '
        "Serverless, Knative, RawDeployment, Standard, ModelMesh",
        "  - InferenceGraph/g: spec.nodes: root node not found, InferenceGraph needs a node with name "
        "'root' as the root node of the graph",
    ]


def test_strict_schema_catches_typos_and_unquoted_values() -> None:
    r = cli("manifests", "--check", f"{IN}/schema-bad.yaml")
    f = f"{IN}/schema-bad.yaml"
    assert r.code == 2
    assert r.err.splitlines() == [
        f"error: {f}: 3 problems:",
        "  - InferenceService/typo: metadata.annotations.autoscaling.knative.dev/target: 10 is not of type 'string'",
        "  - InferenceService/typo: spec.predictor: Additional properties are not allowed "
        "('minReplica' was unexpected)",
        "  - InferenceService/typo: spec.predictor.model.resources.requests.cpu: "
        "0.5 is not valid under any of the given schemas",
    ]


def test_faithful_schema_lets_unknown_fields_through() -> None:
    r = cli("manifests", "--check", "--schema", "faithful", f"{IN}/schema-bad.yaml")
    assert r.code == 2
    assert r.err == (
        f"error: {IN}/schema-bad.yaml: InferenceService/typo: spec.predictor.model.resources.requests.cpu: "
        "0.5 is not valid under any of the given schemas\n"
    )


def test_generated_output_checks_clean(tmp_path: Path) -> None:
    """What ``manifests`` prints passes ``manifests --check``, YAML and JSON alike."""
    for fmt in ("yaml", "json"):
        r = cli(
            "manifests",
            "graphs/ml-pipeline/graph.yaml",
            "--deploy",
            "graphs/ml-pipeline/deploy.yaml",
            "-o",
            fmt,
        )
        assert r.code == 0
        out = tmp_path / f"out.{fmt}"
        out.write_text(r.out)
        checked = cli("manifests", "--check", str(out))
        assert checked.code == 0, checked.err
        assert checked.err.endswith("ok: 6 object(s) valid\n")


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    bad = tmp_path / "x.yaml"
    bad.write_text("a: [1,\n")
    r = cli("manifests", "--check", str(bad), str(tmp_path / "missing.yaml"))
    assert r.code == 2
    lines = r.err.splitlines()
    assert lines[0] == "error: 2 problems:"
    assert lines[1] == f"  - {bad}: line 2, column 1: invalid YAML: expected the node content, but found '<stream end>'"
    assert lines[2].startswith(f"  - {tmp_path / 'missing.yaml'}: cannot read file: ")
