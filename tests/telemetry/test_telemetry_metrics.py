"""/metrics after known traffic: exact counts by graph, status, node, step, branch and target."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from graph_router import GraphRouter
from graph_router.loader import load_graph_text
from graph_router.telemetry import Telemetry
from graph_router.telemetry.metrics import (
    BRANCH,
    BUCKETS,
    IN_FLIGHT,
    PREWARMS,
    REFUSED,
    REQUEST_DURATION,
    REQUESTS,
    RETRIES,
    STEP_DURATION,
    STEP_ERRORS,
    TIMEOUTS,
    Metrics,
)

from ..conftest import StartApp
from ..support.backends import serve_handler
from ..support.graphs import graph
from ..support.ports import refused_port

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class MetricsBackend:
    """A real backend answering scripted (status, delay) pairs, then 200."""

    url: str = ""
    script: list[tuple[int, float]] = field(default_factory=list)
    calls: int = 0
    started: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.calls += 1
        self.started.set()
        status, delay = self.script.pop(0) if self.script else (200, 0.0)
        if delay:
            await asyncio.sleep(delay)
        return web.json_response({"status": status}, status=status)


MakeBackend = Callable[[], Awaitable[MetricsBackend]]
Start = Callable[..., Awaitable[str]]


@pytest.fixture
async def backend(aiohttp_server: Any) -> MakeBackend:
    async def make() -> MetricsBackend:
        b = MetricsBackend()
        b.url = await serve_handler(aiohttp_server, b.handle) + "/v1/models/m:predict"
        return b

    return make


@pytest.fixture
def start(app_server: StartApp) -> Start:
    """Router and server in-process with metrics only (a private registry per Telemetry)."""

    async def go(yaml_text: str, services: dict[str, str], **router_kw: Any) -> str:
        tel = Telemetry()
        router = GraphRouter(load_graph_text(yaml_text), services=services, hooks=tel.hooks, **router_kw)
        return await app_server(router, telemetry=tel)

    return go


async def post(url: str, body: Any) -> int:
    async with aiohttp.ClientSession() as s, s.post(url, json=body) as r:
        await r.read()
        return r.status


async def scrape(url: str) -> Samples:
    conn = aiohttp.TCPConnector(force_close=True)  # a fresh connection: any worker may answer
    async with aiohttp.ClientSession(connector=conn) as s, s.get(f"{url}/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=")
        text = await r.text()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def get(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when the series does not exist (never recorded)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


ONE = graph("one", "    root:\n      routerType: Sequence\n      steps:\n"
                   "        - {name: s, serviceName: a}\n")


async def test_requests_by_status_latency_and_step_errors(start: Start, backend: MakeBackend) -> None:
    a = await backend()
    a.script = [(200, 0), (500, 0), (200, 0), (200, 0)]
    url = await start(ONE, {"a": a.url}, default_retry=False)
    assert [await post(url, {"x": i}) for i in range(4)] == [200, 500, 200, 200]
    m = await scrape(url)
    assert get(m, "graph_router_requests_total", graph="one", status="200") == 3
    assert get(m, "graph_router_requests_total", graph="one", status="500") == 1
    assert get(m, "graph_router_request_duration_seconds_count", graph="one", status="200") == 3
    assert get(m, "graph_router_request_duration_seconds_bucket", graph="one", status="500", le="+Inf") == 1
    assert get(m, "graph_router_requests_in_flight", graph="one") == 0
    step = {"graph": "one", "node": "root", "step": "s", "target": "a"}
    assert get(m, "graph_router_step_duration_seconds_count", **step) == 4
    assert get(m, "graph_router_step_errors_total", **step, error="http_500") == 1
    assert sum(v for (n, _), v in m.items() if n == "graph_router_step_errors_total") == 1


SPLIT = graph("ab", """\
    root:
      routerType: Splitter
      steps:
        - {name: a, serviceName: a, weight: 50}
        - {name: b, serviceName: b, weight: 50}
""")


async def test_splitter_branch_counts_equal_what_each_backend_got(start: Start, backend: MakeBackend) -> None:
    a, b = await backend(), await backend()
    url = await start(SPLIT, {"a": a.url, "b": b.url})
    n = 40
    assert await asyncio.gather(*(post(url, {"x": i}) for i in range(n))) == [200] * n
    m = await scrape(url)
    got_a = get(m, "graph_router_branch_total", graph="ab", node="root", step="a", router_type="Splitter")
    got_b = get(m, "graph_router_branch_total", graph="ab", node="root", step="b", router_type="Splitter")
    assert (got_a, got_b) == (a.calls, b.calls)
    assert got_a + got_b == n and a.calls > 0 and b.calls > 0  # 40 fair coin flips: all one side is 2**-39


SWITCH = graph("sw", """\
    root:
      routerType: Switch
      steps:
        - {name: cats, serviceName: a, condition: cat}
        - {name: dogs, serviceName: b, condition: dog}
""")


async def test_switch_branch_counts_and_misses(start: Start, backend: MakeBackend) -> None:
    a, b = await backend(), await backend()
    url = await start(SWITCH, {"a": a.url, "b": b.url})
    bodies = [{"cat": 1}] * 3 + [{"dog": 1}] * 2 + [{"fish": 1}] * 4
    assert [await post(url, body) for body in bodies] == [200] * 5 + [404] * 4
    m = await scrape(url)
    labels = {"graph": "sw", "node": "root", "router_type": "Switch"}
    assert get(m, "graph_router_branch_total", **labels, step="cats") == 3
    assert get(m, "graph_router_branch_total", **labels, step="dogs") == 2
    assert get(m, "graph_router_branch_total", **labels, step="none") == 4
    assert get(m, "graph_router_requests_total", graph="sw", status="404") == 4
    assert get(m, "graph_router_requests_total", graph="sw", status="200") == 5


RETRYING = graph("retry", """\
    root:
      routerType: Sequence
      steps:
        - {name: r, serviceName: a, retry: {maxRetries: 3, initialDelayMs: 1, maxDelayMs: 2}}
        - {name: t, serviceName: b, timeout: 0.2}
""")


async def test_retries_timeouts_and_connect_errors_by_target(start: Start, backend: MakeBackend) -> None:
    a, b = await backend(), await backend()
    a.script = [(503, 0), (503, 0)]  # two retries, then 200
    b.script = [(200, 1.0)]  # slower than the step timeout
    url = await start(RETRYING, {"a": a.url, "b": b.url}, default_retry=False)
    assert await post(url, {"x": 1}) == 504
    assert a.calls == 3 and b.calls == 1
    m = await scrape(url)
    assert get(m, "graph_router_backend_retries_total", target="a") == 2
    assert get(m, "graph_router_backend_retries_total", target="b") == 0
    assert get(m, "graph_router_backend_timeouts_total", target="b", kind="step_timeout") == 1
    t = {"graph": "retry", "node": "root", "step": "t", "target": "b"}
    assert get(m, "graph_router_step_errors_total", **t, error="step_timeout") == 1
    r = {"graph": "retry", "node": "root", "step": "r", "target": "a"}
    assert get(m, "graph_router_step_errors_total", **r, error="http_503") == 0  # retried into a 200

    dead = f"http://127.0.0.1:{refused_port()}/v1/models/m:predict"
    url2 = await start(ONE, {"a": dead}, default_retry=False)
    assert await post(url2, {"x": 1}) == 500
    m2 = await scrape(url2)
    one = {"graph": "one", "node": "root", "step": "s", "target": "a"}
    assert get(m2, "graph_router_step_errors_total", **one, error="backend_connect") == 1
    assert get(m2, "graph_router_backend_retries_total", target="b") == 0  # a private registry per Telemetry


async def test_graph_timeout_counts_against_the_running_step(start: Start, backend: MakeBackend) -> None:
    a = await backend()
    a.script = [(200, 3.0)]
    url = await start(ONE.replace("  nodes:", "  timeout: 1\n  nodes:"), {"a": a.url}, default_retry=False)
    assert await post(url, {"x": 1}) == 504
    m = await scrape(url)
    assert get(m, "graph_router_backend_timeouts_total", target="a", kind="graph_timeout") == 1
    step = {"graph": "one", "node": "root", "step": "s", "target": "a"}
    assert get(m, "graph_router_step_errors_total", **step, error="graph_timeout") == 1
    assert get(m, "graph_router_requests_total", graph="one", status="504") == 1


async def test_in_flight_gauge(start: Start, backend: MakeBackend) -> None:
    a = await backend()
    a.script = [(200, 0.5)]
    url = await start(ONE, {"a": a.url})
    task = asyncio.create_task(post(url, {"x": 1}))
    await asyncio.wait_for(a.started.wait(), 5)
    assert get(await scrape(url), "graph_router_requests_in_flight", graph="one") == 1
    assert await task == 200
    assert get(await scrape(url), "graph_router_requests_in_flight", graph="one") == 0


# --- several worker processes ---------------------------------------------------------------------


def _counting_pids(mp: Path) -> set[str]:
    """The workers whose counts reached the shared directory."""
    return {p.stem.rsplit("_", 1)[1] for p in mp.glob("counter_*.db")}


async def _two_worker_traffic(router_process: Callable[..., Any], backend: MakeBackend, tmp_path: Path,
                              env: dict[str, str], mp: Path | None = None) -> tuple[int, list[Samples]]:
    a = await backend()
    graph_file = tmp_path / "one.yaml"
    graph_file.write_text(ONE)
    rp = router_process(str(graph_file), "--workers", "2", "--drain-seconds", "0", "--service", f"a={a.url}",
                        "--no-access-log", env=env)
    n = 0
    for _ in range(10):  # rounds of 30 until both workers have counted (bounded: the second may start late)
        for i in range(30):  # a fresh connection each: SO_REUSEPORT spreads them over both workers
            conn = aiohttp.TCPConnector(force_close=True)
            async with aiohttp.ClientSession(connector=conn) as s, s.post(rp.url, json={"x": i}) as r:
                assert r.status == 200
            n += 1
        if mp is None:
            break
        for _ in range(30):  # each worker writes its counts to the files once a FLUSH_INTERVAL (1 s)
            if len(_counting_pids(mp)) == 2:
                break
            await asyncio.sleep(0.05)
        else:
            continue
        break
    for _ in range(100):  # up to ~5 s: each worker writes its counts to the files once a FLUSH_INTERVAL
        if get(await scrape(rp.url), "graph_router_requests_total", graph="one", status="200") == n:
            break
        await asyncio.sleep(0.05)
    return n, [await scrape(rp.url) for _ in range(4)]


async def test_two_workers_metrics_are_summed(router_process: Callable[..., Any], backend: MakeBackend,
                                              tmp_path: Path) -> None:
    mp = tmp_path / "prom"
    mp.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(mp)}
    n, scrapes = await _two_worker_traffic(router_process, backend, tmp_path, env, mp)
    for m in scrapes:  # whichever worker answers, it reports both
        assert get(m, "graph_router_requests_total", graph="one", status="200") == n
        assert get(m, "graph_router_step_duration_seconds_count", graph="one", node="root", step="s",
                   target="a") == n
        assert get(m, "graph_router_requests_in_flight", graph="one") == 0
    assert len(_counting_pids(mp)) == 2  # both workers counted requests


async def test_two_workers_metrics_are_summed_without_any_env(router_process: Callable[..., Any],
                                                              backend: MakeBackend, tmp_path: Path) -> None:
    n, scrapes = await _two_worker_traffic(router_process, backend, tmp_path, {})
    for m in scrapes:
        assert get(m, "graph_router_requests_total", graph="one", status="200") == n


CRASHED_WORKER = """
import os, re
from graph_router.telemetry import Telemetry, worker_exited

def in_flight(tel):
    text = tel.metrics_body()[0].decode()
    found = re.search(r'graph_router_requests_in_flight[{]graph="g"[}] (\\S+)', text)
    return found.group(1) if found else "absent"

pid = os.fork()
if pid == 0:  # a worker that dies mid-request, without Telemetry.shutdown()
    Telemetry(multiprocess=True).start("g", None)
    os._exit(1)
os.waitpid(pid, 0)
tel = Telemetry(multiprocess=True)
before = in_flight(tel)
worker_exited(pid)
print(before, in_flight(tel))
"""


def test_worker_exited_drops_a_crashed_workers_in_flight(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", CRASHED_WORKER], env=env, capture_output=True, text=True,
                         timeout=30, check=True)
    assert out.stdout.split() == ["1.0", "absent"]


# --- the recorder itself: buckets, exposition format, multiprocess flush ----------------------------

STEP_KEY = ("g", "root", "s", "a")
LE = [*(str(float(b)) for b in BUCKETS), "+Inf"]


def parsed(text: bytes) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text.decode()) for s in family.samples}


def step_buckets(samples: Samples) -> list[float]:
    """The cumulative step-duration buckets of STEP_KEY, in bound order."""
    labels = dict(zip(("graph", "node", "step", "target"), STEP_KEY, strict=True))
    return [get(samples, "graph_router_step_duration_seconds_bucket", **labels, le=le) for le in LE]


def test_a_value_equal_to_a_bound_lands_in_that_bucket_and_past_the_last_only_in_inf() -> None:
    m = Metrics(multiprocess=False)
    values = [0.0, 0.0005, 0.005, 60.0, 60.000001, 1e9]
    for v in values:
        m.step_finished(STEP_KEY, v, None)
    samples = parsed(m.exposition()[0])
    # bounds: 0.0005 0.001 0.0025 0.005 0.01 ... 30 60 +Inf
    assert step_buckets(samples) == [2.0, 2.0, 2.0, 3.0] + [3.0] * 11 + [4.0, 6.0]
    labels = dict(zip(("graph", "node", "step", "target"), STEP_KEY, strict=True))
    assert get(samples, "graph_router_step_duration_seconds_count", **labels) == 6
    total = 0.0
    for v in values:
        total += v
    assert get(samples, "graph_router_step_duration_seconds_sum", **labels) == total


def reference(registry: CollectorRegistry) -> dict[str, Any]:
    """The metrics as prometheus_client's own classes, declared as graph-router did before recording
    moved to plain dicts: what /metrics must keep showing."""
    req, step = ["graph", "status"], ["graph", "node", "step", "target"]
    return {
        "requests": Counter(REQUESTS, "Graph requests answered.", req, registry=registry),
        "request_duration": Histogram(REQUEST_DURATION, "Graph request latency.", req, buckets=BUCKETS,
                                      registry=registry),
        "in_flight": Gauge(IN_FLIGHT, "Graph requests being served now.", ["graph"], registry=registry),
        "step_duration": Histogram(STEP_DURATION, "Step latency, all attempts and backoff included.", step,
                                   buckets=BUCKETS, registry=registry),
        "step_errors": Counter(STEP_ERRORS, "Backend steps that failed (error code) or answered >= 400 "
                               "(http_<status>).", [*step, "error"], registry=registry),
        "branch": Counter(BRANCH, "Branches chosen by Switch and Splitter nodes (Switch miss: none).",
                          ["graph", "node", "step", "router_type"], registry=registry),
        "retries": Counter(RETRIES, "Backend calls retried, by target.", ["target"], registry=registry),
        "timeouts": Counter(TIMEOUTS, "Backend attempts that timed out, by target and kind.",
                            ["target", "kind"], registry=registry),
        "refused": Counter(REFUSED, "Requests refused before a graph ran (bad framing, limits, overload, auth, "
                           "unknown graph).", ["status", "reason"], registry=registry),
        "prewarms": Counter(PREWARMS, "Warm-up requests sent to idle backends at request start, by target and "
                            "outcome.", ["target", "outcome"], registry=registry),
    }


def without_created_values(text: bytes) -> bytes:
    """_created samples are creation timestamps: keep the lines, drop the value."""
    return re.sub(rb"^(\S+_created\{[^}]*\}) \S+$", rb"\1 T", text, flags=re.MULTILINE)


def test_exposition_is_what_prometheus_client_renders_for_the_same_records() -> None:
    registry = CollectorRegistry(auto_describe=False)
    ref, m = reference(registry), Metrics(multiprocess=False)
    assert m.exposition() == (generate_latest(registry), CONTENT_TYPE_LATEST)  # fresh: HELP and TYPE only
    values = [*BUCKETS, 0.0, 0.0003, 0.0042, 0.1000001, 61.0]
    for i, v in enumerate(values):
        graph_name, status, key = ("g", "h")[i % 2], (200, 503)[i % 3 == 0], ("g", "root", f"s{i % 3}", "a")
        error = "http_500" if i % 4 == 0 else None
        m.request_started(graph_name)
        ref["in_flight"].labels(graph_name).inc()
        m.step_finished(key, v, error)
        ref["step_duration"].labels(*key).observe(v)
        if error:
            ref["step_errors"].labels(*key, error).inc()
        m.branch_taken("g", "root", f"s{i % 2}", "Switch")
        ref["branch"].labels("g", "root", f"s{i % 2}", "Switch").inc()
        m.retried(f"t{i % 2}")
        ref["retries"].labels(f"t{i % 2}").inc()
        m.timed_out("t", "step_timeout")
        ref["timeouts"].labels("t", "step_timeout").inc()
        m.prewarmed("t", ("ok", "timeout")[i % 2])
        ref["prewarms"].labels("t", ("ok", "timeout")[i % 2]).inc()
        m.request_finished(graph_name, status, v * 1.5)
        ref["requests"].labels(graph_name, status).inc()
        ref["request_duration"].labels(graph_name, status).observe(v * 1.5)
        ref["in_flight"].labels(graph_name).dec()
    m.request_started("busy")
    ref["in_flight"].labels("busy").inc()
    text = m.exposition()[0]
    assert without_created_values(text) == without_created_values(generate_latest(registry))
    # one per counter and histogram series: requests and their latency (2 graphs x 2 statuses each),
    # steps (3), step errors (3), branches (2), retries (2), timeouts (1), warm-ups (2)
    assert text.count(b"_created{") == 4 + 4 + 3 + 3 + 2 + 2 + 1 + 2


MP_FLUSH = """
import asyncio, json
from prometheus_client import CollectorRegistry, multiprocess
from graph_router.telemetry import metrics

metrics.FLUSH_INTERVAL = 0.2
KEY = ("g", "root", "s", "a")

def files():
    reg = CollectorRegistry()
    multiprocess.MultiProcessCollector(reg)
    return [[s.name, s.labels, s.value] for f in reg.collect() for s in f.samples]

async def main():
    m, out = metrics.Metrics(multiprocess=True), []
    m.request_started("g")
    m.step_finished(KEY, 0.25, "http_500")
    m.step_finished(KEY, 0.5, None)
    m.retried("a")
    out.append(files())  # nothing written yet
    await asyncio.sleep(0.35)
    out.append(files())  # the timer wrote it
    m.request_finished("g", 200, 1.0)
    m.step_finished(KEY, 0.25, None)
    await asyncio.sleep(0.35)
    out.append(files())  # the timer again: only the new values were added
    m.request_started("g")
    m.step_finished(KEY, 2.5, None)
    out.append(m.exposition()[0].decode())  # a scrape writes this worker's values first
    m.close()
    out.append(files())  # in flight gone with the process, counts kept
    print(json.dumps(out))

asyncio.run(main())
"""


def as_samples(rows: list[list[Any]]) -> Samples:
    return {(name, tuple(sorted(labels.items()))): value for name, labels, value in rows}


def cumulative(values: list[float]) -> list[float]:
    return [float(sum(1 for v in values if v <= bound)) for bound in [*BUCKETS, float("inf")]]


def test_multiprocess_flush_writes_exact_deltas(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", MP_FLUSH], env=env, capture_output=True, text=True,
                         timeout=30, check=True)
    before, first, second, scraped, closed = json.loads(out.stdout)
    assert before == []
    for family in ("request_duration_seconds", "step_duration_seconds"):  # summed over workers, still histograms
        assert f"# TYPE graph_router_{family} histogram\n" in scraped
    stages = [as_samples(first), as_samples(second), parsed(scraped.encode()), as_samples(closed)]
    labels = dict(zip(("graph", "node", "step", "target"), STEP_KEY, strict=True))
    steps = [[0.25, 0.5], [0.25, 0.5, 0.25], [0.25, 0.5, 0.25, 2.5], [0.25, 0.5, 0.25, 2.5]]
    for samples, values in zip(stages, steps, strict=True):
        assert step_buckets(samples) == cumulative(values)
        assert get(samples, "graph_router_step_duration_seconds_count", **labels) == len(values)
        assert get(samples, "graph_router_step_duration_seconds_sum", **labels) == sum(values)
        assert get(samples, "graph_router_step_errors_total", **labels, error="http_500") == 1
        assert get(samples, "graph_router_backend_retries_total", target="a") == 1
    assert [get(s, "graph_router_requests_in_flight", graph="g") for s in stages] == [1, 0, 1, 0]
    assert ("graph_router_requests_in_flight", (("graph", "g"),)) not in stages[3]  # dropped at close
    assert [get(s, "graph_router_requests_total", graph="g", status="200") for s in stages] == [0, 1, 1, 1]
    req = {"graph": "g", "status": "200"}
    for samples in stages[1:]:
        assert get(samples, "graph_router_request_duration_seconds_sum", **req) == 1.0
        assert get(samples, "graph_router_request_duration_seconds_bucket", **req, le="0.5") == 0
        assert get(samples, "graph_router_request_duration_seconds_bucket", **req, le="1.0") == 1
        assert get(samples, "graph_router_request_duration_seconds_bucket", **req, le="+Inf") == 1


def test_multiprocess_metrics_refuse_a_prometheus_client_imported_without_the_directory(tmp_path: Path) -> None:
    # prometheus_client picks its value class once, at import: set the directory after and nothing would be
    # written to it (every scrape empty), so Metrics says so at once.
    code = ("import os, prometheus_client\n"
            f"os.environ['PROMETHEUS_MULTIPROC_DIR'] = {str(tmp_path)!r}\n"
            "from graph_router.telemetry.metrics import Metrics\n"
            "try:\n    Metrics(multiprocess=True)\nexcept ValueError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == ("multiprocess metrics need PROMETHEUS_MULTIPROC_DIR set before the first "
                                  "import of prometheus_client")
