"""``graph-router rollout``: canary -> promote -> rollback, on an InferenceService and a Knative Service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from manifest_helpers import ROOT, cli

from graph_router.manifests.rollout import merge_patch
from graph_router.manifests.validate import check_object

DEPLOY = "graphs/canary/deploy.yaml"


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def one(out: str) -> Any:
    docs = [d for d in yaml.safe_load_all(out) if d is not None]
    assert len(docs) == 1
    return docs[0]


def save(tmp_path: Path, name: str, obj: Any) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(obj))
    return str(path)


def test_isvc_canary_promote_rollback(tmp_path: Path) -> None:
    stable = one(cli("manifests", "graphs/canary/graph.yaml", "--deploy", DEPLOY).out.split("---")[1])
    assert stable["spec"]["predictor"]["model"]["storageUri"] == "gs://graph-router-examples/fraud/v1"
    assert "canaryTrafficPercent" not in stable["spec"]["predictor"]

    r = cli("rollout", "canary", "fraud-model", "--deploy", DEPLOY)
    assert (r.code, r.err) == (0, "")
    canary = one(r.out)
    predictor = canary["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 20
    assert predictor["model"]["storageUri"] == "gs://graph-router-examples/fraud/v2"
    assert check_object(canary) == []
    # Everything else is the stable object: the canary changes only the model and the split.
    assert merge_patch(stable, canary) == {
        "spec": {
            "predictor": {
                "canaryTrafficPercent": 20,
                "model": {"storageUri": "gs://graph-router-examples/fraud/v2"},
            }
        }
    }

    live = save(
        tmp_path,
        "live.yaml",
        {**canary, "status": {"url": "http://x"}, "metadata": {**canary["metadata"], "resourceVersion": "7"}},
    )
    more = cli("rollout", "canary", "fraud-model", "-f", live, "--percent", "50", "--patch", "-o", "json")
    assert (more.code, orjson.loads(more.out)) == (0, {"spec": {"predictor": {"canaryTrafficPercent": 50}}})

    promoted = one(cli("rollout", "promote", "fraud-model", "-f", live).out)
    assert "canaryTrafficPercent" not in promoted["spec"]["predictor"]
    assert promoted["spec"]["predictor"]["model"]["storageUri"] == "gs://graph-router-examples/fraud/v2"
    assert "status" not in promoted and "resourceVersion" not in promoted["metadata"]

    rolled = cli("rollout", "rollback", "fraud-model", "-f", live, "--patch")
    assert (rolled.code, one(rolled.out)) == (0, {"spec": {"predictor": {"canaryTrafficPercent": 0}}})


def test_isvc_promote_and_rollback_from_description() -> None:
    promote = cli("rollout", "promote", "fraud-model", "--deploy", DEPLOY, "--patch", "-o", "json")
    assert orjson.loads(promote.out) == {"spec": {"predictor": {"canaryTrafficPercent": None}}}
    rollback = cli("rollout", "rollback", "fraud-model", "--deploy", DEPLOY, "--patch", "-o", "json")
    assert orjson.loads(rollback.out) == {"spec": {"predictor": {"canaryTrafficPercent": 0}}}


@pytest.mark.parametrize(
    ("argv", "err"),
    [
        (
            ["canary", "fraud-model", "--deploy", DEPLOY, "--percent", "120"],
            "error: fraud-model: --percent: expected 0 <= 120 <= 100\n",
        ),
        (
            ["rollback", "fraud-model", "--deploy", DEPLOY, "--to-revision", "fraud-model-00001"],
            "error: fraud-model: --to-revision: an InferenceService rolls "
            "back to its previous rolled-out revision "
            "(canaryTrafficPercent: 0); --to-revision is for Knative Services\n",
        ),
        (
            ["canary", "fraud-model", "--deploy", DEPLOY, "--image", "x:1"],
            "error: fraud-model: --image: an InferenceService's candidate is a model: use --storage-uri/--runtime\n",
        ),
        (["promote", "nope", "--deploy", DEPLOY], f"error: {DEPLOY}: services.nope: not described\n"),
        (
            ["promote", "classifier", "--deploy", "graphs/sequential-pipeline/deploy.yaml"],
            "error: graphs/sequential-pipeline/deploy.yaml: "
            "services.classifier.canary: no canary described to "
            "promote; use -f with the live object\n",
        ),
        (
            ["canary", "classifier", "--deploy", "graphs/sequential-pipeline/deploy.yaml"],
            "error: classifier: --percent: required (no canary.trafficPercent in a description)\n",
        ),
    ],
    ids=["percent", "isvc-to-revision", "isvc-image", "undescribed", "no-canary", "no-percent"],
)
def test_rollout_errors(argv: list[str], err: str) -> None:
    r = cli("rollout", *argv)
    assert (r.code, r.out, r.err) == (2, "", err)


def test_isvc_canary_without_new_model_warns() -> None:
    r = cli(
        "rollout",
        "canary",
        "classifier",
        "--deploy",
        "graphs/sequential-pipeline/deploy.yaml",
        "--percent",
        "10",
    )
    assert r.code == 0
    assert r.err == (
        "warning: classifier: the predictor is unchanged, so KServe creates no new revision to send 10% to: "
        "give the candidate with --storage-uri (or a canary in the description)\n"
    )
    assert one(r.out)["spec"]["predictor"]["canaryTrafficPercent"] == 10


KSVC_DEPLOY = "graphs/sequential-pipeline/deploy.yaml"


def test_knative_canary_promote_rollback(tmp_path: Path) -> None:
    r = cli(
        "rollout",
        "canary",
        "preprocessor",
        "--deploy",
        KSVC_DEPLOY,
        "--percent",
        "10",
        "--image",
        "example.com/pre:2",
        "--stable-revision",
        "preprocessor-00001",
    )
    assert (r.code, r.err) == (0, "")
    canary = one(r.out)
    assert canary["spec"]["traffic"] == [
        {"revisionName": "preprocessor-00001", "percent": 90, "tag": "prev"},
        {"latestRevision": True, "percent": 10, "tag": "latest"},
    ]
    assert canary["spec"]["template"]["spec"]["containers"][0]["image"] == "example.com/pre:2"
    assert check_object(canary) == []
    live = save(tmp_path, "ksvc.yaml", canary)

    again = cli("rollout", "canary", "preprocessor", "-f", live, "--percent", "30", "--patch", "-o", "json")
    assert orjson.loads(again.out) == {
        "spec": {
            "traffic": [
                {"revisionName": "preprocessor-00001", "percent": 70, "tag": "prev"},
                {"latestRevision": True, "percent": 30, "tag": "latest"},
            ]
        }
    }

    promoted = cli("rollout", "promote", "preprocessor", "-f", live, "--patch", "-o", "json")
    assert orjson.loads(promoted.out) == {
        "spec": {
            "traffic": [
                {"latestRevision": True, "percent": 100, "tag": "latest"},
                {"revisionName": "preprocessor-00001", "percent": 0, "tag": "prev"},
            ]
        }
    }

    back = cli("rollout", "rollback", "preprocessor", "-f", live, "--patch", "-o", "json")
    assert orjson.loads(back.out) == {
        "spec": {
            "traffic": [
                {"revisionName": "preprocessor-00001", "percent": 100, "tag": "prev"},
                {"latestRevision": True, "percent": 0, "tag": "latest"},
            ]
        }
    }

    pinned = cli("rollout", "rollback", "preprocessor", "-f", live, "--to-revision", "preprocessor-00007")
    assert one(pinned.out)["spec"]["traffic"][0] == {
        "revisionName": "preprocessor-00007",
        "percent": 100,
        "tag": "prev",
    }


def test_knative_byo_revision_names(tmp_path: Path) -> None:
    ksvc = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": "pre"},
        "spec": {
            "template": {
                "metadata": {"name": "pre-v1"},
                "spec": {"containers": [{"image": "example.com/pre:1"}]},
            }
        },
    }
    live = save(tmp_path, "pre.yaml", ksvc)
    needs_name = cli("rollout", "canary", "pre", "-f", live, "--percent", "20", "--image", "example.com/pre:2")
    assert needs_name.err == (
        'error: pre: --revision-name: spec.template.metadata.name is set ("pre-v1"): '
        "a changed template needs a new revision name\n"
    )
    r = cli(
        "rollout",
        "canary",
        "pre",
        "-f",
        live,
        "--percent",
        "20",
        "--image",
        "example.com/pre:2",
        "--revision-name",
        "pre-v2",
    )
    out = one(r.out)
    assert out["spec"]["template"]["metadata"]["name"] == "pre-v2"
    assert out["spec"]["traffic"] == [
        {"revisionName": "pre-v1", "percent": 80, "tag": "prev"},
        {"revisionName": "pre-v2", "percent": 20, "tag": "latest"},
    ]
    wrong = cli("rollout", "rollback", "pre", "-f", save(tmp_path, "c.yaml", out), "--to-revision", "other-v1")
    assert (wrong.code, wrong.err) == (
        2,
        'error: pre: --to-revision: revision "other-v1" is not a revision of pre (names start with "pre-")\n',
    )


@pytest.mark.parametrize(
    ("argv", "err"),
    [
        (
            ["canary", "preprocessor", "--deploy", KSVC_DEPLOY, "--percent", "10", "--image", "x:2"],
            "error: preprocessor: --stable-revision: cannot tell which "
            "revision serves now; pass --stable-revision "
            "(kubectl get revisions -l serving.knative.dev/service=preprocessor)\n",
        ),
        (
            ["promote", "preprocessor", "--deploy", KSVC_DEPLOY],
            'error: preprocessor: spec.traffic: no canary to promote (no revision tagged "prev")\n',
        ),
        (
            ["rollback", "preprocessor", "--deploy", KSVC_DEPLOY],
            'error: preprocessor: --to-revision: no revision tagged "prev" to roll back to; pass --to-revision\n',
        ),
    ],
    ids=["no-stable", "promote-nothing", "rollback-nothing"],
)
def test_knative_errors(argv: list[str], err: str) -> None:
    r = cli("rollout", *argv)
    assert (r.code, r.err) == (2, err)


def test_file_without_the_service(tmp_path: Path) -> None:
    live = save(tmp_path, "x.yaml", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}})
    r = cli("rollout", "promote", "a", "-f", live)
    assert (r.code, r.err) == (2, f'error: {live}: no InferenceService or Knative Service named "a"\n')


def test_merge_patch_rfc7386() -> None:
    before = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    after = {"a": {"b": 1, "c": [2]}, "e": {"f": None}}
    assert merge_patch(before, after) == {"a": {"c": [2]}, "d": None, "e": {"f": None}}
    assert merge_patch(before, before) == {}


def test_knative_stable_revision_from_live_status(tmp_path: Path) -> None:
    """``kubectl get ksvc -o yaml``: status.traffic names the serving revision; spec's prev tag wins later."""
    live = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {
            "name": "pre",
            "namespace": "ns",
            "resourceVersion": "9",
            "uid": "u",
            "generation": 1,
            "annotations": {
                "serving.knative.dev/creator": "admin",
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
            },
        },
        "spec": {
            "template": {"spec": {"containers": [{"image": "example.com/pre:1", "name": "user-container"}]}},
            "traffic": [{"latestRevision": True, "percent": 100}],
        },
        "status": {"traffic": [{"latestRevision": True, "percent": 100, "revisionName": "pre-00001"}]},
    }
    r = cli(
        "rollout",
        "canary",
        "pre",
        "-f",
        save(tmp_path, "live.yaml", live),
        "--percent",
        "60",
        "--image",
        "example.com/pre:2",
    )
    assert (r.code, r.err) == (0, "")
    out = one(r.out)
    assert out["spec"]["traffic"] == [
        {"revisionName": "pre-00001", "percent": 40, "tag": "prev"},
        {"latestRevision": True, "percent": 60, "tag": "latest"},
    ]
    assert out["metadata"] == {
        "name": "pre",
        "namespace": "ns",
        "annotations": {"serving.knative.dev/creator": "admin"},
    }
    # Mid-canary (60% on the candidate), the live status shows the candidate as the busiest revision;
    # the spec's prev tag still names the stable one.
    mid = {
        **out,
        "status": {
            "traffic": [
                {"revisionName": "pre-00001", "percent": 40, "tag": "prev"},
                {"revisionName": "pre-00002", "percent": 60, "tag": "latest"},
            ]
        },
    }
    again = cli(
        "rollout", "canary", "pre", "-f", save(tmp_path, "mid.yaml", mid), "--percent", "80", "--patch", "-o", "json"
    )
    assert orjson.loads(again.out) == {
        "spec": {
            "traffic": [
                {"revisionName": "pre-00001", "percent": 20, "tag": "prev"},
                {"latestRevision": True, "percent": 80, "tag": "latest"},
            ]
        }
    }
