"""What a plan prints: the JSON summary (``--format json``), the text summary, and the what-if table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .plan import Plan, Setting
from .service import ServiceTrace
from .simulate import percentile

Summary = dict[str, Any]


def summarize(plan: Plan, *, graph: str, source: str) -> Summary:
    """The JSON document: ``services`` by name and ``graph``, as ``--format json`` prints it."""
    r = plan.result
    services: dict[str, Any] = {}
    for name, tr in r.services.items():
        services[name] = _service(tr, plan)
    hist = r.latency_ms
    return {
        "graph": {
            "name": graph,
            "requests": round(r.requests, 1),
            "p50_ms": percentile(hist, 50),
            "p90_ms": percentile(hist, 90),
            "p99_ms": percentile(hist, 99),
            "p999_ms": percentile(hist, 99.9),
            "max_ms": max(hist) if hist else 0.0,
            "cold_start_requests": round(r.cold_requests, 1),
            "pod_seconds": round(sum(s["pod_seconds"] for s in services.values()), 1),
        },
        "services": services,
        "duration_s": r.seconds,
        "traffic": source,
    }


def _service(tr: ServiceTrace, plan: Plan) -> dict[str, Any]:
    settings = plan.settings[tr.name]
    waits = tr.cold_wait_s
    cold_total = sum(n for n, _ in waits)
    out: dict[str, Any] = {
        "replicas": _changes(tr.pods) if tr.scaled else [],
        "cold_start_requests": round(tr.cold_requests, 1),
        "cold_start_wait_s": {
            "mean": round(sum(n * w for n, w in waits) / cold_total, 2) if cold_total else 0.0,
            "max": round(max((w for _, w in waits), default=0.0), 2),
        },
        "pod_seconds": round(tr.pod_seconds, 1),
        "requests": round(sum(tr.load), 1),
        "peak_rps": round(max(tr.load, default=0.0), 2),
        "calls_per_request": round(plan.calls.get(tr.name, 0.0), 4),
        "max_replicas": max(tr.pods, default=0),
        "panic_seconds": sum(tr.panic),
        "cold_start_s": settings.model.cold_start_s,
        "service_time_s": settings.model.service_time_s,
    }
    k = settings.kpa
    if k is None:
        out["scaled"] = False
    else:
        # What the autoscaler saw at most (its metric: requests in flight, or requests a second).
        out["peak_" + k.metric] = round(max(tr.metric, default=0.0), 2)
        out["settings"] = {
            "metric": k.metric, "target": round(k.target, 3), "min_scale": k.min_scale, "max_scale": k.max_scale,
            "initial_scale": k.initial_scale, "activation_scale": k.activation_scale,
            "container_concurrency": k.container_concurrency, "stable_window_s": k.stable_window_s,
            "panic_window_s": k.panic_window_s, "panic_threshold": k.panic_threshold,
            "scale_down_delay_s": k.scale_down_delay_s, "scale_to_zero_grace_period_s": k.grace_period_s,
            "scale_to_zero_pod_retention_period_s": k.retention_s,
        }
    return out


def _changes(pods: Sequence[int]) -> list[list[int]]:
    """``[[t_s, pods], ...]`` at every change (and at 0)."""
    return [[t, p] for t, p in enumerate(pods) if t == 0 or pods[t - 1] != p]


def ms(value: float) -> str:
    return f"{value / 1000:.1f} s" if value >= 1000 else f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def duration(seconds: float) -> str:
    h, rem = divmod(int(seconds), 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def render_text(s: Summary) -> str:
    g = s["graph"]
    share = 100.0 * g["cold_start_requests"] / g["requests"] if g["requests"] else 0.0
    lines = [
        f"plan: graph {g['name']}, {duration(s['duration_s'])} of traffic from {s['traffic']}, "
        f"{g['requests']:,.0f} requests",
        f"graph latency: p50 {ms(g['p50_ms'])}, p90 {ms(g['p90_ms'])}, p99 {ms(g['p99_ms'])}, "
        f"p99.9 {ms(g['p999_ms'])}, max {ms(g['max_ms'])}",
        f"requests that waited for a cold start: {g['cold_start_requests']:,.1f} ({share:.3f}%); "
        f"pod-hours: {g['pod_seconds'] / 3600:,.2f}",
        "",
        f"{'service':<22} {'calls/req':>9} {'pods':>7} {'pod-hours':>10} {'cold-start req':>15} "
        f"{'wait mean/max':>15}",
    ]
    for name, v in s["services"].items():
        pods = [p for _, p in v["replicas"]]
        span = f"{min(pods)}-{max(pods)}" if pods else "-"
        wait = f"{v['cold_start_wait_s']['mean']:.1f}/{v['cold_start_wait_s']['max']:.1f} s"
        lines.append(f"{name:<22} {v['calls_per_request']:>9.2f} {span:>7} {v['pod_seconds'] / 3600:>10.2f} "
                     f"{v['cold_start_requests']:>15,.1f} {wait if v['cold_start_requests'] else '-':>15}")
    return "\n".join(lines) + "\n"


def render_diff(before: Summary, after: Summary, sets: Sequence[Setting]) -> str:
    """The what-if beside the baseline: cold starts, latency and pod-hours, graph and per service."""
    rows: list[tuple[str, str, str, str]] = []
    gb, ga = before["graph"], after["graph"]
    for key, label in (("p50_ms", "graph p50"), ("p99_ms", "graph p99"), ("p999_ms", "graph p99.9"),
                       ("max_ms", "graph max")):
        rows.append((label, ms(gb[key]), ms(ga[key]), _signed(ga[key] - gb[key], ms)))
    rows.append(("graph cold-start requests", f"{gb['cold_start_requests']:,.1f}", f"{ga['cold_start_requests']:,.1f}",
                 _signed(ga["cold_start_requests"] - gb["cold_start_requests"], lambda x: f"{x:,.1f}")))
    rows.append(_hours("pod-hours (all)", gb["pod_seconds"], ga["pod_seconds"]))
    for name, b in before["services"].items():
        a = after["services"][name]
        if (a["pod_seconds"], a["cold_start_requests"]) != (b["pod_seconds"], b["cold_start_requests"]):
            rows.append((f"{name} cold-start requests", f"{b['cold_start_requests']:,.1f}",
                         f"{a['cold_start_requests']:,.1f}",
                         _signed(a["cold_start_requests"] - b["cold_start_requests"], lambda x: f"{x:,.1f}")))
            rows.append(_hours(f"{name} pod-hours", b["pod_seconds"], a["pod_seconds"]))
    width = max(len(r[0]) for r in rows)
    out = ["what if: " + ", ".join(s.text for s in sets), f"{'':<{width}} {'before':>12} {'after':>12} {'change':>12}"]
    out += [f"{r[0]:<{width}} {r[1]:>12} {r[2]:>12} {r[3]:>12}" for r in rows]
    return "\n".join(out) + "\n"


def _hours(label: str, before: float, after: float) -> tuple[str, str, str, str]:
    return (label, f"{before / 3600:,.2f}", f"{after / 3600:,.2f}", _signed((after - before) / 3600,
                                                                          lambda x: f"{x:,.2f}"))


def _signed(delta: float, fmt: Any) -> str:
    if abs(delta) < 1e-9:
        return "="
    return ("+" if delta > 0 else "-") + str(fmt(abs(delta)))
