"""Measuring one target: warm-up, then wrk at each concurrency with CPU and RSS accounting."""

from __future__ import annotations

import resource
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import procstat, wrk
from .procs import HOST
from .table import Load, Row


@dataclass(frozen=True, slots=True)
class Settings:
    seconds: int  # per measured wrk run
    warmup: int  # seconds of c64 before measuring (0 = none)
    concurrencies: Sequence[int]
    wrk_cpu: int | None
    script: Path


@dataclass(frozen=True, slots=True)
class Target:
    """Where to send load (``port``/``path``) and which process tree to account (``pid``)."""

    port: int
    path: str
    pid: int
    #: Other trees the benchmark itself runs (the backends), not counted as outside load.
    others: tuple[int, ...] = ()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{self.path}"


@dataclass(slots=True)
class Peaks:
    """The highest RSS (kB) and open-fd count seen while wrk ran (0 when not sampled)."""

    rss_kb: int = 0
    fds: int = 0


def run_wrk(argv: list[str], seconds: int, sample_pid: int | None, count_fds: bool = False) -> tuple[str, Peaks]:
    """Run wrk to completion (bounded), sampling the tree's RSS (and fds) every 0.25 s."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + seconds + 20
    peaks = Peaks()
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if sample_pid is not None:
                peaks.rss_kb = max(peaks.rss_kb, procstat.tree_rss_kb(sample_pid))
                if count_fds:
                    peaks.fds = max(peaks.fds, procstat.tree_fds(sample_pid))
            time.sleep(0.25)
        out, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return out, peaks


class OutsideMeter:
    """CPU (% of one core) that ran outside the benchmark during a span: other processes, steal.

    Machine-wide busy time minus the given process trees, this process and its reaped children (wrk).
    """

    def __init__(self, trees: tuple[int, ...]) -> None:
        self.trees = trees
        self.tree_cpu = [procstat.tree_cpu_seconds(pid) for pid in trees]
        self.busy, self.harness, self.t = procstat.system_busy_seconds(), _harness_cpu(), time.monotonic()

    def stop(self) -> tuple[float, list[float]]:
        """Return (outside %, CPU seconds of each tree during the span)."""
        busy, harness, t = procstat.system_busy_seconds(), _harness_cpu(), time.monotonic()
        used = [procstat.tree_cpu_seconds(pid) - b for pid, b in zip(self.trees, self.tree_cpu, strict=True)]
        outside = (busy - self.busy) - sum(used) - (harness - self.harness)
        return max(0.0, outside) * 100.0 / max(t - self.t, 1e-9), used


def measure_load(target: Target, settings: Settings, connections: int) -> tuple[Load, int]:
    """One measured wrk run; returns the load and the peak RSS seen during it."""
    argv = wrk.command(target.url, settings.script, connections, settings.seconds, settings.wrk_cpu)
    meter = OutsideMeter((target.pid, *target.others))
    out, peaks = run_wrk(argv, settings.seconds, target.pid)
    outside, used = meter.stop()
    result = wrk.parse_output(out)
    cpu = procstat.cpu_per_request_us(0.0, used[0], result.requests)
    return Load(connections, result, cpu, outside), peaks.rss_kb


def _harness_cpu() -> float:
    """CPU seconds of this process (its /proc sampling) and its reaped children (wrk)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def measure(row: Row, target: Target, settings: Settings) -> Row:
    """Fill ``row`` with idle RSS, then one load per concurrency (after a warm-up)."""
    row.rss_idle_kb = procstat.tree_rss_kb(target.pid)
    if settings.warmup > 0:
        argv = wrk.command(target.url, settings.script, max(settings.concurrencies), settings.warmup, settings.wrk_cpu)
        run_wrk(argv, settings.warmup, None)
    peak = 0
    for connections in settings.concurrencies:
        load, seen = measure_load(target, settings, connections)
        row.loads.append(load)
        peak = max(peak, seen)
    row.rss_load_kb = peak
    return row
