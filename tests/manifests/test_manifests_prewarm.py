"""The router `manifests` deploys gets each backend's own scale-to-zero horizon (``--prewarm-idle``)."""

from __future__ import annotations

from typing import Any

import pytest

from graph_router.cli import parse_prewarm
from graph_router.errors import SpecError
from graph_router.manifests.deploy import parse_deploy
from graph_router.manifests.prewarm import idle_threshold, prewarm_args


def backends(services: dict[str, Any]) -> Any:
    base = {"kind": "KnativeService", "image": "example/m:1"}
    return parse_deploy({"services": {n: {**base, **s} for n, s in services.items()}}).services


def test_thresholds_follow_each_backends_autoscaling_settings() -> None:
    svcs = backends({
        "plain": {},
        "zero": {"minReplicas": 0},
        "warm": {"minReplicas": 1},
        "window": {"autoscaling": {"window": "2m"}},
        "delay": {"autoscaling": {"scale-down-delay": "1m30s"}},
        "retain": {"autoscaling": {"window": "30s", "scale-to-zero-pod-retention-period": "5m"}},
    })
    assert {n: idle_threshold(b) for n, b in svcs.items()} == {
        "plain": 90.0, "zero": 90.0, "warm": None, "window": 150.0, "delay": 180.0, "retain": 360.0}
    assert prewarm_args(svcs, ["plain", "warm", "window", "retain", "unused-by-the-graph"]) == [
        "--prewarm-idle", "retain=360", "--prewarm-idle", "warm=inf", "--prewarm-idle", "window=150"]


def test_the_router_reads_the_arguments_manifests_writes() -> None:
    s = parse_prewarm("certain", ["retain=360", "warm=inf", "45"], 30.0)
    assert (s.idle, s.idle_by_service) == (45.0, {"retain": 360.0, "warm": float("inf")})
    assert s.idle_for("warm", "warm.ns.svc.cluster.local") == float("inf")
    assert s.idle_for("", "retain.ns.svc.cluster.local") == 360.0  # a serviceUrl's host names it too
    assert s.idle_for("other", "other.ns") == 45.0


@pytest.mark.parametrize("bad", ["x=", "=5", "soon", "a=-1", "nan"])
def test_bad_prewarm_idle_is_refused_with_the_fix(bad: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_prewarm("certain", [bad], 30.0)
    assert info.value.render() == (f"--prewarm-idle {bad!r}: expected SECONDS or NAME=SECONDS (a number >= 0), "
                                   "e.g. --prewarm-idle 90 or --prewarm-idle classifier=120")
