"""Graph-aware prewarming: which backends a request wakes, when, how often, and that failures change nothing.

Real `graph-router serve` processes in front of the model host on 127.0.0.1 (its Knative emulation
where a cold start matters). A warm-up is a ``GET /v1/models/<m>`` the model host records.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml

from graph_router.api import GraphRouter
from graph_router.errors import SpecError
from graph_router.loader import load_graph_text
from graph_router.manifests.kserve import strip_extensions
from graph_router.modelhost import Model, ModelHost
from graph_router.prewarm import PrewarmSettings, wake_steps, warmup_url
from graph_router.spec import Prewarm

from .conftest import StartApp
from .support.backends import Backend, reply
from .support.ports import refused_port
from .support.router import RouterProcess
from .telemetry.otlp_decode import in_memory_telemetry


class Echo(Model):
    name = "echo"

    def predict(self, instances: list[Any], parameters: dict[str, Any]) -> list[Any]:
        return instances


def graph(name: str, nodes: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "InferenceGraph", "metadata": {"name": name},
            "spec": {**extra, "nodes": nodes}}


def seq(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"routerType": "Sequence", "steps": list(steps)}


def svc(name: str, **kw: Any) -> dict[str, Any]:
    return {"serviceName": name, **kw}


def node(name: str, **kw: Any) -> dict[str, Any]:
    return {"nodeName": name, **kw}


def write(tmp_path: Path, *docs: dict[str, Any]) -> str:
    f = tmp_path / "graphs.yaml"
    f.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return str(f)


def services(host: ModelHost) -> list[str]:
    return [a for name, url in host.service_urls().items() for a in ("--service", f"{name}={url}")]


def warmed(host: ModelHost) -> dict[str, int]:
    """Model -> warm-up requests (GET /v1/models/<m>) it received."""
    out: dict[str, int] = {}
    for method, path in host.seen:
        m = re.fullmatch(r"/v1/models/([^/:]+)", path)
        if method == "GET" and m is not None:
            out[m.group(1)] = out.get(m.group(1), 0) + 1
    return out


async def post(url: str, body: Any = None) -> tuple[int, Any, float]:
    t0 = time.monotonic()
    async with aiohttp.ClientSession() as s, s.post(url, json=body or {"instances": [1]}) as r:
        return r.status, orjson.loads(await r.read()), time.monotonic() - t0


async def metric_lines(rp: RouterProcess, name: str = "graph_router_prewarm_requests_total") -> list[str]:
    async with aiohttp.ClientSession() as s, s.get(rp.url + "/metrics") as r:
        text = await r.text()
    return sorted(line for line in text.splitlines() if line.startswith(name + "{"))


async def until(check: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def warmups_done(rp: RouterProcess, n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        lines = await metric_lines(rp)
        return sum(float(x.rsplit(" ", 1)[1]) for x in lines) >= n

    return check


@pytest.fixture
async def host_factory() -> AsyncIterator[Callable[..., Awaitable[ModelHost]]]:
    hosts: list[ModelHost] = []

    async def make(names: list[str], **kw: Any) -> ModelHost:
        host = ModelHost([Echo(n) for n in names], **kw)
        await host.start()
        hosts.append(host)
        return host

    yield make
    for h in hosts:
        await h.stop()


# --- which backends: the plan, per node type and setting ----------------------------------------

SHAPES: dict[str, dict[str, Any]] = {
    "seq": {"root": seq(svc("a"), svc("b"), svc("c", condition="predictions"), svc("d"))},
    "ens": {"root": seq(svc("a"), node("e")), "e": {"routerType": "Ensemble", "steps": [svc("e1"), svc("e2")]}},
    "switch": {"root": seq(svc("a"), node("s")), "s": {"routerType": "Switch", "steps": [
        svc("s1", condition="instances"), svc("s2", condition="nothing")]}},
    "split": {"root": seq(svc("a"), node("p")), "p": {"routerType": "Splitter", "steps": [
        svc("p1", weight=50), svc("p2", weight=50)]}},
    "rootens": {"root": {"routerType": "Ensemble", "steps": [svc("x"), svc("y")]}},
    "nested": {"root": seq(node("inner"), svc("z")), "inner": seq(svc("x"), svc("y"))},
    "deep": {"root": seq(svc("a"), node("sw")), "sw": {"routerType": "Switch", "steps": [
        node("ens", condition="instances")]}, "ens": {"routerType": "Ensemble", "steps": [svc("e1"), svc("e2")]}},
}
#: The services each shape wakes at request start, by setting (the first calls wake themselves).
EXPECTED = {
    ("seq", "certain"): ["b"], ("seq", "all"): ["b", "c", "d"],
    ("ens", "certain"): ["e1", "e2"], ("ens", "all"): ["e1", "e2"],
    ("switch", "certain"): [], ("switch", "all"): ["s1", "s2"],
    ("split", "certain"): [], ("split", "all"): ["p1", "p2"],
    ("rootens", "certain"): [], ("rootens", "all"): [],
    ("nested", "certain"): ["y", "z"], ("nested", "all"): ["y", "z"],
    ("deep", "certain"): [], ("deep", "all"): ["e1", "e2"],
}


@pytest.mark.parametrize(("shape", "mode"), sorted(EXPECTED))
def test_wake_set_per_node_type_and_setting(shape: str, mode: str) -> None:
    doc = load_graph_text(yaml.safe_dump(graph(shape, SHAPES[shape])))[0]
    got = [doc.spec.nodes[n].steps[i].service_name for n, i in wake_steps(doc.spec, Prewarm(mode))]
    assert got == EXPECTED[(shape, mode)]
    assert wake_steps(doc.spec, Prewarm.OFF) == []


def test_warmup_url_is_derived_from_the_step_url() -> None:
    assert warmup_url("http://m.ns.svc.cluster.local/v1/models/iris:predict") == \
        "http://m.ns.svc.cluster.local/v1/models/iris"
    assert warmup_url("http://h:8080/v2/models/iris/infer") == "http://h:8080/v2/models/iris/ready"
    assert warmup_url("http://h/v2/models/iris/versions/3/infer") == "http://h/v2/models/iris/versions/3/ready"
    assert warmup_url("http://h/custom/score?x=1") == "http://h/custom/score?x=1"
    assert warmup_url("https://h:9/v1/models/m:predict", "/healthz") == "https://h:9/healthz"
    assert warmup_url("http://h/v1/models/m:predict", "http://other/ping") == "http://other/ping"


def test_bad_prewarm_and_warmup_url_are_refused_with_their_paths() -> None:
    bad = graph("g", {"root": seq(svc("a"), svc("b", warmupUrl="ftp://x"), node("n", warmupUrl="/x")),
                      "n": seq(svc("c"))}, prewarm="sometimes")
    with pytest.raises(SpecError) as info:
        load_graph_text(yaml.safe_dump(bad))
    text = info.value.render()
    assert "spec.prewarm: unsupported value 'sometimes': one of off, certain, all" in text
    assert "spec.nodes.root.steps[1].warmupUrl: expected an http(s) URL or a path starting with '/'" in text
    assert "spec.nodes.root.steps[2].warmupUrl: only a step that calls a service can have a warmupUrl" in text


def test_kserve_mode_strips_prewarm_and_warmup_url_with_a_warning() -> None:
    doc = load_graph_text(yaml.safe_dump(graph("g", {"root": seq(svc("a"), svc("b", warmupUrl="/healthz"))},
                                               prewarm="all")))[0]
    warnings: list[str] = []
    spec = strip_extensions(doc.wire(), warnings)
    assert spec == {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceName": "a"},
                                                                         {"serviceName": "b"}]}}}
    assert warnings == [
        "prewarm removed: KServe's router does not wake later steps; each scaled-to-zero step pays its own cold start",
        "nodes.root.steps[1].warmupUrl removed: KServe's router does not wake later steps",
    ]


# --- a real router process ------------------------------------------------------------------------


async def test_router_wakes_exactly_the_backends_each_setting_says(
        tmp_path: Path, host_factory: Callable[..., Awaitable[ModelHost]],
        router_process: Callable[..., RouterProcess]) -> None:
    # the process default is off; each graph but "plain" sets its own mode (the graph's field wins)
    docs, names = [], []
    for (shape, mode) in sorted(EXPECTED):
        prefix = f"{shape}-{mode}-"
        text = orjson.dumps(SHAPES[shape]).decode().replace('"serviceName":"', '"serviceName":"' + prefix)
        docs.append(graph(f"{shape}-{mode}", orjson.loads(text), prewarm=mode))
        names += [prefix + s for s in re.findall(r'"serviceName":"([^"]+)"', orjson.dumps(SHAPES[shape]).decode())]
    docs.append(graph("plain", {"root": seq(svc("plain-a"), svc("plain-b"))}))
    names += ["plain-a", "plain-b"]
    host = await host_factory(sorted(set(names)))
    rp = router_process(write(tmp_path, *docs), *services(host), "--prewarm", "off", "--drain-seconds", "0")
    for d in docs:
        status, _, _ = await post(f"{rp.url}/graphs/{d['metadata']['name']}")
        assert status == 200, d["metadata"]["name"]
    expected = {f"{shape}-{mode}-{s}": 1 for (shape, mode), woken in EXPECTED.items() for s in woken}
    await until(warmups_done(rp, len(expected)))
    await asyncio.sleep(0.2)  # nothing more arrives
    assert warmed(host) == expected
    assert any("prewarm: waking 3 idle backend(s)" in line for line in rp.log().splitlines())


async def test_a_backend_that_answered_within_the_threshold_is_not_woken(
        tmp_path: Path, host_factory: Callable[..., Awaitable[ModelHost]],
        router_process: Callable[..., RouterProcess]) -> None:
    host = await host_factory(["a", "b", "c"])
    f = write(tmp_path, graph("g", {"root": seq(svc("a"), svc("b"), svc("c"))}))
    rp = router_process(f, *services(host), "--prewarm-idle", "b=0.6", "--drain-seconds", "0")
    assert (await post(rp.url))[0] == 200
    await until(warmups_done(rp, 2))
    assert warmed(host) == {"b": 1, "c": 1}
    for _ in range(3):  # b and c answered just now: within their thresholds
        assert (await post(rp.url))[0] == 200
    await asyncio.sleep(0.2)
    assert warmed(host) == {"b": 1, "c": 1}
    await asyncio.sleep(0.6)  # b idle past its own threshold; c's is the default (90 s)
    assert (await post(rp.url))[0] == 200
    await until(warmups_done(rp, 3))
    assert warmed(host) == {"b": 2, "c": 1}
    assert await metric_lines(rp) == [
        f'graph_router_prewarm_requests_total{{outcome="ok",target="{host.url_for("b")}"}} 2.0',
        f'graph_router_prewarm_requests_total{{outcome="ok",target="{host.url_for("c")}"}} 1.0',
    ]


async def test_never_more_than_one_warm_up_in_flight_per_backend(
        tmp_path: Path, host_factory: Callable[..., Awaitable[ModelHost]],
        router_process: Callable[..., RouterProcess]) -> None:
    host = await host_factory(["a", "b"], scale_to_zero=60, cold_start=0.5)
    rp = router_process(write(tmp_path, graph("g", {"root": seq(svc("a"), svc("b"))})), *services(host),
                        "--prewarm-idle", "0", "--drain-seconds", "0")
    # threshold 0: every request finds b idle, but its warm-up is held 0.5 s by the cold start
    results = await asyncio.gather(*(post(rp.url, {"instances": [i]}) for i in range(6)))
    assert [(s, b) for s, b, _ in results] == [(200, {"predictions": [i]}) for i in range(6)]
    assert warmed(host) == {"b": 1}
    assert host.lifecycles["b"].cold_starts == 1


async def test_a_failing_or_hanging_warm_up_changes_nothing_for_the_request(
        tmp_path: Path, host_factory: Callable[..., Awaitable[ModelHost]],
        backend_factory: Callable[[], Awaitable[Backend]], router_process: Callable[..., RouterProcess]) -> None:
    host = await host_factory(["a", "b", "c", "d"])
    slow, broken = await backend_factory(), await backend_factory()
    slow.default = reply(200, {"late": True}, delay=5)
    broken.default = reply(500, {"error": "boom"})
    refused = f"http://127.0.0.1:{refused_port()}/v1/models/x"
    f = write(tmp_path, graph("g", {"root": seq(svc("a"), svc("b", warmupUrl=refused),
                                                svc("c", warmupUrl=slow.url + "/ping"),
                                                svc("d", warmupUrl=broken.url + "/ping"))}))
    rp = router_process(f, *services(host), "--prewarm-timeout", "0.3", "--drain-seconds", "0")
    status, body, elapsed = await post(rp.url, {"instances": [7]})
    assert (status, body) == (200, {"predictions": [7]}) and elapsed < 2.0  # the 5 s warm-up is not waited for
    await until(warmups_done(rp, 3))
    assert await metric_lines(rp) == sorted([
        f'graph_router_prewarm_requests_total{{outcome="error",target="{host.url_for("b")}"}} 1.0',
        f'graph_router_prewarm_requests_total{{outcome="http_500",target="{host.url_for("d")}"}} 1.0',
        f'graph_router_prewarm_requests_total{{outcome="timeout",target="{host.url_for("c")}"}} 1.0',
    ])
    assert [s.path for s in slow.seen] == ["/ping"] and [s.path for s in broken.seen] == ["/ping"]
    assert [p for _, p in host.seen] == ["/v1/models/a:predict", "/v1/models/b:predict", "/v1/models/c:predict",
                                         "/v1/models/d:predict"]  # explicit warmupUrls: no derived GET
    # a failed warm-up is not retried, and a later request still answers the same
    status, body, _ = await post(rp.url, {"instances": [8]})
    assert (status, body) == (200, {"predictions": [8]})


async def test_prewarming_overlaps_the_cold_starts_of_a_sequence(
        tmp_path: Path, host_factory: Callable[..., Awaitable[ModelHost]],
        router_process: Callable[..., RouterProcess]) -> None:
    cold = 0.4
    f = write(tmp_path, graph("g", {"root": seq(svc("a"), svc("b"), svc("c"))}))
    took = {}
    for mode in ("certain", "off"):
        host = await host_factory(["a", "b", "c"], scale_to_zero=60, cold_start=cold)
        rp = router_process(f, *services(host), "--prewarm", mode, "--drain-seconds", "0")
        status, body, took[mode] = await post(rp.url, {"instances": [3]})
        assert (status, body) == (200, {"predictions": [3]})
        assert [lc.cold_starts for lc in host.lifecycles.values()] == [1, 1, 1]
    assert took["off"] >= 3 * cold  # one cold start after the other
    assert took["certain"] < 2.5 * cold  # overlapped (one cold start, generously bounded)


# --- telemetry: the span event ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sdk", "otlp"])
async def test_warm_ups_are_an_event_on_the_request_span(
        kind: str, host_factory: Callable[..., Awaitable[ModelHost]], app_server: StartApp) -> None:
    host = await host_factory(["a", "b", "c"])
    exporter, tel = in_memory_telemetry(kind)
    text = yaml.safe_dump(graph("g", {"root": seq(svc("a"), svc("b"), svc("c"))}))
    router = GraphRouter(load_graph_text(text), services=host.service_urls(), hooks=tel.hooks,
                         prewarm=PrewarmSettings(), prewarm_observer=tel)
    url = await app_server(router, telemetry=tel)
    assert (await post(url))[0] == 200
    assert (await post(url))[0] == 200  # everything answered just now: no event
    if kind == "otlp":
        await tel.flush()
    servers = sorted((s for s in exporter.get_finished_spans() if s.name == "graph g"),
                     key=lambda s: s.start_time or 0)
    assert len(servers) == 2
    events = [(e.name, dict(e.attributes or {})) for e in servers[0].events]
    assert events == [("prewarm", {"graph_router.prewarm.targets": (host.url_for("b"), host.url_for("c"))})]
    assert list(servers[1].events) == []
    assert router.prewarmer is not None
    await until(lambda: _true(router.prewarmer is not None and router.prewarmer.in_flight == 0))
    assert warmed(host) == {"b": 1, "c": 1}


async def _true(value: bool) -> bool:
    return value
