#!/usr/bin/env python3
"""Soak graph-router: long c64 then c512 load through a Sequence and an Ensemble.

    python benchmarks/soak.py [--quick] [--c64-seconds 600] [--c512-seconds 120] [--out benchmarks/out/]

wrk runs in slices (10 s by default); after each slice the router tree's open fds and RSS are
sampled. Prints every sample, then start/end and growth per phase, and writes a Markdown section.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, for `benchmarks.*`

from benchmarks.benchkit import nginx, procs, procstat, router, wrk
from benchmarks.benchkit.install import ensure_tools, ensure_uvloop
from benchmarks.benchkit.measure import OutsideMeter, run_wrk
from benchmarks.benchkit.procs import StartError, Supervisor
from benchmarks.benchkit.router import PATTERNS, Pattern, Variant
from benchmarks.benchkit.soakreport import (
    Sample,
    render_samples,
    render_summary,
    sample_line,
    summarise,
)
from benchmarks.benchkit.table import fmt_mb, header

HERE = Path(__file__).resolve().parent
SOAK_PATTERNS = {router.SOAK.key: router.SOAK, "seq3": PATTERNS["seq3"], "ens3": PATTERNS["ens3"]}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="60 s at c64 and 20 s at c512")
    p.add_argument("--c64-seconds", type=int, help="seconds at 64 connections (600; quick 60)")
    p.add_argument("--c512-seconds", type=int, help="seconds at 512 connections (120; quick 20)")
    p.add_argument("--slice", type=int, default=10, help="seconds per wrk run / sample (10)")
    p.add_argument(
        "--patterns",
        nargs="+",
        choices=list(SOAK_PATTERNS),
        default=[router.SOAK.key],
        help="graphs to soak, one after the other (default: soak = a Sequence feeding an Ensemble of 3)",
    )
    p.add_argument("--workers", type=int, default=1, help="router workers (1)")
    p.add_argument("--tracing", action="store_true",
                   help="trace every request, exporting OTLP to a local sink (default: metrics only)")
    p.add_argument("--router", metavar="CMD", help="graph-router command (default: .venv/bin/graph-router)")
    p.add_argument("--out", type=Path, default=HERE / "out", help="directory for soak-<timestamp>.md")
    p.add_argument("--no-pin", action="store_true", help="do not pin wrk and the servers to cores")
    return p.parse_args(argv)


class Soak:
    def __init__(self, args: argparse.Namespace, sup: Supervisor, workdir: Path) -> None:
        pin = not args.no_pin and len(os.sched_getaffinity(0)) >= 2
        self.args, self.sup, self.workdir = args, sup, workdir
        self.wrk_cpu: int | None = 0 if pin else None
        self.server_cpu: int | None = 1 if pin else None
        self.script = wrk.write_script(workdir, router.BODY)
        self.ports = [procs.free_port() for _ in router.SERVICES]
        self.sink_port = procs.free_port()  # the OTLP sink (an nginx port answering 200) for --tracing
        self.services = {n: router.service_url(n, p) for n, p in zip(router.SERVICES, self.ports, strict=True)}
        self.router_cmd = shlex.split(args.router) if args.router else router.default_router_cmd()
        c64 = args.c64_seconds if args.c64_seconds is not None else (60 if args.quick else 600)
        c512 = args.c512_seconds if args.c512_seconds is not None else (20 if args.quick else 120)
        self.phases = [(64, c64), (512, c512)]
        self.backend_pid = 0
        self.event_loop = "not checked"  # what graph-router serve runs on (ensure_uvloop)

    def one(self, pattern: Pattern) -> str:
        """Soak one graph; return its Markdown section."""
        port = procs.free_port()
        variant = Variant(f"w{self.args.workers}", self.args.workers, "on" if self.args.tracing else "default")
        argv = router.serve_argv(self.router_cmd, pattern.graph, port, self.services, variant)
        log = self.workdir / f"soak-{pattern.key}.log"
        env = router.router_env(variant, self.sink_port)
        # stdout is the access log: one line per request would fill the disk over a soak.
        proc = self.sup.start(procs.pinned(argv, self.server_cpu), log, env, discard_stdout=True)
        try:
            procs.wait_http_ready(proc, port, router.READY_PATH, log, timeout=30.0)
            status, answer = procs.post_once(port, router.GRAPH_PATH, router.BODY.encode())
            if status != 200:
                raise StartError(f"smoke POST answered {status}: {answer[:160]!r}")
            idle = (procstat.tree_fds(proc.pid), procstat.tree_rss_kb(proc.pid))
            print(f"# {pattern.title}: idle fds {idle[0]}, RSS {fmt_mb(idle[1])}", flush=True)
            samples, died = self.drive(proc.pid, port)
            time.sleep(2)  # let connections from the last slice close before the after-load sample
            after = (procstat.tree_fds(proc.pid), procstat.tree_rss_kb(proc.pid))
        finally:
            self.sup.stop(proc)
        return section(pattern, argv, samples, idle, after, died)

    def drive(self, pid: int, port: int) -> tuple[list[Sample], str]:
        """Run every phase in slices; stop early if the router dies."""
        samples: list[Sample] = []
        url = f"http://{procs.HOST}:{port}{router.GRAPH_PATH}"
        for connections, seconds in self.phases:
            phase, started = f"c{connections}", time.monotonic()
            for _ in range(math.ceil(seconds / self.args.slice)):
                argv = wrk.command(url, self.script, connections, self.args.slice, self.wrk_cpu)
                meter = OutsideMeter((pid, self.backend_pid))
                out, peaks = run_wrk(argv, self.args.slice, pid, count_fds=True)
                outside, _ = meter.stop()
                if not procstat.tree_pids(pid):
                    return samples, f"router exited during {phase}"
                r = wrk.parse_output(out)
                fds, rss = procstat.tree_fds(pid), procstat.tree_rss_kb(pid)
                elapsed = time.monotonic() - started
                sample = Sample(
                    phase,
                    elapsed,
                    r.requests,
                    r.rps,
                    r.p99_us,
                    r.status_errors,
                    r.socket_errors,
                    fds,
                    rss,
                    outside,
                    r.socket_detail,
                    peaks.fds,
                )
                samples.append(sample)
                print(sample_line(sample), flush=True)
        return samples, ""


def section(
    pattern: Pattern,
    argv: list[str],
    samples: list[Sample],
    idle: tuple[int, int],
    after: tuple[int, int],
    died: str,
) -> str:
    lines = [
        f"### {pattern.title} (`{pattern.graph.name}`)",
        "",
        f"- router: `{shlex.join(argv)}`",
        f"- idle before load: {idle[0]} open fds, RSS {fmt_mb(idle[1])}; "
        f"2 s after load: {after[0]} open fds, RSS {fmt_mb(after[1])}",
    ]
    lines += [f"- **{died}**"] if died else []
    summaries = summarise(samples)
    lines += [
        "",
        render_summary(summaries),
        "<details><summary>every sample</summary>",
        "",
        render_samples(samples),
        "</details>",
        "",
    ]
    return "\n".join(lines)


def write_report(args: argparse.Namespace, soak: Soak, command: list[str], sections: list[str]) -> None:
    """Print the Markdown report and write it to ``soak-<timestamp>.md`` in the out dir."""
    notes = [
        f"phases: {', '.join(f'{s} s at c{c}' for c, s in soak.phases)}, wrk in {args.slice} s slices "
        f"(1 thread{'' if soak.wrk_cpu is None else f', core {soak.wrk_cpu}'}); router and backends "
        f"{'unpinned' if soak.server_cpu is None else f'on core {soak.server_cpu}'}",
        "errors: status errors (responses >= 400) and socket errors (connect, read, write, timeout; "
        "wrk's timeout is 5 s); no faults injected",
        "open fds and RSS: summed over the router's process tree, sampled as each slice ends (fds peak: "
        "the most seen during the slice); start = after the first slice of a phase (warm), end = after "
        "its last slice",
        "other CPU: CPU (% of one core) used outside the benchmark during a slice (other processes, steal); "
        "above ~10% the figures are noisy",
        f"router event loop: {soak.event_loop}",
    ]
    text = header("graph-router soak", command, router.REPO, notes) + "\n" + "\n".join(sections)
    print(text, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"soak-{datetime.now().strftime('%Y%m%d-%H%M%S')}.md"
    path.write_text(text)
    print(f"# written to {path}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = [Path(sys.executable).name, *sys.argv] if argv is None else ["soak.py", *argv]
    tools = ensure_tools()
    sup = Supervisor()
    workdir = Path(tempfile.mkdtemp(prefix="graph-router-soak-"))
    soak = Soak(args, sup, workdir)
    soak.event_loop = ensure_uvloop(soak.router_cmd, router.REPO / "pyproject.toml")
    sections: list[str] = []
    ok = False
    try:
        backend = nginx.start_backends(
            sup, tools["nginx"], workdir / "backends", [*soak.ports, soak.sink_port], soak.server_cpu,
            router.BODY.encode()
        )
        soak.backend_pid = backend.pid
        for key in args.patterns:
            sections.append(soak.one(SOAK_PATTERNS[key]))
            if not procstat.tree_pids(backend.pid):
                raise StartError("the nginx backends exited")
        ok = True
    except (StartError, wrk.WrkOutputError, OSError) as exc:
        sections.append(f"**soak failed:** {' '.join(str(exc).split())[:400]}\n")
        print(f"# FAILED: {exc}", flush=True)
    finally:
        sup.stop_all()
        write_report(args, soak, command, sections)
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"# logs kept in {workdir}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
