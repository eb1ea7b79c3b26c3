"""Interleaved rounds: the same rows measured N times in turn, shown as median and range (min-max).

The VM's speed drifts within the hour, so a ratio between two routers comes from rows measured
alternately (Go, ours, Go, ours, ...) in one run, each summarised by its median over the rounds.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .table import Load, Row, _cell, fmt_cpu, fmt_mb, fmt_rps, fmt_us


@dataclass(slots=True)
class Series:
    """One row of the table measured once per round (``runs``: one :class:`Row` per round)."""

    key: str
    router: str
    pattern: str
    variant: str
    runs: list[Row] = field(default_factory=list)

    def loads(self, connections: int) -> list[Load]:
        return [x for r in self.runs if (x := r.load(connections)) is not None]

    @property
    def notes(self) -> str:
        return "; ".join(dict.fromkeys(r.note for r in self.runs if r.note))

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.runs)

    def cpu_median(self, connections: int) -> float | None:
        return median([x.cpu_us for x in self.loads(connections) if x.cpu_us is not None])


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def spread(values: Sequence[float], fmt: Callable[[float], str]) -> str:
    """``median`` alone for one value, ``median (min-max)`` for several."""
    if not values:
        return "-"
    mid = fmt(statistics.median(values))
    if len(values) == 1:
        return mid
    return f"{mid} ({fmt(min(values))}-{fmt(max(values))})"


def ratio(ours: float | None, theirs: float | None) -> str:
    return "-" if ours is None or theirs is None or theirs == 0 else f"{ours / theirs:.2f}x"


def render_series(series: Sequence[Series], concurrencies: Sequence[int], *, rss: bool = True) -> str:
    """Markdown table: per concurrency req/s, p50, p99, CPU/req as median (min-max) over the rounds."""
    head = ["router", "pattern", "variant", "rounds"]
    for c in concurrencies:
        head += [f"c{c} req/s", f"c{c} p50", f"c{c} p99", f"c{c} CPU/req"]
    if rss:
        head += ["RSS idle", "RSS peak"]
    head += ["errors", "other CPU", "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in series:
        cells = [s.router, s.pattern, s.variant, str(len(s.runs))]
        for c in concurrencies:
            loads = s.loads(c)
            cells += [
                spread([x.wrk.rps for x in loads], fmt_rps),
                spread([x.wrk.p50_us for x in loads], fmt_us),
                spread([x.wrk.p99_us for x in loads], fmt_us),
                spread([x.cpu_us for x in loads if x.cpu_us is not None], fmt_cpu),
            ]
        if rss:
            idle = [r.rss_idle_kb for r in s.runs if r.rss_idle_kb is not None]
            peak = [r.rss_load_kb for r in s.runs if r.rss_load_kb]
            cells += [fmt_mb(max(idle)) if idle else "-", fmt_mb(max(peak)) if peak else "-"]
        outside = [x.outside_pct for c in concurrencies for x in s.loads(c)]
        cells += [str(s.errors), f"{max(outside):.0f}%" if outside else "-", _cell(s.notes)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_ratios(
    pairs: Sequence[tuple[str, Series, Series]], concurrencies: Sequence[int], what: str = "CPU/req"
) -> str:
    """``label | cN ours | cN theirs | ratio`` from the medians of two series measured in the same rounds."""
    head = ["row"]
    for c in concurrencies:
        head += [f"c{c} {what} ours", f"c{c} {what} theirs", f"c{c} ratio"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, ours, theirs in pairs:
        cells = [label]
        for c in concurrencies:
            a, b = ours.cpu_median(c), theirs.cpu_median(c)
            cells += [fmt_cpu(a), fmt_cpu(b), ratio(a, b)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
