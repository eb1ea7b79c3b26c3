"""The generator's choices: URLs, namespaces, router modes, KServe extension removal, warnings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from manifest_helpers import ROOT, cli, sequence_graph

from graph_router.errors import SpecError
from graph_router.manifests import RouterMode, build_manifests, parse_deploy
from graph_router.manifests.rules import format_go_duration, isvc_name_limit, parse_go_duration


def write(tmp_path: Path, name: str, data: Any) -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return str(path)


def router_args(objects: list[Any]) -> list[str]:
    ksvc = next(
        o
        for o in objects
        if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "router"
        and o["kind"] in ("Service", "Deployment")
        and "template" in o["spec"]
    )
    return list(ksvc["spec"]["template"]["spec"]["containers"][0]["args"])


def test_backend_urls_resolved_like_kserve() -> None:
    graph = sequence_graph("m1", "m2", "pre", "post")
    spec = parse_deploy(
        {
            "namespace": "ns",
            "services": {
                "m1": {"modelFormat": "sklearn", "storageUri": "gs://b/m1"},
                "m2": {"modelFormat": "sklearn", "storageUri": "gs://b/m2", "protocol": "v2"},
                "pre": {"kind": "KnativeService", "image": "x:1"},
                "post": {"kind": "KnativeService", "image": "x:1", "path": "/process"},
            },
        }
    )
    args = router_args(build_manifests([graph], spec).objects)
    assert args == [
        "serve",
        "/etc/graph-router/graph.yaml",
        "--service",
        "m1=http://m1.ns.svc.cluster.local/v1/models/m1:predict",
        "--service",
        "m2=http://m2.ns.svc.cluster.local/v2/models/m2/infer",
        "--service",
        "post=http://post.ns.svc.cluster.local/process",
        "--service",
        "pre=http://pre.ns.svc.cluster.local/v1/models/pre:predict",
    ]


def test_namespace_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    base = ["manifests", "graphs/canary/graph.yaml", "--deploy", "graphs/canary/deploy.yaml"]
    assert {d["metadata"]["namespace"] for d in cli(*base).docs()} == {"fraud"}
    assert {d["metadata"]["namespace"] for d in cli(*base, "-n", "prod").docs()} == {"prod"}
    graph = sequence_graph("m")
    spec = parse_deploy({"services": {"m": {"modelFormat": "sklearn", "storageUri": "gs://b/m"}}})
    assert {o["metadata"]["namespace"] for o in build_manifests([graph], spec).objects} == {"default"}


def test_router_defaults_min_scale_one_and_rolls_on_graph_change() -> None:
    spec = parse_deploy({"services": {"m": {"modelFormat": "sklearn", "storageUri": "gs://b/m"}}})
    objs = build_manifests([sequence_graph("m")], spec).objects
    router = objs[-1]
    anns = router["spec"]["template"]["metadata"]["annotations"]
    assert anns["autoscaling.knative.dev/min-scale"] == "1"
    other = build_manifests([sequence_graph("m", "m")], spec).objects[-1]
    other_hash = other["spec"]["template"]["metadata"]["annotations"]["graph-router.dev/graph-sha256"]
    assert other_hash != anns["graph-router.dev/graph-sha256"]
    assert objs[0]["spec"]["predictor"]["minReplicas"] == 0  # backends default to scale-to-zero


def test_kserve_mode_removes_every_extension(tmp_path: Path) -> None:
    graph = write(
        tmp_path,
        "g.yaml",
        {
            "apiVersion": "serving.kserve.io/v1alpha1",
            "kind": "InferenceGraph",
            "metadata": {"name": "g"},
            "spec": {
                "defaultRetry": {"maxRetries": 2},
                "propagateHeaders": ["x-id"],
                "nodes": {
                    "root": {
                        "routerType": "Sequence",
                        "steps": [
                            {"serviceName": "m", "timeout": 2.5},
                            {"serviceName": "m", "retry": {"maxRetries": 1}, "data": "$response"},
                        ],
                    }
                },
            },
        },
    )
    deploy = write(tmp_path, "d.yaml", {"services": {"m": {"modelFormat": "sklearn", "storageUri": "gs://b/m"}}})
    r = cli("manifests", graph, "--deploy", deploy, "--router", "kserve", "-o", "json")
    assert r.code == 0
    assert r.err.splitlines() == [
        "warning: defaultRetry removed: KServe's router has no retries",
        "warning: propagateHeaders removed: KServe's router takes headers.propagate from the "
        "inferenceservice-config ConfigMap",
        "warning: nodes.root.steps[0].timeout removed: KServe's router has no per-step timeout "
        "(spec.routerTimeouts.serviceClient is global)",
        "warning: nodes.root.steps[1].retry removed: KServe's router has no retries",
    ]
    ig = orjson.loads(r.out)["items"][1]
    assert ig["kind"] == "InferenceGraph"
    assert ig["spec"] == {
        "nodes": {
            "root": {
                "routerType": "Sequence",
                "steps": [{"serviceName": "m"}, {"serviceName": "m", "data": "$response"}],
            }
        },
        "minReplicas": 1,
    }


def test_warnings_unused_service_initial_scale_zero_router_scale_to_zero(tmp_path: Path) -> None:
    graph = sequence_graph("m")
    spec = parse_deploy(
        {
            "router": {"minReplicas": 0},
            "services": {
                "m": {
                    "modelFormat": "sklearn",
                    "storageUri": "gs://b/m",
                    "autoscaling": {"initial-scale": 0},
                },
                "spare": {"kind": "KnativeService", "image": "x:1"},
            },
        }
    )
    assert build_manifests([graph], spec).warnings == [
        "services.m.autoscaling.initial-scale: "
        "autoscaling.knative.dev/initial-scale=0 is rejected unless the "
        'cluster sets allow-zero-initial-scale: "true" in config-autoscaler',
        "router.minReplicas: 0 lets the router scale to zero: every request after an idle period waits for a "
        "cold start before any backend is called",
        'services.spare: described, but no graph uses serviceName "spare"',
    ]


def test_deployment_mode_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    docs = cli(
        "manifests",
        "graphs/ab-test/graph.yaml",
        "--deploy",
        "graphs/ab-test/deploy.yaml",
        "--router",
        "deployment",
    ).docs()
    assert [(d["apiVersion"], d["kind"]) for d in docs] == [
        ("serving.kserve.io/v1beta1", "InferenceService"),
        ("serving.kserve.io/v1beta1", "InferenceService"),
        ("v1", "ConfigMap"),
        ("apps/v1", "Deployment"),
        ("v1", "Service"),
        ("policy/v1", "PodDisruptionBudget"),
    ]
    dep, svc, pdb = docs[3], docs[4], docs[5]
    assert dep["spec"]["selector"]["matchLabels"] == svc["spec"]["selector"] == pdb["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["minAvailable"] == 1 and dep["spec"]["replicas"] == 2
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 8080}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 8080}
    graph_text = docs[2]["data"]["graph.yaml"]
    assert yaml.safe_load(graph_text)["spec"]["nodes"]["root"]["stickyHeader"] == "x-user-id"


def test_missing_deploy_and_bad_graph_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    r = cli("manifests", "graphs/canary/graph.yaml")
    assert (r.code, r.err) == (2, "error: --deploy: required: the deployment description (deploy.yaml)\n")
    bad = write(tmp_path, "d.yaml", "services: [\n")
    r = cli("manifests", "graphs/canary/graph.yaml", "--deploy", bad)
    assert r.code == 2 and r.err.startswith(f"error: {bad}: line 2, column 1: invalid YAML: ")


def test_router_name_only_with_one_graph() -> None:
    spec = parse_deploy(
        {"router": {"name": "r"}, "services": {"m": {"modelFormat": "sklearn", "storageUri": "gs://b/m"}}}
    )
    with pytest.raises(SpecError) as exc:
        build_manifests([sequence_graph("m", name="a"), sequence_graph("m", name="b")], spec)
    assert str(exc.value) == "router.name: set only with a single graph"


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("60s", 60 * 10**9),
        ("1m30s", 90 * 10**9),
        ("1.5h", 5400 * 10**9),
        ("500ms", 5 * 10**8),
        ("0", 0),
        ("-1s", -(10**9)),
        ("1h0m0s", 3600 * 10**9),
        ("60", None),
        ("", None),
        ("1x", None),
        ("s", None),
    ],
)
def test_go_durations(text: str, ns: int | None) -> None:
    assert parse_go_duration(text) == ns


def test_go_duration_format_and_name_limits() -> None:
    assert [format_go_duration(x * 10**9) for x in (0, 6, 90, 3600)] == ["0s", "6s", "1m30s", "1h0m0s"]
    assert isvc_name_limit(canary=False, tag_routing=False) == 53
    assert isvc_name_limit(canary=True, tag_routing=False) == 48
    assert isvc_name_limit(canary=True, tag_routing=True) == 46


def test_entry_point_pipeline() -> None:
    """``graph-router manifests ... | graph-router manifests --check -`` through the real CLI."""
    import subprocess
    import sys

    gen = subprocess.run(
        [
            sys.executable,
            "-m",
            "graph_router",
            "manifests",
            "graphs/v2-chain/graph.yaml",
            "--deploy",
            "graphs/v2-chain/deploy.yaml",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (gen.returncode, gen.stderr) == (0, "")
    check = subprocess.run(
        [sys.executable, "-m", "graph_router", "manifests", "--check", "-"],
        cwd=ROOT,
        input=gen.stdout,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (check.returncode, check.stderr.splitlines()[-1]) == (0, "ok: 3 object(s) valid")


def test_kserve_mode_router_settings() -> None:
    graph = sequence_graph("m")
    spec = parse_deploy(
        {
            "router": {
                "image": "example.com/router:2",
                "env": {"A": "1"},
                "minReplicas": 2,
                "containerConcurrency": 5,
                "autoscaling": {"window": "30s"},
            },
            "services": {"m": {"modelFormat": "sklearn", "storageUri": "gs://b/m"}},
        }
    )
    result = build_manifests([graph], spec, mode=RouterMode.KSERVE)
    assert result.warnings == [
        "router.image ignored: KServe's router image is set in the inferenceservice-config ConfigMap",
        "router.env ignored: an InferenceGraph has no such field",
        "router.containerConcurrency ignored: an InferenceGraph has no such field",
    ]
    ig = result.objects[-1]
    assert ig["metadata"]["annotations"] == {
        "autoscaling.knative.dev/min-scale": "2",
        "autoscaling.knative.dev/window": "30s",
        "serving.kserve.io/deploymentMode": "Serverless",
    }
    assert ig["spec"]["minReplicas"] == 2


def test_hpa_class_cannot_scale_to_zero() -> None:
    spec = parse_deploy(
        {
            "services": {
                "m": {
                    "modelFormat": "sklearn",
                    "storageUri": "gs://b/m",
                    "scaleMetric": "cpu",
                    "scaleTarget": 80,
                    "autoscaling": {"class": "hpa"},
                }
            }
        }
    )
    result = build_manifests([sequence_graph("m")], spec)
    assert result.warnings == [
        "services.m.minReplicas: the hpa class cannot scale to zero: Kubernetes' HPA keeps at least one pod"
    ]
    isvc = result.objects[0]
    assert isvc["metadata"]["annotations"]["autoscaling.knative.dev/class"] == "hpa.autoscaling.knative.dev"
    assert isvc["spec"]["predictor"]["scaleMetric"] == "cpu"


def test_urls_follow_kserve_model_name_and_runtime_protocol() -> None:
    graph = sequence_graph("a", "b", "c", "d")
    spec = parse_deploy(
        {
            "namespace": "ns",
            "services": {
                "a": {"modelFormat": "sklearn", "storageUri": "gs://b/a", "args": ["--model_name=iris"]},
                "b": {
                    "modelFormat": "sklearn",
                    "storageUri": "gs://b/b",
                    "protocol": "v2",
                    "runtime": "kserve-sklearnserver",
                },
                "c": {
                    "modelFormat": "sklearn",
                    "storageUri": "gs://b/c",
                    "runtime": "kserve-mlserver",
                    "env": {"MLSERVER_MODEL_NAME": "clf"},
                },
                "d": {"modelFormat": "sklearn", "storageUri": "gs://b/d", "runtime": "my-runtime"},
            },
        }
    )
    result = build_manifests([graph], spec)
    assert router_args(result.objects)[2:] == [
        "--service",
        "a=http://a.ns.svc.cluster.local/v1/models/iris:predict",
        "--service",
        "b=http://b.ns.svc.cluster.local/v1/models/b:predict",
        "--service",
        "c=http://c.ns.svc.cluster.local/v2/models/clf/infer",
        "--service",
        "d=http://d.ns.svc.cluster.local/v1/models/d:predict",
    ]
    assert result.warnings == [
        "services.b.protocol: v2, but runtime kserve-sklearnserver lists v1 first, so KServe's controller "
        "(and the router) call /v1/models/b:predict; omit runtime to let the protocol choose",
        "services.c.protocol: v1, but runtime kserve-mlserver lists v2 first, so KServe's controller (and "
        "the router) call /v2/models/clf/infer; omit runtime to let the protocol choose",
        "services.d.runtime: my-runtime is not a KServe built-in runtime: KServe's controller takes the "
        "protocol from its protocolVersions; the router assumes v1",
    ]
