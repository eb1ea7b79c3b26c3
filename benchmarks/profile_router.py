#!/usr/bin/env python3
"""Where a small request's CPU goes in graph-router: py-spy samples under wrk load, per part of a hop.

    python benchmarks/profile_router.py [--pattern 1hop] [--concurrency 64] [--seconds 8] [--rate 250]

Starts the nginx backends and ``graph-router serve`` (defaults; the router alone on core 1, wrk and
the backends on core 0), drives it with wrk, records it with ``py-spy record --format raw``
(installed with pip when missing), and prints each part's share of the samples and, from the CPU
per request measured without the profiler over the same load, its microseconds per request. A
sample counts for the deepest graph-router frame on its stack: the kernel work of a ``send`` is the
write's, of a ``recv`` the parser's caller's. nginx ``proxy_pass`` to the same backend is measured
first on the same load and core: the floor of a hop.
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
    ("server: read + parse", "http/server_reader.py", None),
    ("server: read + parse", "http/server_guard.py", None),
    ("server: write", "http/server_protocol.py", None),
    ("server: write", "http/wire.py", None),
    ("client (pool, request, response)", "http/client_protocol.py", None),
    ("client (pool, request, response)", "http/client.py", None),
    ("client (pool, request, response)", "http/url.py", None),
    ("client (pool, request, response)", "transport.py", None),
    ("telemetry and access log", "/telemetry/", None),
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


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
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
    return p.parse_args(argv)


def start_backends(sup: procs.Supervisor, nginx_bin: str, work: Path, size: str | None,
                   cpu: int | None) -> tuple[subprocess.Popen[bytes], list[int], bytes]:
    """The three model backends (small fixed answer, or a payload file); returns them, their ports, the body."""
    ports = [procs.free_port() for _ in router.SERVICES]
    if size is None:
        body = router.BODY.encode()
        return nginx.start_backends(sup, nginx_bin, work / "backends", ports, cpu, body), ports, body
    root = work / "html"
    root.mkdir()
    (root / "answer.json").write_bytes(payload.response_body(payload.SIZES[size]))
    config = payload.backend_config(work / "backends", root, [(port, "answer.json") for port in ports])
    proc = nginx.start(sup, nginx_bin, work / "backends", config, ports[0], cpu)
    return proc, ports, payload.request_body(payload.SIZES[size])


def floor_cpu_us(sup: procs.Supervisor, nginx_bin: str, work: Path, upstream: int, settings: Settings,
                 others: tuple[int, ...], cpu: int | None) -> float | None:
    """nginx proxy_pass's CPU per request on the same load, on the router's core: the floor of a hop."""
    port = procs.free_port()
    config = nginx.proxy_config(work / "proxy", port, upstream)
    proxy = nginx.start(sup, nginx_bin, work / "proxy", config, port, cpu)
    try:
        target = Target(port, "/v1/models/model-a:predict", proxy.pid, others)
        run_wrk(wrk.command(target.url, settings.script, settings.concurrencies[0], 2, settings.wrk_cpu), 2, None)
        return measure_load(target, settings, settings.concurrencies[0])[0].cpu_us
    finally:
        sup.stop(proxy)


def record(spy: str, pid: int, args: argparse.Namespace, out: Path) -> threading.Thread:
    argv = [spy, "record", "--format", "raw", "-r", str(args.rate), "-d", str(args.seconds - 1),
            "-p", str(pid), "-o", str(out), *(["--native"] if args.native else [])]
    thread = threading.Thread(target=subprocess.run, args=(argv,),
                              kwargs={"capture_output": True, "timeout": args.seconds + 60})
    thread.start()
    return thread


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    tools = ensure_tools()
    router_cmd = router.default_router_cmd()
    print(f"# event loop: {ensure_uvloop(router_cmd, router.REPO / 'pyproject.toml')}", flush=True)
    spy = ensure_py_spy(router_python(router_cmd) or sys.executable)
    pin = len(os.sched_getaffinity(0)) >= 2
    cpu, wrk_cpu = (1, 0) if pin else (None, None)
    sup = procs.Supervisor()
    work = Path(tempfile.mkdtemp(prefix="graph-router-profile-"))
    try:
        # The backends run beside wrk, not on the router's core: py-spy counts a thread that is runnable
        # but preempted as busy, so a backend woken on the router's core would inflate the send that woke it.
        backends, ports, body = start_backends(sup, tools["nginx"], work, args.size, wrk_cpu)
        settings = Settings(args.seconds, 0, (args.concurrency,), wrk_cpu, wrk.write_script(work, body.decode()))
        floor = floor_cpu_us(sup, tools["nginx"], work, ports[0], settings, (backends.pid,), cpu)
        services = {n: router.service_url(n, port) for n, port in zip(router.SERVICES, ports, strict=True)}
        port, variant = procs.free_port(), router.VARIANTS[args.variant]
        argv_ = router.serve_argv(router_cmd, router.PATTERNS[args.pattern].graph, port, services, variant)
        proc = sup.start(procs.pinned(argv_, cpu), work / "router.log", router.router_env(variant, 1),
                         discard_stdout=True)
        procs.wait_http_ready(proc, port, router.READY_PATH, work / "router.log", timeout=30)
        target = Target(port, router.GRAPH_PATH, proc.pid, (backends.pid,))
        run_wrk(wrk.command(target.url, settings.script, args.concurrency, 2, wrk_cpu), 2, None)  # warm-up
        plain = measure_load(target, settings, args.concurrency)[0]
        out = work / "profile.txt"
        spy_thread = record(spy, proc.pid, args, out)
        profiled = measure_load(target, settings, args.concurrency)[0]
        spy_thread.join(args.seconds + 90)
        raw = out.read_text() if out.exists() else ""
        if args.keep is not None:
            args.keep.write_text(raw)
        report(args, variant, raw, plain.cpu_us, profiled.cpu_us, floor, plain.wrk.rps)
    finally:
        sup.stop_all()
    return 0


def report(args: argparse.Namespace, variant: router.Variant, raw: str, cpu: float | None,
           profiled: float | None, floor: float | None, rps: float) -> None:
    counts = summarise(raw)
    print(f"## {router.PATTERNS[args.pattern].title}, {variant.title}, c{args.concurrency}"
          f"{', ' + args.size + ' in and out' if args.size else ''}\n")
    print(f"Same run, without the profiler: graph-router {cpu or 0:.1f} us of CPU a request ({rps:,.0f} req/s); "
          f"nginx proxy_pass to the same backend, on the same load and core: {floor or 0:.1f} us. "
          f"While profiled: {profiled or 0:.1f} us. The us/request column spreads the unprofiled figure "
          "by the shares.\n")
    print(render(counts, cpu))
    total = sum(counts.values()) or 1
    print("Where samples end, by line of graph-router (its deepest frame on the stack):\n")
    for where, k in top_lines(raw):
        print(f"- {100 * k / total:4.1f}% {where}")


if __name__ == "__main__":
    sys.exit(main())
