"""How long `graph-router plan` takes to simulate a day of each example's traffic.

    .venv/bin/python benchmarks/plan_speed.py [--repeat 3] [--duration SECONDS] [--examples ensemble ...]

Times the whole command in-process (reading files, the simulation, the summary), best of
``--repeat`` runs, and prints one row per example: services, simulated seconds, wall seconds, and
wall seconds per simulated day.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from graph_router.cli import main as cli_main  # noqa: E402


def time_example(example: str, repeat: int, duration: int | None) -> tuple[float, int, int]:
    """(best wall seconds, simulated seconds, services) for one example."""
    args = ["plan", f"graphs/{example}/graph.yaml", "--deploy", f"graphs/{example}/deploy.yaml",
            "--traffic", f"graphs/{example}/traffic.csv", "--format", "json", "--no-progress"]
    if duration is not None:
        args += ["--duration", str(duration)]
    best = float("inf")
    out = ""
    for _ in range(repeat):
        buf = io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stdout(buf):
            code = cli_main(args)
        best = min(best, time.perf_counter() - start)
        if code != 0:
            raise SystemExit(f"{example}: plan exited {code}")
        out = buf.getvalue()
    import json

    doc = json.loads(out)
    return best, int(doc["duration_s"]), len(doc["services"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--duration", type=int, help="simulate this many seconds instead of each traffic file's day")
    p.add_argument("--examples", nargs="*", help="default: every example with a traffic.csv")
    args = p.parse_args()
    os.chdir(ROOT)
    examples = args.examples or sorted(d.name for d in (ROOT / "graphs").iterdir() if (d / "traffic.csv").exists())
    print(f"# plan speed: {platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, best of {args.repeat}")
    print(f"  {'example':<22} {'services':>8} {'simulated s':>12} {'wall s':>8} {'s per day':>10}")
    for ex in examples:
        wall, simulated, services = time_example(ex, args.repeat, args.duration)
        print(f"  {ex:<22} {services:>8} {simulated:>12} {wall:>8.3f} {wall * 86400 / simulated:>10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
