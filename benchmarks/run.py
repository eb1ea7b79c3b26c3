#!/usr/bin/env python3
"""Benchmark graph-router against the backend called directly and nginx ``proxy_pass``.

    python benchmarks/run.py [--quick] [--compare-with CMD] [--patterns ...] [--out benchmarks/out/]

Installs wrk and nginx with apt-get where missing, starts fixed-response nginx backends and each
router on 127.0.0.1, drives them with wrk, prints a Markdown table and writes it to the out dir.
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

from benchmarks.benchkit import nginx, procs, router, wrk
from benchmarks.benchkit.install import ensure_tools, ensure_uvloop
from benchmarks.benchkit.measure import Settings, Target, measure
from benchmarks.benchkit.procs import StartError, Supervisor
from benchmarks.benchkit.router import ON_REQUEST, PATTERNS, VARIANTS, CompareCommand, Pattern, Variant
from benchmarks.benchkit.table import Row, header, render_table

HERE = Path(__file__).resolve().parent
QUICK = {"seconds": 3, "warmup": 1, "budget": 115.0}
FULL = {"seconds": 8, "warmup": 2, "budget": 580.0}
# Variants beyond "w1" cost time: run them on the patterns the speed targets name.
EXTRA_VARIANT_PATTERNS = {"quick": ("1hop",), "full": ("1hop", "seq3", "ens3")}
COMPARE_PATTERNS = {"quick": ("1hop", "seq3", "ens3"), "full": tuple(PATTERNS)}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short runs, fewer variants (under 2 minutes)")
    p.add_argument("--patterns", nargs="+", choices=list(PATTERNS), help="patterns to run (default: all)")
    p.add_argument(
        "--variants",
        nargs="+",
        choices=list(VARIANTS),
        help="variants to run (default: w1 on all patterns, the others on a few)",
    )
    p.add_argument(
        "--compare-with",
        metavar="CMD",
        help="another router: a command template with {graph_json} and optionally {port}",
    )
    p.add_argument(
        "--compare-port",
        type=int,
        default=8080,
        help="port the --compare-with router listens on when CMD has no {port} (8080)",
    )
    p.add_argument("--compare-name", help="name of the --compare-with router in the table (default: its program)")
    p.add_argument("--router", metavar="CMD", help="graph-router command (default: .venv/bin/graph-router)")
    p.add_argument("--out", type=Path, default=HERE / "out", help="directory for results-<timestamp>.md")
    p.add_argument("--seconds", type=int, help="seconds per measured wrk run (quick 3, full 8)")
    p.add_argument("--no-references", action="store_true", help="skip the direct and nginx rows")
    p.add_argument("--keep-logs", action="store_true", help="keep the logs and configs even on success")
    p.add_argument("--no-pin", action="store_true", help="do not pin wrk and the servers to cores")
    return p.parse_args(argv)


def plan(args: argparse.Namespace) -> list[tuple[Pattern, Variant]]:
    """Which (pattern, variant) rows graph-router gets in this run."""
    mode = "quick" if args.quick else "full"
    patterns = args.patterns or list(PATTERNS)
    rows = []
    for vkey in args.variants or [v for v in VARIANTS if v not in ON_REQUEST]:
        for pkey in patterns:
            if args.variants or vkey == "w1" or pkey in EXTRA_VARIANT_PATTERNS[mode]:
                rows.append((PATTERNS[pkey], VARIANTS[vkey]))
    return rows


class Bench:
    """One run: owns the backends, the settings and the rows measured so far."""

    def __init__(self, args: argparse.Namespace, sup: Supervisor, workdir: Path, nginx_bin: str) -> None:
        mode = QUICK if args.quick else FULL
        pin = not args.no_pin and len(os.sched_getaffinity(0)) >= 2
        self.args, self.sup, self.workdir, self.nginx_bin = args, sup, workdir, nginx_bin
        self.server_cpu = 1 if pin else None
        self.settings = Settings(
            seconds=args.seconds or int(mode["seconds"]),
            warmup=int(mode["warmup"]),
            concurrencies=(64, 1),
            wrk_cpu=0 if pin else None,
            script=wrk.write_script(workdir, router.BODY),
        )
        self.deadline = time.monotonic() + mode["budget"]
        self.rows: list[Row] = []
        self.event_loop = "not checked"  # what graph-router serve runs on (ensure_uvloop)
        self.backend_pid = 0
        self.backend_ports = [procs.free_port() for _ in router.SERVICES]
        self.sink_port = procs.free_port()  # the OTLP trace sink for the tracing-on variant
        ports = zip(router.SERVICES, self.backend_ports, strict=True)
        self.services = {name: router.service_url(name, port) for name, port in ports}

    def row_seconds(self) -> float:
        s = self.settings
        return s.warmup + s.seconds * len(s.concurrencies) + 3

    def start_backends(self) -> int:
        workdir, ports = self.workdir / "backends", [*self.backend_ports, self.sink_port]
        body = router.BODY.encode()
        proc = nginx.start_backends(self.sup, self.nginx_bin, workdir, ports, self.server_cpu, body)
        self.backend_pid = proc.pid
        return proc.pid

    def add(self, row: Row, body: Callable[[Row], object]) -> None:
        """Run ``body`` for ``row`` within the time budget; a failure becomes the row's note."""
        self.rows.append(row)
        label = f"{row.router} / {row.pattern} / {row.variant}"
        if time.monotonic() + self.row_seconds() > self.deadline:
            row.note = "skipped: time budget"
            print(f"# skip {label}: time budget", flush=True)
            return
        started = time.monotonic()
        try:
            body(row)
        except (StartError, wrk.WrkOutputError, OSError, ValueError) as exc:
            row.note = f"failed: {' '.join(str(exc).split())[:240]}"
            print(f"# FAILED {label}: {exc}", flush=True)
        print(f"# done {label} in {time.monotonic() - started:.1f}s", flush=True)

    def references(self, backend_pid: int) -> None:
        direct = Target(self.backend_ports[0], "/v1/models/model-a:predict", backend_pid)
        self.add(Row("backend direct", "-", "nginx fixed response"), lambda r: measure(r, direct, self.settings))
        self.add(Row("nginx proxy_pass", "1 hop", "keepalive upstream"), self._proxy_row)

    def _proxy_row(self, row: Row) -> None:
        port, workdir = procs.free_port(), self.workdir / "proxy"
        config = nginx.proxy_config(workdir, port, self.backend_ports[0])
        proc = nginx.start(self.sup, self.nginx_bin, workdir, config, port, self.server_cpu)
        try:
            target = Target(port, "/v1/models/model-a:predict", proc.pid, (self.backend_pid,))
            measure(row, target, self.settings)
        finally:
            self.sup.stop(proc)

    def router_row(self, pattern: Pattern, variant: Variant, router_cmd: list[str]) -> None:
        def body(row: Row) -> None:
            port = procs.free_port()
            argv = router.serve_argv(router_cmd, pattern.graph, port, self.services, variant)
            env = router.router_env(variant, self.sink_port)
            self.serve(row, argv, port, f"{pattern.key}-{variant.key}", env)

        self.add(Row("graph-router", pattern.title, variant.title), body)

    def compare_row(self, pattern: Pattern, compare: CompareCommand) -> None:
        def body(row: Row) -> None:
            port = procs.free_port() if compare.has_port else compare.fixed_port
            if not compare.has_port and procs.port_open(port):
                raise StartError(f"port {port} is already in use; free it for {compare.name}")
            argv = compare.argv(port, router.graph_json(pattern.graph, self.services))
            self.serve(row, argv, port, f"compare-{pattern.key}", None)

        self.add(Row(self.args.compare_name or compare.name, pattern.title, "--compare-with"), body)

    def serve(self, row: Row, argv: list[str], port: int, name: str, env: dict[str, str | None] | None) -> None:
        """Start a router, check one POST answers 200, measure it, stop it."""
        log = self.workdir / f"{name}.log"
        (self.workdir / f"{name}.cmd").write_text(shlex.join(argv) + "\n")
        # stdout is the access log: one line per request would fill the disk on long runs.
        proc = self.sup.start(procs.pinned(argv, self.server_cpu), log, env, discard_stdout=True)
        try:
            procs.wait_http_ready(proc, port, router.READY_PATH, log, timeout=30.0)
            status, answer = procs.post_once(port, router.GRAPH_PATH, router.BODY.encode())
            if status != 200:
                raise StartError(f"smoke POST answered {status}: {answer[:160]!r}")
            measure(row, Target(port, router.GRAPH_PATH, proc.pid, (self.backend_pid,)), self.settings)
        finally:
            self.sup.stop(proc)


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
    bench = Bench(args, sup, workdir, tools["nginx"])
    router_cmd = shlex.split(args.router) if args.router else router.default_router_cmd()
    bench.event_loop = ensure_uvloop(router_cmd, router.REPO / "pyproject.toml")
    ok = False
    try:
        backend_pid = bench.start_backends()
        if not args.no_references:
            bench.references(backend_pid)
        for pattern, variant in plan(args):
            bench.router_row(pattern, variant, router_cmd)
        if args.compare_with:
            compare = CompareCommand(args.compare_with, args.compare_port)
            mode = "quick" if args.quick else "full"
            for key in args.patterns or COMPARE_PATTERNS[mode]:
                bench.compare_row(PATTERNS[key], compare)
        ok = all(not row.note.startswith("failed") for row in bench.rows)
    finally:
        sup.stop_all()
        text = report(bench, command, time.monotonic() - t0)
        print(text, flush=True)
        print(f"# written to {write_results(args.out, text)}", flush=True)
        if ok and not args.keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"# logs kept in {workdir}", flush=True)
    return 0 if ok else 1


def report(bench: Bench, command: list[str], elapsed: float) -> str:
    s = bench.settings
    pin = f"wrk (1 thread) pinned to core {s.wrk_cpu}; backends, proxy and routers to core {bench.server_cpu}"
    notes = [
        pin if s.wrk_cpu is not None else "no core pinning",
        f"each load: {s.seconds} s at the given concurrency after a {s.warmup} s warm-up at c64; "
        f"POST {len(router.BODY)}-byte JSON body; backends answer `{nginx.RESPONSE}`",
        "CPU/req: utime+stime of the measured process tree (router rows: the router and its workers; "
        "direct: the backend nginx; proxy: the proxy nginx) over the run, divided by requests served",
        "RSS: sum of VmRSS over the same tree, idle (after start) and peak under load",
        "errors: non-2xx/3xx responses plus socket errors over both runs; other CPU: the most CPU (% of one "
        "core) used outside the benchmark (other processes, steal) during either run: above ~10% the row "
        "is noisy, rerun it",
        f"router event loop: {bench.event_loop}",
        f"wall time of this run: {elapsed:.0f} s",
    ]
    return header("graph-router benchmark", command, router.REPO, notes) + "\n" + render_table(bench.rows)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = [Path(sys.executable).name, *sys.argv] if argv is None else ["run.py", *argv]
    return run(args, command)


if __name__ == "__main__":
    sys.exit(main())
