"""``--plot FILE``: replicas and load over time, one panel per service (matplotlib, the ``plan`` extra)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..errors import Problem, SpecError
from .plan import Plan

EXTRA_HINT = "pip install 'graph-router[plan]'"


def check(path: str) -> None:
    """Refuse a file type matplotlib will not write, or a missing matplotlib, before simulating anything."""
    if Path(path).suffix.lower() not in (".png", ".svg", ".pdf"):
        raise SpecError(Problem("--plot", f"{path}: the file name must end in .png, .svg or .pdf"))
    try:
        import matplotlib
    except ImportError as exc:
        raise SpecError(Problem("--plot", f"drawing needs matplotlib, which is not installed: {EXTRA_HINT}")) from exc
    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # its font cache notice is not ours to log
    matplotlib.use("Agg")


def plot(path: str, plan: Plan, *, title: str, baseline: Plan | None = None) -> None:
    """Write a PNG (or SVG/PDF, by the file's extension) of ``plan``; ``baseline`` is drawn dashed."""
    check(path)
    import matplotlib.pyplot as plt

    r = plan.result
    names = [n for n, tr in r.services.items() if tr.scaled]
    hours = [t / 3600 for t in range(r.seconds)]
    fig, axes = plt.subplots(len(names) + 1, 1, sharex=True, figsize=(10, 1.8 * (len(names) + 1) + 0.8),
                             squeeze=False)
    top = axes[0][0]
    top.plot(hours, r.rps, color="tab:gray", linewidth=0.8)
    top.set_ylabel("graph rps")
    top.set_title(title, fontsize=10)
    for ax_row, name in zip(axes[1:], names, strict=True):
        _service(ax_row[0], name, plan, baseline, hours)
    axes[-1][0].set_xlabel("hours")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _service(ax: Any, name: str, plan: Plan, baseline: Plan | None, hours: list[float]) -> None:
    tr = plan.result.services[name]
    load = ax.twinx()
    load.fill_between(hours, tr.load, step="post", color="tab:blue", alpha=0.15, linewidth=0)
    load.set_ylabel("rps", color="tab:blue", fontsize=8)
    ax.step(hours, tr.pods, where="post", color="tab:red", linewidth=1.2, label="pods")
    ax.step(hours, tr.ready, where="post", color="tab:green", linewidth=0.8, label="ready")
    if baseline is not None:
        before = baseline.result.services[name]
        ax.step(hours, before.pods, where="post", color="tab:red", linewidth=0.8, linestyle="--",
                label="pods before")
    ax.set_zorder(load.get_zorder() + 1)
    ax.patch.set_visible(False)
    cold = tr.cold_requests
    ax.set_ylabel("pods", fontsize=8)
    ax.set_title(f"{name}: {tr.pod_seconds / 3600:.1f} pod-hours, {cold:,.0f} requests waited for a cold start",
                 fontsize=9, loc="left")
    ax.legend(loc="upper left", fontsize=7, frameon=False)
