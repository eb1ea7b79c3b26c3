"""The small benchmark scripts still run and measure what they say (tiny request counts: no timing asserted)."""

from __future__ import annotations

import re
import subprocess
import sys

from .conftest import ROOT


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
