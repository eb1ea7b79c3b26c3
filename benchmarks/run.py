#!/usr/bin/env python3
"""Benchmark graph-router beside KServe's router, nginx and aiohttp, in one run.

    python benchmarks/run.py [--quick] [--sets compare tracing payload both-cores aiohttp variants]
                             [--rounds N] [--patterns ...] [--sizes 1KB 100KB 1MB 8MB] [--out benchmarks/out/]

Installs wrk and nginx with apt-get where missing, starts nginx backends and each server on
127.0.0.1, drives them with wrk, and measures rows in interleaved rounds (KServe, ours, KServe,
ours, ...): every cell is the median over the rounds with its range. Prints Markdown and writes
it to the out dir, headed by the commit, date, machine and this exact command.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, for `benchmarks.*`

from benchmarks.benchkit import payload, procs, router, wrk
from benchmarks.benchkit.bench import Backends, Bench, Job, Started
from benchmarks.benchkit.install import ensure_tools, ensure_uvloop, router_python
from benchmarks.benchkit.measure import Settings
from benchmarks.benchkit.procs import StartError, Supervisor
from benchmarks.benchkit.report import report
from benchmarks.benchkit.rounds import Series
from benchmarks.benchkit.router import ON_REQUEST, PATTERNS, VARIANTS, Pattern, Variant

HERE = Path(__file__).resolve().parent
SETS = ("compare", "aiohttp", "tracing", "payload", "both-cores", "variants")
DEFAULT_SETS = ("compare", "aiohttp", "tracing", "payload", "both-cores")
MODES = {
    # seconds per measured wrk run, warm-up seconds, rounds, payload seconds, budget (s)
    "quick": {"seconds": 2, "warmup": 1, "rounds": 1, "payload_seconds": 2, "budget": 240.0},
    "full": {"seconds": 4, "warmup": 2, "rounds": 3, "payload_seconds": 4, "budget": 1200.0},
}
MAIN_PATTERNS = ("1hop", "seq3", "ens3")  # the patterns the speed targets name
QUICK = {"patterns": ("1hop",), "sizes": ("1KB", "1MB")}
#: The variants set (graph-router's other rows): w1 on every pattern, the others on these.
EXTRA_VARIANT_PATTERNS = {"quick": ("1hop",), "full": MAIN_PATTERNS}
TRACING_VARIANTS = ("tel-off", "tel-10", "tel-on")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short runs, one round, fewer rows (under 2 minutes)")
    p.add_argument("--sets", nargs="+", choices=SETS, help=f"row sets to run (default: {' '.join(DEFAULT_SETS)})")
    p.add_argument("--rounds", type=int, help="interleaved rounds of the compare, tracing and both-cores rows "
                   "(quick 1, full 3)")
    p.add_argument("--payload-rounds", type=int, default=1, help="rounds of the payload rows (1)")
    p.add_argument("--patterns", nargs="+", choices=list(PATTERNS), help="patterns (default: 1hop seq3 ens3)")
    p.add_argument("--sizes", nargs="+", choices=list(payload.SIZES), help="payload sizes (default: all)")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS),
                   help="the variants set: variants to run (default: w1 on all patterns, the others on a few); "
                        "without --sets, runs that set alone")
    p.add_argument("--kserve", type=Path, default=router.KSERVE_ROUTER,
                   help="KServe's router binary (default: ../shared/kserve-router/router beside the checkout; "
                        "skipped with a note when absent)")
    p.add_argument("--no-kserve", action="store_true", help="leave KServe's router out")
    p.add_argument("--compare-with", metavar="CMD",
                   help="another router instead of KServe's: a command template with {graph_json} and "
                        "optionally {port}")
    p.add_argument("--compare-port", type=int, default=8080,
                   help="port the --compare-with router listens on when CMD has no {port} (8080)")
    p.add_argument("--compare-name", help="name of the --compare-with router in the table (default: its program)")
    p.add_argument("--router", metavar="CMD", help="graph-router command (default: .venv/bin/graph-router)")
    p.add_argument("--out", type=Path, default=HERE / "out", help="directory for results-<timestamp>.md")
    p.add_argument("--seconds", type=int, help="seconds per measured wrk run (quick 2, full 4)")
    p.add_argument("--no-references", action="store_true", help="skip the backend direct and nginx rows")
    p.add_argument("--keep-logs", action="store_true", help="keep the logs and configs even on success")
    p.add_argument("--no-pin", action="store_true", help="do not pin wrk and the servers to cores")
    return p.parse_args(argv)


def mode(args: argparse.Namespace) -> dict[str, float]:
    return MODES["quick" if args.quick else "full"]


def patterns(args: argparse.Namespace) -> list[Pattern]:
    keys = args.patterns or (QUICK["patterns"] if args.quick else MAIN_PATTERNS)
    return [PATTERNS[k] for k in keys]


def sizes(args: argparse.Namespace) -> list[str]:
    return list(args.sizes or (QUICK["sizes"] if args.quick else payload.SIZES))


def plan(args: argparse.Namespace) -> list[tuple[Pattern, Variant]]:
    """The variants set: which (pattern, variant) rows graph-router gets."""
    key = "quick" if args.quick else "full"
    chosen = args.patterns or list(PATTERNS)
    rows = []
    for vkey in args.variants or [v for v in VARIANTS if v not in ON_REQUEST]:
        for pkey in chosen:
            if args.variants or vkey == "w1" or pkey in EXTRA_VARIANT_PATTERNS[key]:
                rows.append((PATTERNS[pkey], VARIANTS[vkey]))
    return rows


def other_router(args: argparse.Namespace) -> router.OtherRouter | None:
    """KServe's router (by default, when its binary exists) or the --compare-with command."""
    if args.compare_with:
        command = router.CompareCommand(args.compare_with, args.compare_port)
        return router.OtherRouter(args.compare_name or command.name, command)
    if args.no_kserve or not args.kserve.is_file():
        return None
    return router.kserve_router(args.kserve)


class Run:
    """The jobs of each selected set, measured in rounds; then the report."""

    def __init__(self, args: argparse.Namespace, bench: Bench, other: router.OtherRouter | None) -> None:
        self.args, self.bench, self.other = args, bench, other
        m = mode(args)
        pin = not args.no_pin and len(os.sched_getaffinity(0)) >= 2
        self.cpu = 1 if pin else None
        self.small = Settings(seconds=args.seconds or int(m["seconds"]), warmup=int(m["warmup"]),
                              concurrencies=(64, 1), wrk_cpu=0 if pin else None,
                              script=wrk.write_script(bench.workdir, router.BODY))
        self.rounds = args.rounds or int(m["rounds"])
        # --variants alone means the variants set (as run.py's rows were chosen before the sets).
        self.sets = args.sets or (["variants"] if args.variants else list(DEFAULT_SETS))
        self.tables: dict[str, list[Series]] = {}
        self.jobs: list[Job] = []
        self.notes: list[str] = []
        if other is None:
            why = "--no-kserve" if args.no_kserve else f"no binary at {args.kserve}"
            self.notes.append(f"KServe's router: not in this run ({why})")

    def jobs_in_rounds(self, jobs: list[Job], rounds: int) -> None:
        for r in range(rounds):
            print(f"# round {r + 1} of {rounds}", flush=True)
            for job in jobs:
                self.bench.run_job(job)

    def _job(self, table: str, router_name: str, pattern: str, variant: str, start: Callable[[], Started] | None,
             settings: Settings, b: Backends, body: bytes, expect: bytes | None = None) -> Job:
        series = Series(f"{router_name}/{pattern}/{variant}", router_name, pattern, variant)
        self.tables.setdefault(table, []).append(series)
        job = Job(series, start, settings, b, body, expect)
        self.jobs.append(job)
        return job

    def jobs_of(self, rows: Sequence[Series]) -> list[Job]:
        return [j for j in self.jobs if any(j.series is s for s in rows)]

    def compare(self, b: Backends) -> None:
        jobs, body, s, cpu = [], router.BODY.encode(), self.small, self.cpu
        if not self.args.no_references:
            jobs.append(self._job("compare", "backend direct", "-", "nginx fixed response", None, s, b, body))
            jobs.append(self._job("compare", "nginx proxy_pass", "1 hop", "keepalive upstream",
                                  self.bench.nginx_proxy(b, cpu), s, b, body))
        if "aiohttp" in self.sets:
            python = router_python(self.bench.router_cmd) or sys.executable
            jobs.append(self._job("compare", "aiohttp server + client", "1 hop", "benchmarks/aiohttp_proxy.py",
                                  self.bench.aiohttp_proxy(b, python, cpu), s, b, body))
        if "compare" in self.sets:
            for p in patterns(self.args):
                if self.other is not None:
                    jobs.append(self._job("compare", self.other.name, p.title, "as shipped",
                                          self.bench.other(self.other, p, b, cpu), s, b, body))
                jobs.append(self._job("compare", "graph-router", p.title, VARIANTS["w1"].title,
                                      self.bench.graph_router(p, VARIANTS["w1"], b, cpu), s, b, body))
        self.jobs_in_rounds(jobs, self.rounds)

    def tracing(self, b: Backends) -> None:
        s = Settings(self.small.seconds, self.small.warmup, (64,), self.small.wrk_cpu, self.small.script)
        jobs = [self._job("tracing", "graph-router", p.title, VARIANTS[v].title,
                          self.bench.graph_router(p, VARIANTS[v], b, self.cpu), s, b, router.BODY.encode())
                for p in patterns(self.args) for v in TRACING_VARIANTS]
        self.jobs_in_rounds(jobs, self.rounds)

    def variants(self, b: Backends) -> None:
        jobs = [self._job("variants", "graph-router", p.title, v.title, self.bench.graph_router(p, v, b, self.cpu),
                          self.small, b, router.BODY.encode()) for p, v in plan(self.args)]
        self.jobs_in_rounds(jobs, 1)

    def both_cores(self) -> None:
        """wrk, backends and the routers unpinned, sharing every core (KServe's router uses them all)."""
        b = self.bench.small_backends("unpinned", None)
        try:
            s = Settings(self.small.seconds, self.small.warmup, (64,), None, self.small.script)
            one = PATTERNS["1hop"]
            jobs = [self._job("both-cores", "graph-router", one.title, VARIANTS[v].title + ", unpinned",
                              self.bench.graph_router(one, VARIANTS[v], b, None), s, b, router.BODY.encode())
                    for v in ("w1", "w2")]
            if self.other is not None:
                jobs.append(self._job("both-cores", self.other.name, one.title, "as shipped, unpinned",
                                      self.bench.other(self.other, one, b, None), s, b, router.BODY.encode()))
            self.jobs_in_rounds(jobs, self.rounds)
        finally:
            self.bench.stop_backends(b)

    def payload(self) -> None:
        m = mode(self.args)
        for size_key in sizes(self.args):
            size = payload.SIZES[size_key]
            try:
                b = self.bench.payload_backends(size, self.cpu)
            except (StartError, OSError) as exc:
                self.notes.append(f"payload {size_key}: backends failed: {exc}")
                continue
            try:
                self._payload_size(size_key, size, b, int(m["payload_seconds"]))
            finally:
                self.bench.stop_backends(b)

    def _payload_size(self, size_key: str, size: int, b: Backends, seconds: int) -> None:
        body = payload.request_body(size)
        scripts = self.bench.workdir / f"payload-{size}"
        scripts.mkdir(parents=True, exist_ok=True)
        script = wrk.write_script(scripts, body.decode())
        s = Settings(seconds, 1, (payload.CONNECTIONS,), self.small.wrk_cpu, script)
        table, cpu = f"payload {size_key}", self.cpu
        jobs = [self._job(table, "nginx proxy_pass", "1 hop", size_key, self.bench.nginx_proxy(b, cpu), s, b, body,
                          b.answer)]
        for p in patterns(self.args):
            expect = b.answer if p.key in ("1hop", "seq3") else None
            if self.other is not None:
                jobs.append(self._job(table, self.other.name, p.title, size_key,
                                      self.bench.other(self.other, p, b, cpu), s, b, body, expect))
            jobs.append(self._job(table, "graph-router", p.title, size_key,
                                  self.bench.graph_router(p, router.PAYLOAD, b, cpu), s, b, body, expect))
        self.jobs_in_rounds(jobs, self.args.payload_rounds)

    def all(self) -> None:
        b = self.bench.small_backends("pinned", self.cpu)
        if {"compare", "aiohttp"} & set(self.sets):
            self.compare(b)
        if "tracing" in self.sets:
            self.tracing(b)
        if "variants" in self.sets:
            self.variants(b)
        if "both-cores" in self.sets:
            self.both_cores()
        self.bench.stop_backends(b)
        if "payload" in self.sets:
            self.payload()

    @property
    def ok(self) -> bool:
        return all(not r.note.startswith("failed") for t in self.tables.values() for s in t for r in s.runs)


def write_results(out: Path, text: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"results-{datetime.now().strftime('%Y%m%d-%H%M%S')}.md"
    path.write_text(text)
    return path


def run(args: argparse.Namespace, command: list[str]) -> int:
    t0 = time.monotonic()
    tools = ensure_tools()
    sup = Supervisor()
    workdir = Path(tempfile.mkdtemp(prefix="graph-router-bench-"))
    router_cmd = shlex.split(args.router) if args.router else router.default_router_cmd()
    bench = Bench(sup, workdir, tools["nginx"], router_cmd, mode(args)["budget"], procs.free_port())
    bench.event_loop = ensure_uvloop(router_cmd, router.REPO / "pyproject.toml")
    the_run = Run(args, bench, other_router(args))
    ok = False
    try:
        the_run.all()
        ok = the_run.ok
    finally:
        sup.stop_all()
        text = report(the_run, command, time.monotonic() - t0)
        print(text, flush=True)
        print(f"# written to {write_results(args.out, text)}", flush=True)
        if ok and not args.keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"# logs kept in {workdir}", flush=True)
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = [Path(sys.executable).name, *sys.argv] if argv is None else ["run.py", *argv]
    return run(args, command)


if __name__ == "__main__":
    sys.exit(main())
