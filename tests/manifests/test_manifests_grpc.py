"""A backend declaring ``protocol: grpc-v2``: KServe's and Knative's gRPC conventions, and grpc:// resolution."""

from __future__ import annotations

from pathlib import Path

import pytest
from manifest_helpers import ROOT, cli

from graph_router.compiler import Resolver
from tests.support.graphs import graph as graph_text
from tests.support.graphs import sequence_of


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def write(tmp_path: Path, services: str) -> tuple[str, str]:
    graph = tmp_path / "graph.yaml"
    graph.write_text(graph_text("g", sequence_of("m")))
    deploy = tmp_path / "deploy.yaml"
    deploy.write_text(f"namespace: ns\nservices:\n  m:\n{services}")
    return str(graph), str(deploy)


def test_knative_grpc_backend_gets_an_h2c_port_and_a_grpc_url(tmp_path: Path) -> None:
    graph, deploy = write(tmp_path, "    kind: KnativeService\n    image: img\n    protocol: grpc-v2\n")
    r = cli("manifests", graph, "--deploy", deploy, "--router", "knative")
    assert r.code == 0, r.err
    backend, router = r.docs()[0], r.docs()[-1]
    assert backend["spec"]["template"]["spec"]["containers"][0]["ports"] == [{"containerPort": 8081, "name": "h2c"}]
    args = router["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "m=grpc://m.ns.svc.cluster.local:80/m" in args


def test_knative_grpc_backend_keeps_an_explicit_port(tmp_path: Path) -> None:
    graph, deploy = write(tmp_path, "    kind: KnativeService\n    image: img\n    protocol: grpc-v2\n    port: 9000\n"
                                    "    modelName: other\n")
    r = cli("manifests", graph, "--deploy", deploy, "--router", "deployment")
    assert r.code == 0, r.err
    docs = r.docs()
    assert docs[0]["spec"]["template"]["spec"]["containers"][0]["ports"] == [{"containerPort": 9000, "name": "h2c"}]
    assert any("m=grpc://m.ns.svc.cluster.local:80/other" in str(d) for d in docs)


def test_inference_service_grpc_follows_kserves_documented_setup(tmp_path: Path) -> None:
    graph, deploy = write(tmp_path, "    kind: InferenceService\n    modelFormat: sklearn\n    protocol: grpc-v2\n"
                                    "    storageUri: gs://b/m\n")
    r = cli("manifests", graph, "--deploy", deploy, "--router", "knative")
    assert r.code == 0, r.err
    model = r.docs()[0]["spec"]["predictor"]["model"]
    assert model["protocolVersion"] == "v2"
    assert model["ports"] == [{"name": "h2c", "protocol": "TCP", "containerPort": 8081}]
    r = cli("manifests", graph, "--deploy", deploy, "--router", "kserve")
    assert r.code == 0
    assert ("warning: services.m.protocol grpc-v2: KServe's router calls steps over HTTP only, so it calls this "
            "InferenceService's HTTP v2 endpoint; --router knative or deployment calls it over gRPC") in r.err


def test_a_runtime_without_v2_is_warned(tmp_path: Path) -> None:
    graph, deploy = write(tmp_path, "    kind: InferenceService\n    modelFormat: tensorflow\n    protocol: grpc-v2\n"
                                    "    runtime: kserve-tensorflow-serving\n    storageUri: gs://b/m\n")
    r = cli("manifests", graph, "--deploy", deploy, "--router", "knative")
    assert "runtime kserve-tensorflow-serving serves neither v2 nor grpc-v2 (v1, grpc-v1)" in r.err


def test_service_name_resolution_can_target_grpc() -> None:
    assert Resolver(namespace="ns", protocol="grpc").service_url("m") == "grpc://m.ns.svc.cluster.local:80/m"
