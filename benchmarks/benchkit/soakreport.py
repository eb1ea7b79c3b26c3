"""Soak samples and their summary: p99 over time, errors, open fds and RSS growth."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .table import fmt_mb, fmt_rps, fmt_us


@dataclass(frozen=True, slots=True)
class Sample:
    """One slice of a soak: wrk figures for the slice, then fds and RSS of the router tree."""

    phase: str  # e.g. "c64"
    elapsed_s: float  # since the phase started, at the end of the slice
    requests: int
    rps: float
    p99_us: float
    status_errors: int  # responses >= 400
    socket_errors: int  # connect, read, write, timeout
    fds: int
    rss_kb: int
    outside_pct: float = 0.0  # CPU (% of a core) used outside the benchmark during the slice
    socket_detail: str = ""  # socket errors by kind, when there were any
    fds_peak: int = 0  # most open fds seen during the slice (sampled every 0.25 s)

    @property
    def errors(self) -> int:
        return self.status_errors + self.socket_errors


def growth_pct(start: float, end: float) -> float | None:
    """Growth from ``start`` to ``end`` in percent (None when start is 0)."""
    return None if start == 0 else (end - start) * 100.0 / start


def fmt_pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}%"


@dataclass(frozen=True, slots=True)
class PhaseSummary:
    phase: str
    samples: int
    seconds: float
    requests: int
    errors: int
    p99_first_us: float
    p99_last_us: float
    p99_max_us: float
    rss_start_kb: int
    rss_end_kb: int
    fds_start: int
    fds_end: int
    fds_peak: int

    @property
    def rss_growth(self) -> float | None:
        return growth_pct(self.rss_start_kb, self.rss_end_kb)

    @property
    def fds_growth(self) -> float | None:
        return growth_pct(self.fds_start, self.fds_end)


def summarise(samples: Sequence[Sample]) -> list[PhaseSummary]:
    """One summary per phase, in the order phases first appear; start = the first slice's end."""
    phases: dict[str, list[Sample]] = {}
    for s in samples:
        phases.setdefault(s.phase, []).append(s)
    out = []
    for phase, group in phases.items():
        first, last = group[0], group[-1]
        out.append(
            PhaseSummary(
                phase=phase,
                samples=len(group),
                seconds=last.elapsed_s,
                requests=sum(s.requests for s in group),
                errors=sum(s.errors for s in group),
                p99_first_us=first.p99_us,
                p99_last_us=last.p99_us,
                p99_max_us=max(s.p99_us for s in group),
                rss_start_kb=first.rss_kb,
                rss_end_kb=last.rss_kb,
                fds_start=first.fds,
                fds_end=last.fds,
                fds_peak=max(s.fds_peak for s in group),
            )
        )
    return out


def sample_line(s: Sample) -> str:
    """One progress line for a sample."""
    return (
        f"{s.phase} t={s.elapsed_s:5.0f}s req/s={s.rps:9.0f} p99={fmt_us(s.p99_us):>9} "
        f"errors={s.status_errors}+{s.socket_errors} fds={s.fds} (peak {s.fds_peak}) rss={fmt_mb(s.rss_kb)} "
        f"other-cpu={s.outside_pct:.0f}%" + (f" ({s.socket_detail})" if s.socket_errors and s.socket_detail else "")
    )


def render_samples(samples: Sequence[Sample]) -> str:
    lines = [
        "| phase | t | req/s | p99 | status errors | socket errors | open fds | fds peak | RSS | other CPU |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in samples:
        socket = (
            f"{s.socket_errors} ({s.socket_detail})" if s.socket_errors and s.socket_detail else str(s.socket_errors)
        )
        lines.append(
            f"| {s.phase} | {s.elapsed_s:.0f} s | {fmt_rps(s.rps)} | {fmt_us(s.p99_us)} | {s.status_errors} "
            f"| {socket} | {s.fds} | {s.fds_peak} | {fmt_mb(s.rss_kb)} | {s.outside_pct:.0f}% |"
        )
    return "\n".join(lines) + "\n"


def render_summary(summaries: Sequence[PhaseSummary]) -> str:
    head = (
        "| phase | duration | requests | errors | p99 first | p99 last | p99 max "
        "| RSS start | RSS end | RSS growth | fds start | fds end | fds growth | fds peak |"
    )
    lines = [head, "|" + "---|" * 14]
    for p in summaries:
        lines.append(
            f"| {p.phase} | {p.seconds:.0f} s | {p.requests:,} | {p.errors} | {fmt_us(p.p99_first_us)} "
            f"| {fmt_us(p.p99_last_us)} | {fmt_us(p.p99_max_us)} | {fmt_mb(p.rss_start_kb)} "
            f"| {fmt_mb(p.rss_end_kb)} | {fmt_pct(p.rss_growth)} | {p.fds_start} | {p.fds_end} "
            f"| {fmt_pct(p.fds_growth)} | {p.fds_peak} |"
        )
    return "\n".join(lines) + "\n"
