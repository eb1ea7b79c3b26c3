#!/usr/bin/env python3
"""Where a small request's CPU goes in graph-router: py-spy samples under wrk load, per part of a hop.

    python benchmarks/profile_router.py [--pattern 1hop] [--concurrency 64] [--seconds 8] [--rate 250]

Starts the nginx backends and ``graph-router serve`` (defaults; the router alone on core 1, wrk and
the backends on core 0), drives it
with wrk, records it with ``py-spy record --format raw`` (installed with pip when missing), and
prints each part's share of the samples and, from the CPU per request measured over the same
load, its microseconds per request. A sample counts for the deepest graph-router frame on its
stack: the kernel work of a ``send`` is the write's, of a ``recv`` the parser's caller's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.benchkit import nginx, payload, procs, router, wrk
from benchmarks.benchkit.install import ensure_tools, ensure_uvloop, router_python
from benchmarks.benchkit.measure import Settings, Target, measure_load, run_wrk

LOOP = "event loop (uvloop: epoll, recv, callbacks; asyncio)"
#: graph-router files that only start the loop: time under them (and no deeper frame of ours) is the loop's.
_LOOP_FILES = ("graph_router/process.py", "graph_router/cli.py", "graph_router/__main__.py")
PARTS: tuple[tuple[str, str, frozenset[str] | None], ...] = (
    # (part, file suffix, functions: None = every function of the file)
    ("server: read + parse", "http/server_protocol.py", frozenset({
        "data_received", "on_message_begin", "on_url", "on_header", "on_headers_complete", "on_body",
        "on_message_complete", "_start", "eof_received", "connection_made", "connection_lost"})),
    ("server: write", "http/server_protocol.py", None),
    ("server: write", "http/wire.py", None),
    ("client (pool, request, response)", "http/client_protocol.py", None),
    ("client (pool, request, response)", "http/client.py", None),
    ("client (pool, request, response)", "http/url.py", None),
    ("client (pool, request, response)", "transport.py", None),
    ("telemetry and access log", "/telemetry/", None),
    ("telemetry and access log", "instrument.py", None),
    ("telemetry and access log", "accesslog.py", None),
    ("route: app, engine, headers", "graph_router/", None),
)


def part_of(frame: str) -> str | None:
    """The part a py-spy frame (``function (path:line)``) belongs to, or None outside graph-router."""
    func, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    if "graph_router/" not in path or path.endswith(_LOOP_FILES):
        return None
    for part, suffix, funcs in PARTS:
        if suffix in path and (funcs is None or func.strip() in funcs):
            return part
    return None


def summarise(raw: str) -> Counter[str]:
    """Samples per part from py-spy's raw (collapsed) output: ``frame;frame;...;leaf count`` lines."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        part = next((p for f in reversed(stack.split(";")) if (p := part_of(f)) is not None), LOOP)
        counts[part] += int(n)
    return counts


def top_lines(raw: str, n: int = 12) -> list[tuple[str, int]]:
    """The source lines of ours where most samples end (the deepest graph-router frame of each)."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, k = line.rpartition(" ")
        if not stack or not k.isdigit():
            continue
        ours = next((f for f in reversed(stack.split(";")) if part_of(f) is not None), None)
        if ours is not None:
            func, _, where = ours.partition(" (")
            counts[f"{func} ({where.split('graph_router/')[-1].rstrip(')')})"] += int(k)
    return counts.most_common(n)


def render(counts: Counter[str], cpu_us: float | None) -> str:
    total = sum(counts.values()) or 1
    lines = ["| part | samples | share | us/request |", "|---|---|---|---|"]
    for part, n in counts.most_common():
        us = "-" if cpu_us is None else f"{cpu_us * n / total:.1f}"
        lines.append(f"| {part} | {n} | {100 * n / total:.1f}% | {us} |")
    lines.append(f"| total | {total} | 100% | {'-' if cpu_us is None else f'{cpu_us:.1f}'} |")
    return "\n".join(lines) + "\n"


def ensure_py_spy(python: str) -> str:
    spy = Path(python).parent / "py-spy"
    if not spy.exists():
        print(f"# installing py-spy into {python} with pip", flush=True)
        subprocess.run([python, "-m", "pip", "install", "-q", "py-spy"], check=True, timeout=600)
    return str(spy)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pattern", choices=list(router.PATTERNS), default="1hop")
    p.add_argument("--variant", choices=list(router.VARIANTS), default="w1")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--seconds", type=int, default=8)
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--size", choices=list(payload.SIZES), help="a payload row's body instead of the small one "
                   "(backends answer the same size)")
    p.add_argument("--native", action="store_true", help="sample C frames too (uvloop, syscalls); slower")
    p.add_argument("--keep", type=Path, help="copy py-spy's raw output here")
    args = p.parse_args(argv)
    tools = ensure_tools()
    router_cmd = router.default_router_cmd()
    print(f"# event loop: {ensure_uvloop(router_cmd, router.REPO / 'pyproject.toml')}", flush=True)
    spy = ensure_py_spy(router_python(router_cmd) or sys.executable)
    pin = len(os.sched_getaffinity(0)) >= 2
    cpu, wrk_cpu = (1, 0) if pin else (None, None)
    sup = procs.Supervisor()
    work = Path(tempfile.mkdtemp(prefix="graph-router-profile-"))
    try:
        ports = [procs.free_port() for _ in router.SERVICES]
        # The backends run beside wrk, not on the router's core: py-spy counts a thread that is runnable
        # but preempted as busy, so a backend woken on the router's core would inflate the send that woke it.
        body = router.BODY.encode()
        if args.size is None:
            backends = nginx.start_backends(sup, tools["nginx"], work / "backends", ports, wrk_cpu, body)
        else:
            body, root = payload.request_body(payload.SIZES[args.size]), work / "html"
            root.mkdir()
            (root / "answer.json").write_bytes(payload.response_body(payload.SIZES[args.size]))
            config = payload.backend_config(work / "backends", root, [(port, "answer.json") for port in ports])
            backends = nginx.start(sup, tools["nginx"], work / "backends", config, ports[0], wrk_cpu)
        services = {n: router.service_url(n, port) for n, port in zip(router.SERVICES, ports, strict=True)}
        port, variant = procs.free_port(), router.VARIANTS[args.variant]
        argv_ = router.serve_argv(router_cmd, router.PATTERNS[args.pattern].graph, port, services, variant)
        proc = sup.start(procs.pinned(argv_, cpu), work / "router.log", router.router_env(variant, 1),
                         discard_stdout=True)
        procs.wait_http_ready(proc, port, router.READY_PATH, work / "router.log", timeout=30)
        settings = Settings(args.seconds, 0, (args.concurrency,), wrk_cpu, wrk.write_script(work, body.decode()))
        target = Target(port, router.GRAPH_PATH, proc.pid, (backends.pid,))
        run_wrk(wrk.command(target.url, settings.script, args.concurrency, 2, wrk_cpu), 2, None)  # warm-up
        out = work / "profile.txt"
        record = [spy, "record", "--format", "raw", "-r", str(args.rate), "-d", str(args.seconds - 1),
                  "-p", str(proc.pid), "-o", str(out), *(["--native"] if args.native else [])]
        spy_thread = threading.Thread(target=subprocess.run, args=(record,),
                                      kwargs={"capture_output": True, "timeout": args.seconds + 60})
        spy_thread.start()
        load, _ = measure_load(target, settings, args.concurrency)
        spy_thread.join(args.seconds + 90)
        raw = out.read_text() if out.exists() else ""
        if args.keep is not None:
            args.keep.write_text(raw)
        counts = summarise(raw)
        print(f"## {router.PATTERNS[args.pattern].title}, {variant.title}, c{args.concurrency}: "
              f"{load.wrk.rps:,.0f} req/s, CPU/req {load.cpu_us or 0:.1f} us (py-spy samples this CPU; "
              "profiling slows the router, so read the shares, not the absolute figures)\n")
        print(render(counts, load.cpu_us))
        total = sum(counts.values()) or 1
        print("Where samples end, by line of graph-router (its deepest frame on the stack):\n")
        for where, k in top_lines(raw):
            print(f"- {100 * k / total:4.1f}% {where}")
    finally:
        sup.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
