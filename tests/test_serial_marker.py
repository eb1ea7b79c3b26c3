"""The ``serial`` marker (tests/support/serial.py): under xdist, a serial test overlaps no other test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .support.router import ROOT

TESTS = """
import os, time
import pytest

def record(name, seconds):
    t0 = time.monotonic()
    time.sleep(seconds)
    with open(os.environ["INTERVALS"], "a") as f:
        f.write(f"{name} {t0} {time.monotonic()}\\n")

@pytest.mark.serial
def test_alone():
    record("serial", 0.6)

@pytest.mark.parametrize("i", range(8))
def test_other(i):
    record(f"other{i}", 0.15)
"""
CONFTEST = """
def pytest_configure(config):
    config.addinivalue_line("markers", "serial: runs alone")
"""


def intervals(tmp_path: Path, *, with_locks: bool) -> dict[str, tuple[float, float]]:
    """Run the tests above on two workers; (start, end) of each by name."""
    project = tmp_path / ("locked" if with_locks else "plain")
    project.mkdir()
    (project / "test_timing.py").write_text(TESTS)
    imports = "from tests.support.serial import alone_when_serial, run_locks  # noqa: F401\n" if with_locks else ""
    (project / "conftest.py").write_text(imports + CONFTEST)
    log = project / "intervals.txt"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}, "INTERVALS": str(log),
           "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "-p", "no:cacheprovider", "-q", str(project)],
                         cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = (line.split() for line in log.read_text().splitlines())
    return {name: (float(t0), float(t1)) for name, t0, t1 in rows}


def overlapping(spans: dict[str, tuple[float, float]]) -> list[str]:
    start, end = spans.pop("serial")
    return sorted(name for name, (t0, t1) in spans.items() if t0 < end and start < t1)


def test_a_serial_test_overlaps_no_other(tmp_path: Path) -> None:
    spans = intervals(tmp_path, with_locks=True)
    assert len(spans) == 9
    assert overlapping(spans) == []


def test_without_the_locks_tests_overlap(tmp_path: Path) -> None:
    """The check above can fail: two workers without the locks run the serial test beside others."""
    assert overlapping(intervals(tmp_path, with_locks=False)) != []
