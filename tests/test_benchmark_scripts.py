"""The small benchmark scripts still run and measure what they say (tiny request counts: no timing asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .support.router import ROOT


def run_script(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_tracing_micro_prints_the_three_rows() -> None:
    out = run_script("benchmarks/tracing_micro.py", "--requests", "2000")
    rows = re.findall(r"^  (metrics[^\d]+?)\s+([\d.]+) us", out, re.M)
    assert [name for name, _ in rows] == ["metrics only", "metrics + tracing, none sampled",
                                          "metrics + every request traced"]


def test_telemetry_overhead_runs_the_ensemble_and_counts_its_spans() -> None:
    """An Ensemble of 3 traced: SERVER, node, and a step and a CLIENT span per step = 8 spans a request."""
    out = run_script("benchmarks/telemetry_overhead.py", "--requests", "400", "--rounds", "1", "--max-seconds", "5",
                     "--graph", "ens3", "--gc-threshold", "700", "--variants", "off", "metrics+otlp 100%")
    assert "Ensemble of 3" in out and "gc threshold 700" in out
    rows = {m[0].strip(): m for m in re.findall(r"^  (\S[^\n]*?)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)x\s+([\d.]+)$",
                                                    out, re.M)}
    assert set(rows) == {"off", "metrics+otlp 100%"}
    assert rows["off"][5] == "0.00" and rows["metrics+otlp 100%"][5] == "8.00"
    assert rows["off"][4] == "1.00"


def test_json_scan_micro_times_the_parse_and_the_scan() -> None:
    out = run_script("benchmarks/json_scan_micro.py", "--sizes", "1KB", "100KB", "--repeat", "1")
    rows = re.findall(r"^\| (1KB|100KB) \| ([\d,]+) us \| ([\d,]+) us \| ([\d,]+) us \| ([\d,]+) us \|", out, re.M)
    assert [r[0] for r in rows] == ["1KB", "100KB"]
    assert "is_json (msgspec scan)" in out


def test_coldstart_prints_a_row_per_graph_and_router_variant(tmp_path: Path) -> None:
    out = run_script("benchmarks/coldstart.py", "--cold-start", "0.2", "--no-kserve", "--logs", str(tmp_path))
    rows = re.findall(r"^\| (Sequence[^|]*) \| (graph-router) \| ([^|]+) \| [\d.]+ s \| [\d.]+x \| "
                      r"(\d+ of \d+) \| (\d+) \|$", out, re.M)
    assert [(g.strip(), v.strip(), started, status) for g, _, v, started, status in rows] == [
        ("Sequence of 3", "prewarm: certain (default)", "3 of 3", "200"),
        ("Sequence of 3", "prewarm: off", "3 of 3", "200"),
        ("Sequence: step, Ensemble of 3, step", "prewarm: certain (default)", "5 of 5", "200"),
        ("Sequence: step, Ensemble of 3, step", "prewarm: off", "5 of 5", "200"),
    ]
    assert "KServe's router skipped: --no-kserve" in out and "command: python benchmarks/coldstart.py" in out


@pytest.mark.parametrize("http", [False, True], ids=["in-process", "http"])
def test_mirror_overhead_mirrors_every_request_and_drops_none(http: bool) -> None:
    out = run_script("benchmarks/mirror_overhead.py", "--requests", "400", "--rounds", "1", "--max-seconds", "5",
                     "--variants", "off", "mirror", *(["--http"] if http else []))
    assert out.startswith("1 hop, mirrored to a shadow on 100% of requests")
    rows = {m[0]: m for m in re.findall(r"^  (\S+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)x\s+([\d.]+)\s+(\d+)$",
                                        out, re.M)}
    assert set(rows) == {"off", "mirror"}
    assert (rows["off"][5], rows["mirror"][5]) == ("0.00", "1.00")  # copies per request
    assert rows["off"][6] == rows["mirror"][6] == "0"  # nothing dropped
    assert rows["off"][4] == "1.00"


def test_hostile_backends_prints_a_row_per_scenario() -> None:
    out = run_script("benchmarks/hostile_backends.py", "--size-mib", "1", "--max-mib", "4", "--timeout", "30",
                     "--only", "endless-header,endless-trailer,tiny-chunks")
    rows = {m[0]: m[1] for m in re.findall(r"^  (\S+)\s+(\d+|-)\s+[\d.]+\s+[\d.]+\s+-?[\d.]+\s+-?[\d.]+$", out, re.M)}
    assert rows == {"endless-header": "502", "endless-trailer": "502", "tiny-chunks": "200"}


def test_client_parse_micro_times_this_tree() -> None:
    out = run_script("benchmarks/client_parse_micro.py", "--exchanges", "2000", "--rounds", "1")
    assert re.search(r"^  this tree\s+[\d.]+ us/exchange", out, re.M), out


def test_engine_micro_prints_every_pattern() -> None:
    out = run_script("benchmarks/engine_micro.py", "--requests", "200", "--repeat", "1")
    rows = re.findall(r"^  (1 hop|Sequence of 3|Ensemble of 3)\s+([\d.]+) us$", out, re.M)
    assert [name for name, _ in rows] == ["1 hop", "Sequence of 3", "Ensemble of 3"]


def test_hostile_prints_fairness_memory_and_budget_rows() -> None:
    out = run_script("benchmarks/hostile.py", "--samples", "5", "--body-mb", "0.2", "--attackers", "4",
                     "--attack-kib", "256", "--budget-mib", "0.5")
    rows = re.findall(r"^  (quiet|beside .+?)\s{2,}([\d.]+) ms", out, re.M)
    assert [name for name, _ in rows] == ["quiet", "beside 1-byte chunks", "beside endless trailer",
                                          "beside endless chunk line"]
    assert re.search(r"^memory: 0.2 MB in 1-byte chunks \(HTTP/1.1 200 OK\): idle [\d.]+ MiB", out, re.M), out
    # 0.5 MiB holds two 256 KiB attackers: the other two, and the request after them, get 503
    assert "budget: 4 attackers x 0.25 MiB against 0.5 MiB: 2 refused with 503" in out, out
    assert out.rstrip().endswith("a new request meanwhile: HTTP/1.1 503 Service Unavailable"), out


SCRIPTS = sorted(p.name for p in (ROOT / "benchmarks").glob("*.py") if "argparse" in p.read_text())


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_benchmark_script_explains_itself(script: str) -> None:
    out = run_script(f"benchmarks/{script}", "--help")
    assert out.startswith("usage:"), out[:200]
