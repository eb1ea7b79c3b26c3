"""benchmarks/plan_speed.py runs and prints a row per example (a short simulation: no timing asserted)."""

from __future__ import annotations

import re
import subprocess
import sys

from ..support.router import ROOT


def test_plan_speed_prints_a_row_per_example() -> None:
    done = subprocess.run([sys.executable, "benchmarks/plan_speed.py", "--repeat", "1", "--duration", "600",
                           "--examples", "ensemble", "animal-breeds"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = re.findall(r"^  (\S+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)$", done.stdout, re.M)
    assert [(r[0], r[1], r[2]) for r in rows] == [("ensemble", "3", "600"), ("animal-breeds", "5", "600")]
