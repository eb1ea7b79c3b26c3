"""Traffic for the planner: requests per second for each simulated second, and what else the input
knows (Switch branch shares, measured step latencies).

Three inputs, told apart by their content:
- a rate CSV with the header ``t_s,rps``: from ``t_s`` seconds on, ``rps`` requests per second;
- a request log: one request a line, its time first (seconds, or ISO 8601), optionally after a
  ``t_s`` or ``timestamp`` header; times are relative to the first request;
- the router's own Prometheus metrics: scrapes of ``/metrics`` one after the other, each starting
  with a ``# scrape_time <unix seconds>`` line (what ``plan --traffic http://...`` saves), or
  samples carrying their own timestamps (milliseconds). Request counts give the rate between two
  scrapes, ``graph_router_step_duration_seconds`` each step's latency and ``graph_router_branch``
  each Switch's branch shares.
CSV and log files may carry ``# share NODE.STEP=FRACTION`` lines.
"""

from __future__ import annotations

import itertools
import math
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from ..errors import Problem, SpecError

#: Seconds simulated after the last row or request, so that scaling down after it shows.
TAIL_S = 600
#: Below this rate, requests are drawn one by one (seeded Poisson arrivals per second): a trickle of
#: requests minutes apart lets a service scale to zero between them, which a steady fluid never would.
SPARSE_RPS = 2.0
#: Longest simulation accepted (a week).
MAX_SECONDS = 7 * 86400
REQUESTS = "graph_router_requests_total"
STEP_SUM = "graph_router_step_duration_seconds_sum"
STEP_COUNT = "graph_router_step_duration_seconds_count"
BRANCH = "graph_router_branch_total"
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(?:\s+(-?\d+))?\s*$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_SHARE = re.compile(r"^#\s*share\s+(\S+?)\s*=\s*(\S+)\s*$")


@dataclass
class Traffic:
    """Requests per second for each second of the simulation, plus what the input measured."""

    rps: list[float]
    source: str
    kind: str  # "rate" | "log" | "prometheus"
    shares: dict[str, float] = field(default_factory=dict)  # "node.step" -> fraction of the node's requests
    service_times: dict[str, float] = field(default_factory=dict)  # service -> seconds per call (measured)


def parse_traffic(text: str, *, source: str, graph: str, duration: float | None = None) -> Traffic:
    """Read any of the three forms; SpecError says what is wrong, on which line, and how to fix it."""
    lines = text.splitlines()
    first = next((ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")), "")
    if not first:
        raise SpecError(Problem("", "no traffic in the file: expected a CSV with the header t_s,rps, a request "
                                "log (one timestamp a line) or the router's /metrics scrapes"), source=source)
    header = [c.strip().lower() for c in first.split(",")]
    if header[:2] == ["t_s", "rps"]:
        traffic = _rate_csv(lines, source)
    elif any(ln.startswith("graph_router_") for ln in lines):
        traffic = _prometheus(lines, source, graph)
    elif header[0] in ("t_s", "timestamp", "time") or _timestamp(header[0]) is not None:
        traffic = _request_log(lines, source)
    else:
        raise SpecError(Problem("line 1", f"unrecognised traffic {first[:60]!r}: expected the header t_s,rps (a "
                                "rate CSV), a request log (a timestamp first on each line) or the router's "
                                "/metrics scrapes (graph_router_* samples)"), source=source)
    if duration is not None:
        _set_length(traffic, duration, source)
    return traffic


def discretize(rps: list[float], *, seed: int, below: float = SPARSE_RPS) -> list[float]:
    """Whole requests per second where the rate is below ``below`` (seeded, so runs repeat exactly)."""
    rng = random.Random(seed)
    out = list(rps)
    for t, rate in enumerate(rps):
        if 0 < rate < below:
            # Knuth's Poisson draw: fine for small rates.
            limit, k, p = math.exp(-rate), 0, rng.random()
            while p > limit:
                k += 1
                p *= rng.random()
            out[t] = float(k)
    return out


def _set_length(traffic: Traffic, duration: float, source: str) -> None:
    if not 1 <= duration <= MAX_SECONDS:
        raise SpecError(Problem("--duration", f"expected 1s to {MAX_SECONDS // 86400} days, got {duration:g}s"),
                        source=source)
    n = math.ceil(duration)
    rps = traffic.rps
    fill = rps[-1] if traffic.kind == "rate" and rps else 0.0
    traffic.rps = rps[:n] + [fill] * max(0, n - len(rps))


def _shares(lines: Iterable[str], source: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for no, line in enumerate(lines, 1):
        m = _SHARE.match(line.strip())
        if m is None:
            continue
        value = _number(m.group(2))
        if value is None or not 0 <= value <= 1:
            raise SpecError(Problem(f"line {no}", f"share {m.group(2)!r} of {m.group(1)}: expected a fraction "
                                    "from 0 to 1, e.g. # share breed-switch.dog=0.6"), source=source)
        out[m.group(1)] = value
    return out


def _rate_csv(lines: list[str], source: str) -> Traffic:
    rows: list[tuple[float, float]] = []
    problems: list[Problem] = []
    seen_header = False
    for no, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not seen_header:
            seen_header = True
            continue
        cells = [c.strip() for c in line.split(",")]
        t, r = (_number(cells[0]), _number(cells[1])) if len(cells) == 2 else (None, None)
        if t is None or r is None or t < 0 or r < 0:
            problems.append(Problem(f"line {no}", f"expected t_s,rps (two numbers >= 0, e.g. 3600,25), got {line!r}"))
        elif rows and t <= rows[-1][0]:
            problems.append(Problem(f"line {no}", f"t_s {t:g} is not after the previous row's {rows[-1][0]:g}: "
                                    "rows go in time order"))
        elif t > MAX_SECONDS:
            problems.append(Problem(f"line {no}", f"t_s {t:g} is past the longest simulation ({MAX_SECONDS}s)"))
        else:
            rows.append((t, r))
    if not rows and not problems:
        problems.append(Problem("", "no rows after the header t_s,rps: add rows such as 0,10"))
    if problems:
        raise SpecError(problems, source=source)
    end = math.ceil(rows[-1][0]) + TAIL_S
    rps = [0.0] * end
    for i, (t, r) in enumerate(rows):
        stop = math.ceil(rows[i + 1][0]) if i + 1 < len(rows) else end
        rps[math.ceil(t):stop] = [r] * max(0, stop - math.ceil(t))
    return Traffic(rps, source, "rate", shares=_shares(lines, source))


def _request_log(lines: list[str], source: str) -> Traffic:
    times: list[float] = []
    problems: list[Problem] = []
    for no, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        cell = re.split(r"[,\s]", line, maxsplit=1)[0]
        t = _timestamp(cell)
        if t is None:
            if not times and not problems and cell.lower() in ("t_s", "timestamp", "time"):
                continue  # the header
            problems.append(Problem(f"line {no}", f"expected a timestamp (seconds or ISO 8601) first, got {cell!r}"))
            if len(problems) >= 10:
                break
        else:
            times.append(t)
    if problems:
        raise SpecError(problems, source=source)
    if not times:
        raise SpecError(Problem("", "the request log has no requests"), source=source)
    times.sort()
    start = times[0]
    if times[-1] - start > MAX_SECONDS:
        raise SpecError(Problem("", f"the log spans more than {MAX_SECONDS // 86400} days"), source=source)
    rps = [0.0] * (math.floor(times[-1] - start) + 1 + TAIL_S)
    for t in times:
        rps[math.floor(t - start)] += 1.0
    return Traffic(rps, source, "log", shares=_shares(lines, source))


def _timestamp(cell: str) -> float | None:
    value = _number(cell)
    if value is not None:
        return value
    try:
        return datetime.fromisoformat(cell.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _number(cell: str) -> float | None:
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


Scrape = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def split_scrapes(lines: list[str], source: str) -> list[tuple[float, Scrape]]:
    """The scrapes in a saved series, in time order: (unix seconds, {(name, labels): value})."""
    scrapes: dict[float, Scrape] = {}
    current: float | None = None
    for no, raw in enumerate(lines, 1):
        line = raw.strip()
        if line.startswith("# scrape_time"):
            value = _number(line.split()[-1])
            if value is None:
                raise SpecError(Problem(f"line {no}", f"expected '# scrape_time <unix seconds>', got {line!r}"),
                                source=source)
            current = value
            scrapes.setdefault(value, {})  # a scrape may have no samples yet (no request served)
            continue
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m is None:
            raise SpecError(Problem(f"line {no}", f"not a Prometheus sample: {line[:80]!r}"), source=source)
        name, labels, value_s, ts = m.group(1), m.group(3) or "", m.group(4), m.group(5)
        when = int(ts) / 1000.0 if ts is not None else current
        if when is None:
            raise SpecError(Problem(f"line {no}", "a sample without a time: start each scrape with a "
                                    "'# scrape_time <unix seconds>' line, or give samples timestamps"), source=source)
        value = _number(value_s)
        if value is None:
            continue
        key = (name, tuple(sorted(_LABEL.findall(labels))))
        scrapes.setdefault(when, {})[key] = value
    return sorted(scrapes.items())


def _prometheus(lines: list[str], source: str, graph: str) -> Traffic:
    scrapes = split_scrapes(lines, source)
    if len(scrapes) < 2:
        raise SpecError(Problem("", f"{len(scrapes)} scrape(s): a rate needs at least two scrapes of /metrics "
                                "some time apart"), source=source)

    def total(scrape: Scrape, name: str, **want: str) -> float:
        return sum(v for (n, labels), v in scrape.items() if n == name and _has(labels, graph=graph, **want))

    t0 = scrapes[0][0]
    rps = [0.0] * math.ceil(scrapes[-1][0] - t0)
    for (ta, a), (tb, b) in itertools.pairwise(scrapes):
        count = total(b, REQUESTS) - total(a, REQUESTS)
        count = count if count >= 0 else total(b, REQUESTS)  # the router restarted: counters began again
        rate, lo, hi = count / (tb - ta), ta - t0, tb - t0
        for k in range(math.floor(lo), math.ceil(hi)):  # each second gets the part of the interval in it
            rps[k] += rate * (min(hi, k + 1) - max(lo, k))
    if not any(total(s, REQUESTS) for _, s in scrapes):
        raise SpecError(Problem("", f'no graph_router_requests_total samples for graph "{graph}": is this the '
                                "router serving that graph?"), source=source)
    first, last = scrapes[0][1], scrapes[-1][1]
    times: dict[str, float] = {}
    calls: dict[str, float] = {}
    for (name, labels), value in last.items():
        if name != STEP_SUM or not _has(labels, graph=graph):
            continue
        lab = dict(labels)
        n = last.get((STEP_COUNT, labels), 0.0) - first.get((STEP_COUNT, labels), 0.0)
        target = lab.get("target", "")
        if n > 0 and not target.startswith("node:"):
            service = urlsplit(target).hostname or target if "://" in target else target
            times[service] = times.get(service, 0.0) + value - first.get((name, labels), 0.0)
            calls[service] = calls.get(service, 0.0) + n
    shares = _branch_shares(first, last, graph)
    return Traffic(rps + [0.0] * TAIL_S, source, "prometheus", shares=shares,
                   service_times={s: times[s] / calls[s] for s in times})


def _has(labels: tuple[tuple[str, str], ...], **want: str) -> bool:
    lab = dict(labels)
    return all(lab.get(k) == v for k, v in want.items())


def _branch_shares(first: Scrape, last: Scrape, graph: str) -> dict[str, float]:
    """Switch branch shares: each step's part of the branches its node took (misses included)."""
    per_node: dict[str, dict[str, float]] = {}
    for (name, labels), value in last.items():
        lab = dict(labels)
        if name != BRANCH or lab.get("graph") != graph or lab.get("router_type") != "Switch":
            continue
        n = value - first.get((name, labels), 0.0)
        per_node.setdefault(lab.get("node", ""), {})[lab.get("step", "")] = n
    out: dict[str, float] = {}
    for node, steps in per_node.items():
        total = sum(steps.values())
        for step, n in steps.items():
            if total > 0 and step != "none":
                out[f"{node}.{step}"] = n / total
    return out
