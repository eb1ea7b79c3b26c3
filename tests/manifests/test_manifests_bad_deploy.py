"""Bad deployment descriptions: each gives its precise error, with its path, in KServe's/Knative's words."""

from __future__ import annotations

from typing import Any

import pytest
from manifest_helpers import sequence_graph

from graph_router.errors import SpecError
from graph_router.manifests import RouterMode, build_manifests, parse_deploy

LONG49 = "a" * 49
LONG47 = "b" * 47
LONG64 = "c" * 64


def isvc(**kw: Any) -> dict[str, Any]:
    return {"modelFormat": "sklearn", "storageUri": "gs://bucket/model", **kw}


def ksvc(**kw: Any) -> dict[str, Any]:
    return {"kind": "KnativeService", "image": "example.com/img:1", **kw}


def problems(
    services: dict[str, Any],
    *,
    graph_services: tuple[str, ...] | None = None,
    router: dict[str, Any] | None = None,
    mode: RouterMode | None = None,
) -> list[str]:
    """Every problem reported (as ``path: message``) for a description of ``services``."""
    data: dict[str, Any] = {"services": services}
    if router is not None:
        data["router"] = router
    graph = sequence_graph(*(graph_services if graph_services is not None else tuple(services)))
    with pytest.raises(SpecError) as exc:
        build_manifests([graph], parse_deploy(data), mode=mode)
    return [str(p) for p in exc.value.problems]


BAD: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "window-too-short",
        {"m": isvc(autoscaling={"window": "5s"})},
        ["services.m.autoscaling.window: expected 6s <= 5s <= 1h0m0s"],
    ),
    (
        "window-too-long",
        {"m": ksvc(autoscaling={"window": "2h"})},
        ["services.m.autoscaling.window: expected 6s <= 2h <= 1h0m0s"],
    ),
    (
        "window-sub-second",
        {"m": isvc(autoscaling={"window": "60500ms"})},
        ["services.m.autoscaling.window: must be specified with at most second precision"],
    ),
    (
        "window-not-a-duration",
        {"m": isvc(autoscaling={"window": 60})},
        ["services.m.autoscaling.window: invalid value: 60"],
    ),
    (
        "panic-threshold",
        {"m": isvc(autoscaling={"panic-threshold-percentage": 100})},
        ["services.m.autoscaling.panic-threshold-percentage: expected 110 <= 100 <= 1000"],
    ),
    (
        "panic-window",
        {"m": ksvc(autoscaling={"panic-window-percentage": 0})},
        ["services.m.autoscaling.panic-window-percentage: expected 1 <= 0 <= 100"],
    ),
    (
        "activation-scale",
        {"m": ksvc(autoscaling={"activation-scale": 1})},
        ["services.m.autoscaling.activation-scale: min-activate-scale=1 must be greater than 1"],
    ),
    (
        "activation-over-max",
        {"m": ksvc(maxReplicas=2, autoscaling={"activation-scale": 3})},
        ["services.m.autoscaling.activation-scale: max-scale=2 is less than min-activate-scale=3"],
    ),
    (
        "target-too-small",
        {"m": ksvc(scaleTarget=0.001)},
        ["services.m.scaleTarget: target 0.001 should be at least 0.01"],
    ),
    (
        "target-utilization",
        {"m": isvc(autoscaling={"target-utilization-percentage": 150})},
        ["services.m.autoscaling.target-utilization-percentage: expected 1 <= 150 <= 100"],
    ),
    (
        "scale-down-delay",
        {"m": ksvc(autoscaling={"scale-down-delay": "2h"})},
        ["services.m.autoscaling.scale-down-delay: expected 0s <= 2h <= 1h0m0s"],
    ),
    (
        "retention",
        {"m": ksvc(autoscaling={"scale-to-zero-pod-retention-period": "-1s"})},
        ["services.m.autoscaling.scale-to-zero-pod-retention-period: expected 0s <= -1s <= 1h0m0s"],
    ),
    (
        "initial-scale-negative",
        {"m": isvc(autoscaling={"initial-scale": -1})},
        [
            "services.m.autoscaling.initial-scale: invalid value: -1 "
            "(autoscaling.knative.dev/initial-scale must be greater than 0)"
        ],
    ),
    (
        "burst-capacity",
        {"m": ksvc(autoscaling={"target-burst-capacity": -2})},
        ["services.m.autoscaling.target-burst-capacity: invalid value: -2"],
    ),
    (
        "unknown-class",
        {"m": ksvc(autoscaling={"class": "xpa.autoscaling.knative.dev"})},
        ["services.m.autoscaling.class: invalid value: xpa.autoscaling.knative.dev"],
    ),
    (
        "isvc-kpa-cpu",
        {"m": isvc(scaleMetric="cpu")},
        ["services.m.scaleMetric: [cpu] is not a supported metric"],
    ),
    ("ksvc-kpa-memory", {"m": ksvc(scaleMetric="memory")}, ["services.m.scaleMetric: invalid value: memory"]),
    (
        "isvc-hpa-concurrency",
        {"m": isvc(scaleMetric="concurrency", autoscaling={"class": "hpa"})},
        ["services.m.scaleMetric: [concurrency] is not a supported metric"],
    ),
    (
        "isvc-rps-target",
        {"m": isvc(scaleMetric="rps", scaleTarget=0)},
        [
            "services.m.scaleTarget: the target for rps should be greater than 1",
            "services.m.scaleTarget: target 0 should be at least 0.01",
        ],
    ),
    (
        "isvc-min-over-max",
        {"m": isvc(minReplicas=3, maxReplicas=2)},
        ["services.m.minReplicas: 'MinReplicas' cannot be greater than MaxReplicas"],
    ),
    (
        "isvc-min-negative",
        {"m": isvc(minReplicas=-1)},
        ["services.m.minReplicas: 'MinReplicas' cannot be less than 0"],
    ),
    (
        "ksvc-min-over-max",
        {"m": ksvc(minReplicas=3, maxReplicas=2)},
        ["services.m.maxReplicas: max-scale=2 is less than min-scale=3"],
    ),
    (
        "canary-over-100",
        {"m": isvc(canary={"storageUri": "gs://bucket/v2", "trafficPercent": 120})},
        ["services.m.canary.trafficPercent: expected 0 <= 120 <= 100"],
    ),
    (
        "canary-same-model",
        {"m": isvc(canary={"storageUri": "gs://bucket/model"})},
        ["services.m.canary.storageUri: the canary must differ from the stable model: same storageUri and runtime"],
    ),
    (
        "traffic-sum",
        {"m": ksvc(traffic=[{"revisionName": "m-1", "percent": 50}, {"latestRevision": True, "percent": 40}])},
        ["services.m.traffic: Traffic targets sum to 90, want 100"],
    ),
    (
        "traffic-duplicate-tag",
        {
            "m": ksvc(
                traffic=[
                    {"revisionName": "m-1", "percent": 50, "tag": "a"},
                    {"latestRevision": True, "percent": 50, "tag": "a"},
                ]
            )
        },
        [
            'services.m.traffic[1].tag: Multiple definitions for "a" (services.m.traffic[1].tag, '
            "services.m.traffic[0].tag)"
        ],
    ),
    (
        "traffic-pinned-and-latest",
        {"m": ksvc(traffic=[{"revisionName": "m-1", "latestRevision": True, "percent": 100}])},
        ['services.m.traffic[0].latestRevision: may not set revisionName "m-1" when latestRevision is true'],
    ),
    (
        "traffic-percent-range",
        {"m": ksvc(traffic=[{"revisionName": "m-1", "percent": 150}, {"latestRevision": True, "percent": -50}])},
        [
            "services.m.traffic[0].percent: expected 0 <= 150 <= 100",
            "services.m.traffic[1].percent: expected 0 <= -50 <= 100",
        ],
    ),
    (
        "traffic-bad-tag",
        {"m": ksvc(traffic=[{"latestRevision": True, "percent": 100, "tag": "Canary"}])},
        [
            "services.m.traffic[0].tag: invalid value: not a DNS 1035 "
            "label: [a DNS-1035 label must consist of lower "
            "case alphanumeric characters or '-', start with an "
            "alphabetic character, and end with an alphanumeric "
            "character (e.g. 'my-name',  or 'abc-123', regex used for "
            "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')]"
        ],
    ),
    (
        "byo-revision-prefix",
        {"m": ksvc(revisionName="v2")},
        ['services.m.revisionName: invalid value: "v2" must have prefix "m-"'],
    ),
    (
        "container-concurrency",
        {"m": ksvc(containerConcurrency=1001)},
        ["services.m.containerConcurrency: expected 0 <= 1001 <= 1000"],
    ),
    ("timeout", {"m": isvc(timeout=900)}, ["services.m.timeout: expected 0 <= 900 <= 600"]),
    (
        "storage-uri",
        {"m": isvc(storageUri="ftp://host/model")},
        [
            "services.m.storageUri: storageUri, must be one of: [gs://, "
            "s3://, pvc://, file://, https://, http://, "
            "hdfs://, webhdfs://, oci://, oci+native://, oci+fetch://, hf://] or match "
            "https://{}.blob.core.windows.net/{}/{} or be an absolute or "
            "relative local path. StorageUri [ftp://host/model] is not supported"
        ],
    ),
    (
        "isvc-float-target",
        {"m": isvc(scaleTarget=2.5)},
        [
            "services.m.scaleTarget: must be an integer for an "
            "InferenceService (KServe's scaleTarget is an int32), "
            "got 2.5"
        ],
    ),
    (
        "isvc-name-canary",
        {LONG49: isvc(canary={"storageUri": "gs://bucket/v2"})},
        [
            f"services.{LONG49}: must be no more than 48 characters: while a canary runs, the host label "
            f'"prev-{LONG49}-predictor" must be no more than 63 characters'
        ],
    ),
    (
        "isvc-name-tag-routing",
        {LONG47: isvc(tagRouting=True)},
        [
            f"services.{LONG47}: must be no more than 46 characters: with tag routing on, the host label "
            f'"latest-{LONG47}-predictor" must be no more than 63 characters'
        ],
    ),
    ("ksvc-name-length", {LONG64: ksvc()}, [f"services.{LONG64}: must be no more than 63 characters"]),
]


@pytest.mark.parametrize(("services", "expected"), [(s, e) for _, s, e in BAD], ids=[n for n, _, _ in BAD])
def test_bad_description(services: dict[str, Any], expected: list[str]) -> None:
    assert problems(services) == expected


def test_at_least_twenty_cases() -> None:
    assert len(BAD) >= 20


def test_undescribed_service() -> None:
    assert problems({"a": isvc()}, graph_services=("a", "b")) == [
        'services.b: not described: graph "g" calls serviceName "b" at nodes.root.steps[1]'
    ]


def test_router_name_collision() -> None:
    assert problems({"g": ksvc()}) == ['router: the router\'s name "g" collides with services.g; set router.name']


def test_router_checks() -> None:
    assert problems({"m": isvc()}, router={"minReplicas": 2, "maxReplicas": 1, "containerConcurrency": -1}) == [
        "router.containerConcurrency: expected 0 <= -1 <= 1000",
        "router.maxReplicas: max-scale=1 is less than min-scale=2",
    ]


def test_every_problem_listed_at_once() -> None:
    found = problems(
        {
            "m": isvc(minReplicas=-1, autoscaling={"window": "1s", "panic-window-percentage": 101}),
            "k": ksvc(timeout=601),
        }
    )
    assert found == [
        "services.m.minReplicas: 'MinReplicas' cannot be less than 0",
        "services.m.autoscaling.panic-window-percentage: expected 1 <= 101 <= 100",
        "services.m.autoscaling.window: expected 6s <= 1s <= 1h0m0s",
        "services.k.timeout: expected 0 <= 601 <= 600",
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"services": {"m": isvc(minReplica=0)}},
            ["services.m.minReplica: unknown field (did you mean 'minReplicas'?)"],
        ),
        (
            {"services": {"m": {"kind": "Deployment"}}},
            ["services.m.kind: must be one of InferenceService, KnativeService, got 'Deployment'"],
        ),
        ({"services": {"m": {"modelFormat": "sklearn"}}}, ["services.m.storageUri: Field required"]),
        (
            {"services": {"m": isvc(autoscaling={"windw": "60s"})}},
            ["services.m.autoscaling.windw: unknown field (did you mean 'window'?)"],
        ),
        (
            {"router": {"mode": "lambda"}, "services": {}},
            ["router.mode: Input should be 'knative', 'deployment' or 'kserve'"],
        ),
    ],
    ids=["typo", "kind", "required", "annotation-typo", "router-mode"],
)
def test_structural_problems(data: dict[str, Any], expected: list[str]) -> None:
    with pytest.raises(SpecError) as exc:
        parse_deploy(data)
    assert [str(p) for p in exc.value.problems] == expected


def test_kserve_mode_router_name_uses_inference_graph_wording() -> None:
    found = problems({"m": isvc()}, router={"name": "Router"}, mode=RouterMode.KSERVE)
    assert found == [
        'router.name: the InferenceGraph "Router" is invalid: a '
        "InferenceGraph name must consist of lower case "
        "alphanumeric characters or '-', and must start with alphabetical character. (e.g. \"my-name\" or "
        "\"abc-123\", regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
    ]


def test_kserve_mode_integer_scale_target() -> None:
    found = problems({"m": isvc()}, router={"scaleTarget": 0.5}, mode=RouterMode.KSERVE)
    assert found == ["router.scaleTarget: must be an integer for an InferenceGraph, got 0.5"]
