"""The simulator against cases worked out by hand from Knative's autoscaler code (docs/planner.md).

Defaults used throughout: stable window 60 s, panic window 10% of it (6 s), panic threshold 200%,
target utilisation 70%, max scale-down rate 2, grace period 30 s, decisions every 2 s.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from .helpers import changes, deploy, plan_for


@pytest.mark.parametrize(
    ("fields", "rps", "service_time", "per_pod"),
    [
        ({"scaleTarget": 10}, 40.0, 0.5, 10 * 0.7),  # concurrency 20 over 7 a pod
        ({}, 300.0, 0.5, 100 * 0.7),  # container-concurrency-target-default 100
        ({"containerConcurrency": 10}, 40.0, 0.5, 10 * 0.7),  # the hard limit is the total
        ({"scaleTarget": 10, "autoscaling": {"target-utilization-percentage": 50}}, 42.0, 0.5, 10 * 0.5),
        ({"scaleMetric": "rps", "scaleTarget": 50}, 100.0, 0.5, 50 * 0.7),  # rps, not concurrency
    ],
)
def test_steady_load_settles_on_ceil_of_load_over_target(
    tmp_path: Path, fields: dict[str, object], rps: float, service_time: float, per_pod: float
) -> None:
    load = rps if fields.get("scaleMetric") == "rps" else rps * service_time
    expected = math.ceil(load / per_pod)
    tr = plan_for(tmp_path, deploy(**fields), [rps] * 600, service_time=service_time).result.services["m"]
    assert expected >= 3
    assert set(tr.pods[300:]) == {expected}
    assert set(tr.ready[300:]) == {expected}


def test_a_step_above_the_panic_threshold_panics_and_never_scales_down_inside(tmp_path: Path) -> None:
    # 5 in flight (1 pod), then 50 from t=200 to t=230, then 5 again. Target 7 a pod.
    rps = [10.0] * 200 + [100.0] * 30 + [10.0] * 370
    tr = plan_for(tmp_path, deploy(scaleTarget=10), rps).result.services["m"]
    # t=200: panic window (195..200) averages (5*5 + 50) / 6 = 12.5 -> 2 pods = 2x the 1 ready: panic.
    assert not tr.panic[199] and tr.panic[200]
    # Then 27.5 -> 4, 42.5 -> 7, 50 -> 8 pods, while the new pods start (ready from t=210).
    assert [tr.pods[t] for t in (200, 202, 204, 206)] == [2, 4, 7, 8]
    # Last over the threshold at t=212 (8 wanted, 4 ready); panic ends 60 s later (t=274).
    panic_ticks = [t for t in range(len(tr.panic)) if tr.panic[t]]
    assert (panic_ticks[0], panic_ticks[-1]) == (200, 273)
    # The load fell at t=230, but nothing scales down while panicking...
    assert all(tr.pods[t] >= tr.pods[t - 1] for t in range(201, 274))
    assert set(tr.pods[206:274]) == {8}
    # ...and at t=274 the stable average (15*50 + 45*5)/60 = 16.25 wants 3; max scale-down rate 2: 4.
    assert tr.pods[274] == 4


def test_scale_down_is_limited_by_the_max_scale_down_rate(tmp_path: Path) -> None:
    # 280 in flight (40 pods at 7), a 6 s stable window, then no traffic from t=600.
    rps = [280.0] * 600 + [0.0] * 100
    tr = plan_for(tmp_path, deploy(scaleTarget=10, autoscaling={"window": "6s"}), rps, cold=1,
                  service_time=1.0).result.services["m"]
    assert tr.pods[599] == 40
    # t=600: 1400/6 -> 34; t=602: 840/6 -> 20; t=604: 280/6 -> 7, but no fewer than 20/2 = 10;
    # then 0 wanted, halving each tick: 5, 2, 1. Inactive at t=612, zero after the 30 s grace.
    assert changes(tr)[-7:] == [(600, 34), (602, 20), (604, 10), (606, 5), (608, 2), (610, 1), (642, 0)]


@pytest.mark.parametrize(
    ("autoscaling", "zero_at"),
    [
        ({}, 300 + 60 + 30),  # the stable window, then the grace period
        ({"scale-to-zero-pod-retention-period": "5m"}, 300 + 60 + 300),  # retention longer than grace
        ({"scale-to-zero-pod-retention-period": "10s"}, 300 + 60 + 30),  # the longer of the two counts
    ],
)
def test_no_traffic_reaches_zero_after_stable_window_and_grace_or_retention(
    tmp_path: Path, autoscaling: dict[str, str], zero_at: int
) -> None:
    rps = [2.0] * 300 + [0.0] * 600  # 1 in flight until t=300 (the last busy second is 299)
    tr = plan_for(tmp_path, deploy(scaleTarget=10, autoscaling=autoscaling), rps).result.services["m"]
    assert set(tr.pods[:zero_at]) == {1}
    assert set(tr.pods[zero_at:]) == {0}


def test_min_scale_holds_without_traffic(tmp_path: Path) -> None:
    tr = plan_for(tmp_path, deploy(minReplicas=2), [0.0] * 900).result.services["m"]
    assert set(tr.pods) == {2}
    assert set(tr.ready) == {2}


def test_max_scale_holds_under_load(tmp_path: Path) -> None:
    tr = plan_for(tmp_path, deploy(maxReplicas=3, scaleTarget=10), [400.0] * 600).result.services["m"]
    assert max(tr.pods) == 3
    assert set(tr.pods[10:]) == {3}


def test_initial_scale_is_the_starting_count_then_the_autoscaler_decides(tmp_path: Path) -> None:
    tr = plan_for(tmp_path, deploy(autoscaling={"initial-scale": 4}), [0.0] * 300).result.services["m"]
    assert tr.ready[0] == 4
    # No traffic: halving each tick (max scale-down rate 2), then zero after stable window + grace.
    assert changes(tr) == [(0, 2), (2, 1), (90, 0)]


def test_activation_scale_wakes_with_that_many_pods(tmp_path: Path) -> None:
    rps = [0.0] * 200 + [2.0] * 100  # one in flight: one pod would do
    tr = plan_for(tmp_path, deploy(scaleTarget=10, maxReplicas=5, autoscaling={"activation-scale": 3}),
                  rps).result.services["m"]
    assert tr.pods[199] == 0
    assert set(tr.pods[200:]) == {3}


def test_a_burst_at_zero_pays_one_cold_start_for_the_requests_arriving_during_it(tmp_path: Path) -> None:
    rps = [0.0] * 200 + [20.0] * 60 + [0.0] * 240
    plan = plan_for(tmp_path, deploy(scaleTarget=10), rps, cold=10)
    tr = plan.result.services["m"]
    assert tr.pods[199] == 0 and tr.pods[200] > 0 and tr.ready[209] == 0 and tr.ready[210] > 0
    wakes = [t for t in range(1, len(tr.pods)) if tr.pods[t - 1] == 0 and tr.pods[t] > 0]
    assert wakes == [200]
    # 20 requests a second for the 10 seconds of the cold start, and no others.
    assert tr.cold_requests == pytest.approx(200.0)
    assert plan.result.cold_requests == pytest.approx(200.0)
    waits = tr.cold_wait_s
    assert sum(n * w for n, w in waits) / sum(n for n, _ in waits) == pytest.approx(5.0)  # 9.5 s down to 0.5 s
    assert max(w for _, w in waits) == pytest.approx(9.5)
    worst = max(plan.result.latency_ms)
    assert 9_000 <= worst <= 11_000
