"""Result rows and their Markdown rendering, with the machine/date/commit/command header."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .wrk import WrkResult


@dataclass(frozen=True, slots=True)
class Load:
    """One wrk run at a fixed concurrency, with the measured tree's CPU per request."""

    connections: int
    wrk: WrkResult
    cpu_us: float | None
    #: CPU (% of one core) busy outside the benchmark during the run: other processes, steal.
    outside_pct: float = 0.0


@dataclass(slots=True)
class Row:
    """One line of the table: a router (or reference) on one pattern and variant."""

    router: str
    pattern: str
    variant: str
    loads: list[Load] = field(default_factory=list)
    rss_idle_kb: int | None = None
    rss_load_kb: int | None = None
    note: str = ""

    def load(self, connections: int) -> Load | None:
        return next((x for x in self.loads if x.connections == connections), None)

    @property
    def errors(self) -> int:
        return sum(x.wrk.errors for x in self.loads)

    @property
    def outside_pct(self) -> float | None:
        return max((x.outside_pct for x in self.loads), default=None)


def fmt_us(us: float | None) -> str:
    """Microseconds as "123 us" below a millisecond, else "1.23 ms"."""
    if us is None:
        return "-"
    return f"{us:.0f} us" if us < 1000 else f"{us / 1000:.2f} ms"


def fmt_cpu(us: float | None) -> str:
    """CPU per request: one decimal below a millisecond (run-to-run differences are a few us)."""
    if us is None:
        return "-"
    return f"{us:.1f} us" if us < 999.95 else f"{us / 1000:.2f} ms"


def fmt_mb(kb: int | None) -> str:
    return "-" if kb is None else f"{kb / 1024:.1f} MB"


def fmt_rps(rps: float) -> str:
    return f"{rps:,.0f}"


def _load_cells(load: Load | None) -> list[str]:
    if load is None:
        return ["-"] * 4
    w = load.wrk
    return [fmt_rps(w.rps), fmt_us(w.p50_us), fmt_us(w.p99_us), fmt_cpu(load.cpu_us)]


def render_table(rows: Sequence[Row], concurrencies: Sequence[int] = (64, 1)) -> str:
    """Render ``rows`` as a Markdown table, one column group per concurrency."""
    head = ["router", "pattern", "variant"]
    for c in concurrencies:
        head += [f"c{c} req/s", f"c{c} p50", f"c{c} p99", f"c{c} CPU/req"]
    head += ["RSS idle", "RSS load", "errors", "other CPU", "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row.router, row.pattern, row.variant]
        for c in concurrencies:
            cells += _load_cells(row.load(c))
        other = "-" if row.outside_pct is None else f"{row.outside_pct:.0f}%"
        cells += [fmt_mb(row.rss_idle_kb), fmt_mb(row.rss_load_kb), str(row.errors), other, _cell(row.note)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())


def cpu_model(cpuinfo: str) -> str:
    """The first "model name" in /proc/cpuinfo text (or "unknown")."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return "unknown"


def git_commit(repo: Path) -> str:
    """Short commit hash, with "+dirty" when tracked files are modified."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def header(title: str, command: Iterable[str], repo: Path, notes: Sequence[str] = ()) -> str:
    """The Markdown header: machine, date, git commit and the exact command."""
    try:
        model = cpu_model(Path("/proc/cpuinfo").read_text())
    except OSError:
        model = "unknown"
    lines = [
        f"## {title}",
        "",
        f"- machine: {os.cpu_count()} cores (nproc), {model}, kernel {platform.release()}",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M:%S UTC')}",
        f"- git commit: {git_commit(repo)}",
        f"- command: `{shlex.join(command)}`",
        *(f"- {note}" for note in notes),
        "",
    ]
    return "\n".join(lines)
