"""`graph-router plan`: every example, text and JSON output, plots, what-ifs, bad input, live scraping."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import jsonschema
import orjson
import pytest

from graph_router.cli import main

from ..support.backends import Backend
from ..support.graphs import ONE_STEP_GRAPH
from ..support.router import ROOT, RouterProcess

EXAMPLES = sorted(p.name for p in (ROOT / "graphs").iterdir() if (p / "traffic.csv").exists())
ENSEMBLE = ["plan", "graphs/ensemble/graph.yaml", "--deploy", "graphs/ensemble/deploy.yaml",
            "--traffic", "graphs/ensemble/traffic.csv"]
#: At least what the issue promises tools, checked on every example.
SCHEMA = {
    "type": "object",
    "required": ["services", "graph"],
    "properties": {
        "services": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {
                "type": "object",
                "required": ["replicas", "cold_start_requests", "pod_seconds"],
                "properties": {
                    "replicas": {"type": "array", "items": {"type": "array", "minItems": 2, "maxItems": 2,
                                                            "items": {"type": "integer", "minimum": 0}}},
                    "cold_start_requests": {"type": "number", "minimum": 0},
                    "pod_seconds": {"type": "number", "minimum": 0},
                },
            },
        },
        "graph": {
            "type": "object",
            "required": ["p50_ms", "p99_ms", "cold_start_requests"],
            "properties": {k: {"type": "number", "minimum": 0} for k in ("p50_ms", "p99_ms", "cold_start_requests")},
        },
    },
}


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def plan(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_example_plans_a_day_in_a_few_seconds(capsys: pytest.CaptureFixture[str], example: str) -> None:
    start = time.monotonic()
    code, out, err = plan(capsys, "plan", f"graphs/{example}/graph.yaml", "--deploy", f"graphs/{example}/deploy.yaml",
                          "--traffic", f"graphs/{example}/traffic.csv", "--format", "json")
    elapsed = time.monotonic() - start
    assert code == 0, err
    doc = orjson.loads(out)
    jsonschema.validate(doc, SCHEMA)
    assert doc["duration_s"] == 86400 + 600
    assert doc["graph"]["requests"] > 10_000
    assert elapsed < 20  # generous: a day takes about a second (benchmarks belong elsewhere)


def test_text_summary(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = plan(capsys, *ENSEMBLE, "--service-time", "200ms", "--cold-start", "20s")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("plan: graph ensemble, 24h10m of traffic from graphs/ensemble/traffic.csv, ")
    assert lines[1].startswith("graph latency: p50 200 ms, p90 200 ms, p99 ")
    assert [ln.split()[0] for ln in lines[5:]] == ["sklearn-iris", "xgboost-iris", "lightgbm-iris"]


def test_json_names_services_and_their_settings(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = plan(capsys, *ENSEMBLE, "--format", "json", "--cold-start", "sklearn-iris=30s")
    assert code == 0
    doc = orjson.loads(out)
    s = doc["services"]["sklearn-iris"]
    assert s["settings"]["target"] == 7.0  # scaleTarget 10 at 70%
    assert (s["settings"]["stable_window_s"], s["settings"]["panic_window_s"]) == (60.0, 6.0)
    assert s["cold_start_s"] == 30.0 and doc["services"]["xgboost-iris"]["cold_start_s"] == 10.0
    assert s["replicas"][0] == [0, 1]
    assert s["calls_per_request"] == 1.0


def test_a_what_if_prints_the_difference_side_by_side(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = plan(capsys, *ENSEMBLE, "--set", "sklearn-iris.minReplicas=1")
    assert code == 0
    diff = out.split("\n\n")[-1].splitlines()
    assert diff[0] == "what if: sklearn-iris.minReplicas=1"
    assert diff[1].split() == ["before", "after", "change"]
    rows = {ln[:32].strip(): ln[32:].split() for ln in diff[2:]}
    before, after, change = rows["sklearn-iris cold-start requests"]
    assert float(before) > 0 and after == "0.0" and change == f"-{before}"
    assert rows["graph cold-start requests"][2] == "="  # the two other models still start cold
    assert rows["sklearn-iris pod-hours"][2].startswith("+")


def test_a_what_if_in_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = plan(capsys, *ENSEMBLE, "--format", "json", "--set", "xgboost-iris.coldStart=1m",
                        "--set", "xgboost-iris.window=2m")
    assert code == 0
    doc = orjson.loads(out)
    after = doc["what_if"]
    assert after["set"] == ["xgboost-iris.coldStart=1m", "xgboost-iris.window=2m"]
    assert after["services"]["xgboost-iris"]["cold_start_s"] == 60.0
    assert after["services"]["xgboost-iris"]["settings"]["stable_window_s"] == 120.0
    assert doc["services"]["xgboost-iris"]["settings"]["stable_window_s"] == 60.0
    jsonschema.validate(after, SCHEMA)


def test_plot_writes_a_png(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "plan.png"
    code, _, err = plan(capsys, *ENSEMBLE, "--plot", str(out), "--set", "sklearn-iris.minReplicas=1")
    assert code == 0, err
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 10_000


def test_plot_without_matplotlib_names_the_extra(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, _, err = plan(capsys, *ENSEMBLE, "--plot", str(tmp_path / "p.png"))
    assert code == 2
    assert err == ("error: --plot: drawing needs matplotlib, which is not installed: "
                   "pip install 'graph-router[plan]'\n")


def test_progress_bar_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = plan(capsys, *ENSEMBLE, "--progress")
    assert code == 0
    assert err.startswith("\rplan ensemble [")
    assert err.endswith("[##############################] 100%\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "fraud.minReplicas=1"], "error: --set fraud.minReplicas=1: no service 'fraud' in the deployment "
                                           "description (services: sklearn-iris, xgboost-iris, lightgbm-iris)"),
        (["--set", "sklearn-iris.minReplica=1"], "error: --set sklearn-iris.minReplica=1: unknown key 'minReplica' "
                                                 "(did you mean 'minReplicas'?)"),
        (["--set", "minReplicas"], "error: --set minReplicas: expected SERVICE.KEY=VALUE, e.g. --set "
                                   "fraud-model.minReplicas=1"),
        (["--set", "sklearn-iris.minReplicas=-1"], "error: graphs/ensemble/deploy.yaml with --set: "
                                                   "services.sklearn-iris.minReplicas: 'MinReplicas' cannot be "
                                                   "less than 0"),
        (["--set", "sklearn-iris.window=5s"], "services.sklearn-iris.autoscaling.window: expected 6s <= 5s <= 1h0m0s"),
        (["--set", "sklearn-iris.coldStart=soon"], "error: --set sklearn-iris.coldStart=soon: coldStart is a "
                                                   "duration such as 20s or 150ms, got 'soon'"),
        (["--cold-start", "abc"], "error: --cold-start abc: expected a duration such as 30s, 250ms or 2m, got 'abc'"),
        (["--share", "root.sklearn"], "error: --share root.sklearn: expected NODE.STEP=FRACTION"),
        (["--duration", "0"], "error: graphs/ensemble/traffic.csv: --duration: expected 1s to 7 days, got 0s"),
        (["--plot", "plan.txt"], "error: --plot: plan.txt: the file name must end in .png, .svg or .pdf"),
        (["--graph", "nope"], "error: --graph: graph 'nope' not found; graphs: ensemble"),
    ],
)
def test_bad_input_is_explained_and_exits_2(capsys: pytest.CaptureFixture[str], args: list[str],
                                            message: str) -> None:
    code, out, err = plan(capsys, *ENSEMBLE, *args)
    assert code == 2
    assert out == ""
    assert message in err
    assert "Traceback" not in err


def test_bad_files_are_explained(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    traffic = tmp_path / "t.csv"
    traffic.write_text("t_s,rps\n0,1\n60,lots\n")
    code, _, err = plan(capsys, "plan", "graphs/ensemble/graph.yaml", "--deploy", "graphs/ensemble/deploy.yaml",
                        "--traffic", str(traffic))
    assert (code, err) == (2, f"error: {traffic}: line 3: expected t_s,rps (two numbers >= 0, e.g. 3600,25), "
                              "got '60,lots'\n")
    code, _, err = plan(capsys, "plan", "graphs/ensemble/graph.yaml", "--deploy", "graphs/ab-test/deploy.yaml",
                        "--traffic", "graphs/ensemble/traffic.csv")
    assert code == 2
    assert 'services.sklearn-iris: not described: graph "ensemble" calls serviceName "sklearn-iris"' in err
    code, _, err = plan(capsys, *ENSEMBLE[:4], "--traffic", str(tmp_path / "missing.csv"))
    assert code == 2 and "missing.csv: cannot read the traffic file:" in err


async def test_plan_replays_a_running_router_scraped_live(
    tmp_path: Path, backend_factory: Callable[[], Awaitable[Backend]],
    router_process: Callable[..., RouterProcess],
) -> None:
    b = await backend_factory()
    graph = tmp_path / "g.yaml"
    graph.write_text(ONE_STEP_GRAPH)
    deploy = tmp_path / "deploy.yaml"
    deploy.write_text("services:\n  a: {modelFormat: sklearn, storageUri: gs://b/a}\n")
    rp = await asyncio.to_thread(router_process, str(graph), "--service", f"a={b.predict_url('a')}")
    saved = tmp_path / "scrapes.txt"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "graph_router", "plan", str(graph), "--deploy", str(deploy), "--traffic",
        f"{rp.url}/metrics", "--scrape-for", "2", "--scrape-every", "1", "--save-scrapes", str(saved),
        "--format", "json", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT)
    sent = 0
    async with aiohttp.ClientSession() as s:
        deadline = time.monotonic() + 30
        while proc.returncode is None and time.monotonic() < deadline:
            async with s.post(rp.url, json={"instances": [sent]}) as r:
                assert r.status == 200
            sent += 1
            await asyncio.sleep(0.02)
            if proc.stdout is not None and proc.stdout.at_eof():
                break
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    doc = orjson.loads(out)
    text = saved.read_text()
    assert text.count("# scrape_time ") == 3
    counts = [float(ln.split()[1]) for ln in text.splitlines()
              if ln.startswith('graph_router_requests_total{graph="g",status="200"}')]
    # The plan replays what the router counted between the first and the last scrape (the part-second at
    # the end carries a rate below 2/s, so it is drawn as whole requests: up to a couple either way).
    counted = counts[-1] - (counts[0] if len(counts) == 3 else 0)
    assert counted > 0
    assert doc["graph"]["requests"] == pytest.approx(counted, abs=2.5)
    measured = doc["services"]["a"]["service_time_s"]
    assert 0 < measured < 1  # the step latency the router measured, not the 50 ms default
    # The saved scrapes replay to the same plan.
    replay = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "graph_router", "plan", str(graph), "--deploy", str(deploy),
                         "--traffic", str(saved), "--format", "json"], capture_output=True, cwd=ROOT, timeout=60)
    assert replay.returncode == 0, replay.stderr.decode()
    again = orjson.loads(replay.stdout)
    assert {**again, "traffic": None} == {**doc, "traffic": None}


def test_the_same_seed_gives_the_same_plan(capsys: pytest.CaptureFixture[str]) -> None:
    runs = [plan(capsys, *ENSEMBLE, "--format", "json", "--seed", seed)[1] for seed in ("7", "7", "8")]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]  # the night's requests are drawn differently


def test_the_documented_plan_is_what_the_command_prints(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    doc = (ROOT / "docs/manifests.md").read_text()
    block = doc.split("```text\n$ graph-router plan ", 1)[1].split("```", 1)[0]
    command, _, expected = block.partition("    --plot docs/planner-ensemble.png\n")
    args = command.replace("\\\n", " ").split()
    code, out, _ = plan(capsys, "plan", *args, "--plot", str(tmp_path / "p.png"))
    assert code == 0
    assert out == expected
    assert (ROOT / "docs/planner-ensemble.png").read_bytes()[:4] == b"\x89PNG"
