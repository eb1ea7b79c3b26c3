"""Fan-out through the graph: what each service sees, and latencies composed along the graph."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from graph_router.errors import SpecError
from graph_router.planner import service as service_mod
from graph_router.planner.simulate import percentile

from .helpers import plan_for

ENSEMBLE = """
nodes:
  root:
    routerType: Ensemble
    steps:
      - {name: a, serviceName: a}
      - {name: b, serviceName: b}
      - {name: c, serviceName: c}
"""
SPLITTER = """
nodes:
  root:
    routerType: Splitter
    steps:
      - {serviceName: big, weight: 90}
      - {serviceName: small, weight: 10}
"""
SWITCH = """
nodes:
  root:
    routerType: Sequence
    steps:
      - {name: first, serviceName: first}
      - {name: pick, nodeName: pick}
  pick:
    routerType: Switch
    steps:
      - {name: x, serviceName: x, condition: "label"}
      - {name: y, serviceName: y, condition: "other"}
"""
SEQUENCE = """
nodes:
  root:
    routerType: Sequence
    steps:
      - serviceName: a
      - serviceName: b
"""


def described(*names: str, **fields: object) -> str:
    m = {"modelFormat": "sklearn", "storageUri": "gs://b/m", "minReplicas": 0, **fields}
    return yaml.safe_dump({"services": {n: dict(m) for n in names}})


RPS = [0.0] * 10 + [30.0] * 200 + [5.0] * 200


def test_an_ensemble_sends_the_full_load_to_each_of_its_models(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, described("a", "b", "c"), RPS, graph=ENSEMBLE, service_time=0.05)
    assert plan.calls == {"a": 1.0, "b": 1.0, "c": 1.0}
    for name in "abc":
        assert plan.result.services[name].load == RPS


def test_a_90_10_splitter_sends_90_and_10_percent(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, described("big", "small"), RPS, graph=SPLITTER, service_time=0.05)
    assert plan.calls == pytest.approx({"big": 0.9, "small": 0.1})
    assert plan.result.services["big"].load == pytest.approx([r * 0.9 for r in RPS])
    assert plan.result.services["small"].load == pytest.approx([r * 0.1 for r in RPS])


def test_a_splitter_keeps_its_weights_whatever_shares_say(tmp_path: Path) -> None:
    warnings: list[str] = []
    plan = plan_for(tmp_path, described("big", "small"), RPS, graph=SPLITTER, shares={"root.0": 0.5},
                    warnings=warnings)
    assert plan.calls == pytest.approx({"big": 0.9, "small": 0.1})
    assert warnings == ["Splitter 'root': branch shares given for its steps are ignored: its weights decide"]


def test_a_switch_without_shares_splits_equally_and_says_so(tmp_path: Path) -> None:
    warnings: list[str] = []
    plan = plan_for(tmp_path, described("first", "x", "y"), RPS, graph=SWITCH, warnings=warnings)
    assert plan.calls == pytest.approx({"first": 1.0, "x": 0.5, "y": 0.5})
    assert warnings == ["Switch 'pick': no branch shares given, assuming an equal share per step (set them "
                        "with --share pick.x=0.5 or a '# share' line in the traffic file)"]


def test_a_switch_takes_its_branch_shares(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, described("first", "x", "y"), RPS, graph=SWITCH, service_time=0.05,
                    shares={"pick.x": 0.75})
    assert plan.calls == pytest.approx({"first": 1.0, "x": 0.75, "y": 0.25})  # the rest goes to y
    # x hears of a request when "first" has answered it: the last 50 ms of traffic are still there.
    assert sum(plan.result.services["x"].load) == pytest.approx(0.75 * sum(RPS), rel=1e-3)


def test_switch_shares_that_add_up_to_more_than_one_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"shares\.pick: the shares of Switch 'pick' add up to 1\.2"):
        plan_for(tmp_path, described("first", "x", "y"), RPS, graph=SWITCH, shares={"pick.x": 0.6, "pick.y": 0.6})


def test_an_unknown_share_key_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"shares\.pick\.z: .*known: .*pick\.x, pick\.y"):
        plan_for(tmp_path, described("first", "x", "y"), RPS, graph=SWITCH, shares={"pick.z": 0.5})


def test_cold_starts_add_up_along_a_sequence(tmp_path: Path) -> None:
    # Both steps at zero: b only hears of the first request when a answers it, after a's cold start.
    rps = [0.0] * 200 + [5.0] * 60 + [0.0] * 200
    plan = plan_for(tmp_path, described("a", "b", scaleTarget=10), rps, graph=SEQUENCE, cold=10, service_time=0.05)
    a, b = plan.result.services["a"], plan.result.services["b"]
    assert a.ready[209] == 0 and a.ready[210] > 0
    assert b.pods[209] == 0 and b.pods[210] > 0 and b.ready[220] > 0
    worst = max(plan.result.latency_ms) / 1000
    assert 19.5 <= worst <= 21.5
    # a: the 50 requests of 200..209. b: those 50 (reaching it at 210) and the 50 of 210..219.
    assert a.cold_requests == pytest.approx(50.0)
    assert b.cold_requests == pytest.approx(100.0, abs=0.5)
    # The graph counts each request once: the first 50 waited for both.
    assert plan.result.cold_requests == pytest.approx(100.0, abs=0.5)


def test_warm_latency_is_the_sum_along_a_sequence_and_the_slowest_of_an_ensemble(tmp_path: Path) -> None:
    graph = """
nodes:
  root:
    routerType: Sequence
    steps:
      - serviceName: a
      - nodeName: fan
  fan:
    routerType: Ensemble
    steps:
      - serviceName: b
      - serviceName: c
"""
    plan = plan_for(tmp_path, described("a", "b", "c", minReplicas=1), [20.0] * 300, graph=graph,
                    service_time=0.2)
    assert percentile(plan.result.latency_ms, 50) == pytest.approx(400.0, abs=0.2)
    assert percentile(plan.result.latency_ms, 99) == pytest.approx(400.0, abs=0.2)


def test_a_service_url_is_named_by_its_host(tmp_path: Path) -> None:
    graph = """
nodes:
  root:
    routerType: Sequence
    steps:
      - serviceUrl: http://m.default.svc.cluster.local/v1/models/m:predict
      - serviceUrl: https://api.example.com/score
"""
    plan = plan_for(tmp_path, described("m"), [5.0] * 100, graph=graph, service_time=0.05)
    assert list(plan.result.services) == ["m.default.svc.cluster.local", "api.example.com"]
    assert plan.settings["m.default.svc.cluster.local"].kpa is not None  # m's settings
    assert plan.settings["api.example.com"].kpa is None  # outside Knative: never scaled


def test_repeating_settled_seconds_gives_the_same_result_as_simulating_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rps = [v for v in (0, 0.0, 3, 40, 90, 0, 25, 120, 7, 0, 60, 60) for _ in range(400)]
    fields = {"scaleTarget": 10, "containerConcurrency": 4, "autoscaling": {"scale-down-delay": "2m"}}

    def run() -> object:
        return plan_for(tmp_path, described("a", "b", "c", **fields), [float(r) for r in rps], graph=graph,
                        service_time=0.3, cold=5)

    graph = "nodes:\n  root:\n    routerType: Sequence\n    steps:\n      - serviceName: a\n      - nodeName: f\n" \
            "  f:\n    routerType: Ensemble\n    steps:\n      - serviceName: b\n      - serviceName: c\n"
    fast = run()
    monkeypatch.setattr(service_mod.Service, "settled", lambda self: False)
    slow = run()
    for name in "abc":
        f, s = fast.result.services[name], slow.result.services[name]  # type: ignore[attr-defined]
        assert f.pods == s.pods
        assert f.ready == s.ready
        assert f.cold_requests == pytest.approx(s.cold_requests)
    assert fast.result.cold_requests == pytest.approx(slow.result.cold_requests)  # type: ignore[attr-defined]
    assert percentile(fast.result.latency_ms, 99) == percentile(slow.result.latency_ms, 99)  # type: ignore[attr-defined]


MIRRORED = """
nodes:
  root:
    routerType: Sequence
    steps:
      - name: classify
        serviceName: live
        mirror: {serviceName: candidate, percent: 25}
      - serviceName: after
"""


def test_a_mirror_sends_its_share_to_the_shadow_and_adds_no_latency(tmp_path: Path) -> None:
    rps = [0.0] * 10 + [40.0] * 200
    mirrored = plan_for(tmp_path, described("live", "candidate", "after", minReplicas=1), rps, graph=MIRRORED,
                        service_time=0.05)
    assert mirrored.calls == pytest.approx({"live": 1.0, "candidate": 0.25, "after": 1.0})
    # The shadow hears of a request when the live step has answered it, as `mode: after` sends it.
    assert sum(mirrored.result.services["candidate"].load) == pytest.approx(0.25 * sum(rps), rel=1e-3)
    plain = plan_for(tmp_path, described("live", "after", minReplicas=1), rps,
                     graph=MIRRORED.replace("        mirror: {serviceName: candidate, percent: 25}\n", ""),
                     service_time=0.05)
    assert "candidate" not in plain.calls
    assert mirrored.result.latency_ms == plain.result.latency_ms
    assert mirrored.result.services["after"].load == plain.result.services["after"].load


def test_a_cold_shadow_costs_the_graph_no_cold_start(tmp_path: Path) -> None:
    # live and after stay warm; the candidate is at zero when the traffic starts.
    deploy_text = yaml.safe_dump({"services": {
        "live": {"modelFormat": "sklearn", "storageUri": "gs://b/m", "minReplicas": 1},
        "after": {"modelFormat": "sklearn", "storageUri": "gs://b/m", "minReplicas": 1},
        "candidate": {"modelFormat": "sklearn", "storageUri": "gs://b/m", "minReplicas": 0},
    }})
    rps = [0.0] * 200 + [8.0] * 60
    plan = plan_for(tmp_path, deploy_text, rps, graph=MIRRORED.replace("percent: 25", "percent: 100"),
                    cold=10, service_time=0.05)
    assert plan.result.services["candidate"].cold_requests > 0
    assert plan.result.cold_requests == 0
    assert max(plan.result.latency_ms) < 1000  # 2 x 50 ms, nothing waits for the shadow's cold start
