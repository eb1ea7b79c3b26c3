"""run.py's report: one section per row set, each table's cells median (min-max) over the rounds,
and the ratios the speed targets name, computed from medians measured in the same run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import payload, router
from .rounds import Series, median, ratio, render_ratios, render_series
from .table import fmt_cpu, fmt_mb, fmt_rps, header

#: The targets, as the speed issue states them.
TARGET_C64, TARGET_C1 = 0.3, 0.7  # graph-router CPU/req over KServe's, same run
TARGET_PAYLOAD = 1.5  # graph-router 1 hop over nginx proxy_pass, CPU/req at 100 KB and 1 MB
TARGET_RSS = 4.0  # peak RSS above idle over the bytes in flight, 8 x 8 MB
TARGET_TRACE_10, TARGET_TRACE_ALL = 1.15, 1.35  # CPU/req at c64 over metrics and tracing off


def find(series: Sequence[Series], router_name: str, pattern: str, variant: str | None = None) -> Series | None:
    return next((s for s in series if s.router == router_name and s.pattern == pattern
                 and (variant is None or s.variant == variant)), None)


def compare_section(run: Any) -> str:
    rows: list[Series] = run.tables.get("compare", [])
    if not rows:
        return ""
    out = ["## Small requests: graph-router beside KServe's router, nginx and aiohttp", "",
           f"c64 and c1, {run.small.seconds} s each after a {run.small.warmup} s warm-up at c64; "
           f"POST {len(router.BODY)}-byte JSON; backends answer a 23-byte JSON.", "",
           render_series(rows, (64, 1))]
    pairs = []
    other = run.other.name if run.other is not None else None
    for s in rows:
        if s.router == "graph-router" and other is not None and (theirs := find(rows, other, s.pattern)):
            pairs.append((f"{s.pattern}: graph-router / {other}", s, theirs))
    ours_1hop = find(rows, "graph-router", "1 hop")
    nginx = find(rows, "nginx proxy_pass", "1 hop")
    aio = find(rows, "aiohttp server + client", "1 hop")
    if ours_1hop is not None and nginx is not None:
        pairs.append(("1 hop: graph-router / nginx proxy_pass", ours_1hop, nginx))
    if ours_1hop is not None and aio is not None:
        pairs.append(("1 hop: aiohttp server + client / graph-router", aio, ours_1hop))
    if pairs:
        out += ["CPU per request, medians of the rounds above and their ratio "
                f"(targets against KServe's router: <= {TARGET_C64}x at c64, <= {TARGET_C1}x at c1):", "",
                render_ratios(pairs, (64, 1))]
    return "\n".join(out)


def tracing_section(run: Any) -> str:
    rows: list[Series] = run.tables.get("tracing", [])
    if not rows:
        return ""
    out = ["## Tracing: CPU per request at c64 against metrics and tracing off", "",
           render_series(rows, (64,), rss=False),
           f"Medians over {run.rounds} interleaved round(s); targets: 10% traced <= {TARGET_TRACE_10}x, "
           f"every request traced <= {TARGET_TRACE_ALL}x.", "",
           "| pattern | off | 10% traced | every request traced | 10% / off | every / off |",
           "|---|---|---|---|---|---|"]
    titles = [router.VARIANTS[v].title for v in ("tel-off", "tel-10", "tel-on")]
    for pattern in dict.fromkeys(s.pattern for s in rows):
        found = [find(rows, "graph-router", pattern, t) for t in titles]
        cpu = [s.cpu_median(64) if s is not None else None for s in found]
        out.append(f"| {pattern} | {fmt_cpu(cpu[0])} | {fmt_cpu(cpu[1])} | {fmt_cpu(cpu[2])} "
                   f"| {ratio(cpu[1], cpu[0])} | {ratio(cpu[2], cpu[0])} |")
    return "\n".join(out) + "\n"


def payload_section(run: Any) -> str:
    tables = {k: v for k, v in run.tables.items() if k.startswith("payload ")}
    if not tables:
        return ""
    c = payload.CONNECTIONS
    out = ["## Large bodies", "",
           f"The same size in and out: the request body and every backend's answer are JSON of that size; "
           f"{c} connections. An Ensemble of 3 answers one object holding the three answers, so its output is "
           "about three times the size (\"Answer sizes\": what each router's smoke POST got back). graph-router "
           "runs with its defaults but `--max-inflight-bytes 0`: the default memory budget (32 MiB a worker) "
           "would refuse part of 8 concurrent 8 MB requests with 503, by design.", ""]
    other = run.other.name if run.other is not None else None
    summary = ["| size | graph-router 1 hop CPU/req | nginx proxy_pass | ratio (target "
               f"<= {TARGET_PAYLOAD}x at 100KB and 1MB) | {other or 'KServe router'} | ratio | graph-router RSS "
               f"peak - idle | bytes in flight ({c} x size) | ratio (target <= {TARGET_RSS}x at 8MB) |",
               "|---|---|---|---|---|---|---|---|---|"]
    for table, rows in tables.items():
        size_key = table.split(" ", 1)[1]
        out += [f"### {size_key}", "", render_series(rows, (c,)), _answers(run, rows)]
        ours, nginx = find(rows, "graph-router", "1 hop"), find(rows, "nginx proxy_pass", "1 hop")
        theirs = find(rows, other, "1 hop") if other else None
        cpu = [s.cpu_median(c) if s is not None else None for s in (ours, nginx, theirs)]
        grown = _rss_growth_kb(ours)
        flight = c * payload.SIZES[size_key] / 1024
        summary.append(f"| {size_key} | {fmt_cpu(cpu[0])} | {fmt_cpu(cpu[1])} | {ratio(cpu[0], cpu[1])} "
                       f"| {fmt_cpu(cpu[2])} | {ratio(cpu[0], cpu[2])} | {fmt_mb(grown)} | {fmt_mb(int(flight))} "
                       f"| {ratio(grown, flight) if payload.SIZES[size_key] >= 1024 * 1024 else '-'} |")
    return "\n".join([*out, "### Summary", "", *summary]) + "\n"


def _answers(run: Any, rows: Sequence[Series]) -> str:
    sizes = [f"{j.series.router} {j.series.pattern}: {max(j.answer_bytes):,} bytes"
             for j in run.jobs_of(rows) if j.answer_bytes]
    return ("Answer sizes: " + "; ".join(sizes) + "\n") if sizes else ""


def _rss_growth_kb(s: Series | None) -> int | None:
    if s is None:
        return None
    grown = [r.rss_load_kb - r.rss_idle_kb for r in s.runs if r.rss_load_kb and r.rss_idle_kb is not None]
    value = median(grown)
    return None if value is None else int(value)


def both_cores_section(run: Any) -> str:
    rows: list[Series] = run.tables.get("both-cores", [])
    if not rows:
        return ""
    rps = {s.variant: median([x.wrk.rps for x in s.loads(64)]) for s in rows}
    w1, w2 = (rps.get(router.VARIANTS[v].title + ", unpinned") for v in ("w1", "w2"))
    theirs = next((v for s in rows if s.router != "graph-router" for v in [rps.get(s.variant)]), None)
    out = ["## Both cores: wrk, the backends and the router share every core (no pinning)", "",
           render_series(rows, (64,)),
           "| graph-router 2 workers req/s | / 1 worker | / KServe's router (all cores by itself) |",
           "|---|---|---|",
           f"| {fmt_rps(w2) if w2 else '-'} | {ratio(w2, w1)} | {ratio(w2, theirs)} |", ""]
    return "\n".join(out)


def variants_section(run: Any) -> str:
    rows: list[Series] = run.tables.get("variants", [])
    if not rows:
        return ""
    return "\n".join(["## graph-router variants (one round)", "", render_series(rows, (64, 1))])


def report(run: Any, command: list[str], elapsed: float) -> str:
    s = run.small
    pin = (f"wrk (1 thread) pinned to core {s.wrk_cpu}; backends, proxies and routers to core {run.cpu} "
           "(except the both-cores rows)") if s.wrk_cpu is not None else "no core pinning"
    notes = [
        pin,
        f"rows measured in {run.rounds} interleaved round(s) (payload: {run.args.payload_rounds}); every cell is "
        "the median over the rounds and, with more than one round, its range (min-max)",
        "CPU/req: utime+stime of the measured process tree (routers with their workers; direct: the backend "
        "nginx; proxies: the proxy nginx or Python process) over the load, divided by requests served",
        "RSS: sum of VmRSS over the same tree, idle (after start) and peak under load (sampled every 0.25 s)",
        "errors: non-2xx/3xx responses plus socket errors; other CPU: the most CPU (% of one core) used outside "
        "the benchmark during a load (other processes, steal): above ~10% the row is noisy",
        f"KServe's router: the `{run.args.kserve.name}` binary, run as `ORACLE_LISTEN_ADDR=127.0.0.1:<port> "
        "router --graph-json <spec>`, stopped with SIGKILL" if run.other is not None and run.other.kill else
        f"compared router: {run.other.name}" if run.other is not None else "no router to compare with",
        f"graph-router event loop: {run.bench.event_loop}",
        *run.notes,
        f"wall time of this run: {elapsed:.0f} s",
    ]
    sections = [compare_section(run), tracing_section(run), payload_section(run), both_cores_section(run),
                variants_section(run)]
    return header("graph-router benchmark", command, router.REPO, notes) + "\n" + "\n".join(x for x in sections if x)
