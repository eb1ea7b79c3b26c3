"""The ``mirror`` step extension: validation with paths, defaults, comparisons, KServe stripping, metrics."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from graph_router.conditions.gjson import MISSING
from graph_router.errors import SpecError
from graph_router.loader import load_graph_text
from graph_router.manifests.kserve import strip_extensions
from graph_router.mirror import compile_comparison
from graph_router.spec import MirrorMode

from ..test_spec import problems, seq


def mirrored(mirror: Any, **step: Any) -> dict[str, Any]:
    return seq({"name": "s", "serviceName": "a", **step, "mirror": mirror})


def test_defaults_are_safe_and_the_wire_keeps_the_mirror() -> None:
    [doc] = load_graph_text(json.dumps(mirrored({"serviceName": "b"})))
    m = doc.spec.nodes["root"].steps[0].mirror
    assert m is not None
    assert (m.service_name, m.percent, m.compare, m.mode, m.max_concurrency, m.queue_size, m.timeout) == (
        "b", 100.0, None, MirrorMode.AFTER, 8, 64, 10.0)
    assert doc.wire()["nodes"]["root"]["steps"][0]["mirror"]["serviceName"] == "b"
    assert doc.service_names() == {"a", "b"}


BAD = [
    ("not a mapping", mirrored("b"),
     ["nodes.root.steps[0].mirror: expected a mapping with serviceName or serviceUrl, percent, compare; "
      "got a string"]),
    ("no target", mirrored({"percent": 10}),
     ["nodes.root.steps[0].mirror: give the shadow exactly one of serviceName, serviceUrl"]),
    ("two targets", mirrored({"serviceName": "b", "serviceUrl": "http://b/"}),
     ["nodes.root.steps[0].mirror: give the shadow exactly one of serviceName, serviceUrl"]),
    ("itself", mirrored({"serviceName": "a"}),
     ["nodes.root.steps[0].mirror: the shadow is the step's own service: mirror to another service"]),
    ("typo", mirrored({"serviceName": "b", "precent": 5}),
     ["nodes.root.steps[0].mirror.precent: unknown field (did you mean 'percent'?)"]),
    ("percent", mirrored({"serviceName": "b", "percent": 120}),
     ["nodes.root.steps[0].mirror.percent: expected a number from 0 to 100, got 120"]),
    ("bounds", mirrored({"serviceName": "b", "maxConcurrency": 0, "queueSize": -1, "timeout": 0,
                         "tolerance": "x"}),
     ["nodes.root.steps[0].mirror.tolerance: expected a number from 0 up, got 'x'",
      "nodes.root.steps[0].mirror.maxConcurrency: expected an integer from 1 to 10000, got 0",
      "nodes.root.steps[0].mirror.queueSize: expected an integer from 0 to 100000, got -1",
      "nodes.root.steps[0].mirror.timeout: expected seconds (a number > 0), got 0"]),
    ("mode", mirrored({"serviceName": "b", "mode": "before"}),
     ["nodes.root.steps[0].mirror.mode: unsupported value 'before': one of after, alongside"]),
    ("broken gjson", mirrored({"serviceName": "b", "compare": "predictions.#(class==\"a\""}),
     ["nodes.root.steps[0].mirror.compare: invalid GJSON path 'predictions.#(class==\"a\"': "
      "'(' at column 14 is never closed; add a matching ')'"]),
    ("a comparison", mirrored({"serviceName": "b", "compare": "{ .a == 1 }"}),
     ["nodes.root.steps[0].mirror.compare: '{ .a == 1 }' is a comparison; compare takes a path to a value, "
      "e.g. predictions.0.class or $.predictions[0].class"]),
    ("nested node", seq({"nodeName": "x", "mirror": {"serviceName": "b"}})
     | {"nodes": {"root": {"routerType": "Sequence", "steps": [{"nodeName": "x", "mirror": {"serviceName": "b"}}]},
                  "x": {"routerType": "Sequence", "steps": [{"serviceName": "a"}]}}},
     ["nodes.root.steps[0].mirror: only a step that calls a service can be mirrored, not a nested node "
      "(nodeName)"]),
]


@pytest.mark.parametrize(("case", "spec", "expected"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_mirror_is_reported_with_its_path(case: str, spec: Any, expected: list[str]) -> None:
    assert problems(spec) == expected


def test_comparisons() -> None:
    real = b'{"predictions": [{"class": "cat", "score": 0.9}]}'
    gj = compile_comparison("predictions.0.class")
    assert gj.judge(real, b'{"predictions": [{"class": "cat"}]}').result == "agree"
    v = gj.judge(real, b'{"predictions": [{"class": "dog"}]}')
    assert (v.result, v.real, v.shadow, v.difference) == ("disagree", "cat", "dog", None)
    assert gj.judge(real, b'{"predictions": []}').result == "missing"
    assert gj.judge(real, b"not json").shadow is MISSING
    jp = compile_comparison("$.predictions[0].score", tolerance=0.05)
    v = jp.judge(real, b'{"predictions": [{"score": 0.88}]}')
    assert v.result == "agree"
    assert v.difference == pytest.approx(0.02)
    assert jp.judge(real, b'{"predictions": [{"score": 0.5}]}').result == "disagree"
    assert jp.judge(real, b'{"predictions": [{"score": true}]}').difference is None  # true is not a number
    whole = compile_comparison(None)
    assert whole.judge(b'{"a": 1, "b": [1.0]}', b'{"b":[1],"a":1}').result == "agree"  # as JSON, not bytes
    assert whole.judge(b"x", b"x").result == "agree"
    assert whole.judge(b"x", b"{}").result == "disagree"
    with pytest.raises(SpecError, match="regex filters"):
        compile_comparison("$.a[?(@.b =~ 'x')]")
    with pytest.raises(SpecError, match="an empty path compares nothing"):
        compile_comparison("  ")


def test_kserve_mode_strips_the_mirror_with_a_warning() -> None:
    [doc] = load_graph_text(json.dumps(mirrored({"serviceName": "b", "percent": 5}, retry={"maxRetries": 1})))
    warnings: list[str] = []
    spec = strip_extensions(doc.wire(), warnings)
    assert spec["nodes"]["root"]["steps"] == [{"name": "s", "serviceName": "a"}]
    assert warnings == [
        "nodes.root.steps[0].mirror removed: KServe's router has no shadow traffic (the shadow's service is "
        "still deployed)",
        "nodes.root.steps[0].retry removed: KServe's router has no retries",
    ]


MP_MIRROR = """
import asyncio
import json
from graph_router.telemetry import metrics

KEY = ("g", "root", "s", "b")
m = metrics.Metrics(multiprocess=True)
for _ in range(3):
    m.mirror_sent(KEY)
m.mirror_dropped(KEY)
m.mirror_finished(KEY, 0.02, None)
m.mirror_finished(KEY, 0.3, "timeout")
m.mirror_compared(KEY, "disagree", 0.5)
text = m.exposition()[0].decode()
m.mirror_sent(KEY)
m.mirror_compared(KEY, "agree", 0.0)
print(json.dumps([text, m.exposition()[0].decode()]))
"""


def test_mirror_metrics_in_multiprocess_mode_are_exact_deltas(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", MP_MIRROR], env=env, capture_output=True, text=True,
                         timeout=30, check=True)
    first, second = json.loads(out.stdout)
    labels = 'graph="g",node="root",shadow="b",step="s"'
    assert f"graph_router_mirror_requests_total{{{labels}}} 3.0" in first
    assert f"graph_router_mirror_requests_total{{{labels}}} 4.0" in second
    assert f"graph_router_mirror_dropped_total{{{labels}}} 1.0" in second
    assert f'graph_router_mirror_errors_total{{error="timeout",{labels}}} 1.0' in second
    assert f"graph_router_mirror_duration_seconds_count{{{labels}}} 2.0" in second
    assert f"graph_router_mirror_duration_seconds_sum{{{labels}}} 0.32" in second
    assert 'comparisons_total{graph="g",node="root",result="disagree",shadow="b",step="s"} 1.0' in second
    assert 'difference_bucket{graph="g",le="1.0",node="root",shadow="b",step="s"} 2.0' in second
    assert 'difference_bucket{graph="g",le="1e-06",node="root",shadow="b",step="s"} 1.0' in second
    assert f"graph_router_mirror_difference_sum{{{labels}}} 0.5" in second


class Recorder:
    """A MirrorObserver keeping every event, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def mirror_sent(self, key: Any) -> None:
        self.events.append(("sent", key[1]))

    def mirror_dropped(self, key: Any) -> None:
        self.events.append(("dropped", key[1]))

    def mirror_finished(self, key: Any, duration: float, error: str | None) -> None:
        self.events.append(("finished", key[1], error))

    def mirror_compared(self, key: Any, result: str, difference: float | None) -> None:
        self.events.append(("compared", key[1], result))


async def test_in_process_shadows_failures_and_skips_never_reach_the_caller() -> None:
    from graph_router import GraphRouter
    from graph_router.mirror import Shadows

    def broken(_body: Any, _headers: Any) -> Any:
        raise RuntimeError("shadow bug")

    got: list[Any] = []

    def shadow(body: Any, _headers: Any) -> Any:
        got.append(body)
        return {"predictions": [1]}

    spec = {"nodes": {
        "root": {"routerType": "Ensemble", "steps": [
            {"name": "ok", "serviceName": "a", "mirror": {"serviceName": "broken"}},
            {"name": "bad", "nodeName": "fails"},
        ]},
        "fails": {"routerType": "Sequence", "steps": [
            {"serviceName": "err", "mirror": {"serviceName": "shadow", "mode": "alongside"}},
        ]},
    }}
    rec = Recorder()
    services = {"a": lambda b, h: {"predictions": [1]}, "err": lambda b, h: (503, {"error": "down"}),
                "broken": broken, "shadow": shadow}
    async with GraphRouter.from_spec(spec, services=services, shadows=Shadows(rec)) as router:
        res = await router.infer({"instances": [7]})
        async with asyncio.timeout(10):
            await router.shadows.idle()
            await asyncio.sleep(0)
    assert (res.status, res.json()) == (200, {"ok": {"predictions": [1]}, "bad": {"error": "down"}})
    assert got == [{"instances": [7]}]
    assert sorted(rec.events) == [("compared", "fails", "skipped"), ("finished", "fails", None),
                                  ("finished", "root", "internal"), ("sent", "fails"), ("sent", "root")]


async def test_percent_zero_sends_nothing_and_a_reload_keeps_the_lane() -> None:
    from graph_router import GraphRouter
    from graph_router.mirror import Shadows

    calls: list[Any] = []
    spec = seq({"name": "s", "serviceName": "a", "mirror": {"serviceName": "b", "percent": 0}})
    services = {"a": lambda b, h: {"p": 1}, "b": lambda b, h: calls.append(b) or {"p": 1}}
    async with GraphRouter.from_spec(spec, services=services, shadows=Shadows()) as router:
        for _ in range(50):
            await router.infer({})
        lane = router.shadows.lane("graph", "root", "s")
        assert lane is not None
        router.replace([router.graphs["graph"].doc])
        mirror = router.graphs["graph"].root.steps[0].mirror
        assert mirror is not None and mirror.lane is lane
        await router.shadows.idle()
    assert calls == []
