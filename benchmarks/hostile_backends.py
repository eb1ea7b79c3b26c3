"""What a hostile backend answer costs a real ``graph-router serve`` process: time, CPU and memory.

One router process serves one graph per scenario; a raw-socket backend in this process answers
each graph's call with the scenario's bytes. For each scenario the table shows the status the
client got, the wall time, the router's CPU seconds and its peak RSS above idle (the kernel's
high-water mark, reset before each scenario; sampled where it cannot be reset), and its RSS after.

    .venv/bin/python benchmarks/hostile_backends.py [--size-mib 16] [--only tiny-chunks,...]
    .venv/bin/python benchmarks/hostile_backends.py --checkout /path/to/older/tree   # the same, before

Bounded: every stream stops when the router hangs up or at ``--max-mib``; every request at
``--timeout`` seconds. Only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
CHUNKED = b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ntransfer-encoding: chunked\r\n\r\n"

Answer = Callable[[asyncio.StreamWriter, argparse.Namespace], Awaitable[None]]


async def _stream(writer: asyncio.StreamWriter, prefix: bytes, piece: bytes, limit: int, suffix: bytes = b"") -> None:
    writer.write(prefix)
    sent = 0
    while sent < limit and not writer.is_closing():
        writer.write(piece)
        sent += len(piece)
        await writer.drain()
    writer.write(suffix)
    await writer.drain()


async def endless_header(w: asyncio.StreamWriter, a: argparse.Namespace) -> None:
    await _stream(w, b"HTTP/1.1 200 OK\r\nx-endless: ", b"a" * 65536, a.max_mib * MIB)


async def many_headers(w: asyncio.StreamWriter, a: argparse.Namespace) -> None:
    await _stream(w, b"HTTP/1.1 200 OK\r\n", b"a: b\r\n" * 10000, min(2_000_000 * 6, a.max_mib * MIB))


async def endless_trailer(w: asyncio.StreamWriter, a: argparse.Namespace) -> None:
    await _stream(w, CHUNKED + b"2\r\n{}\r\n0\r\nx-endless: ", b"a" * 65536, a.max_mib * MIB)


async def tiny_chunks(w: asyncio.StreamWriter, a: argparse.Namespace) -> None:
    piece = b"2\r\nxx\r\n" * 9362
    await _stream(w, CHUNKED, piece, a.size_mib * MIB // (2 * 9362) * len(piece), b"0\r\n\r\n")


SCENARIOS: dict[str, Answer | None] = {
    "endless-header": endless_header,
    "many-headers": many_headers,
    "endless-trailer": endless_trailer,
    "tiny-chunks": tiny_chunks,
    "down-backend": None,  # nothing listens: the default retry window, then 500
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proc(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _post(port: int, path: str, timeout: float) -> tuple[int, float]:
    start = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=b"{}", headers={"content-type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        return resp.status, time.monotonic() - start
    finally:
        conn.close()


def _peak_during(pid: int, work: Callable[[], tuple[int, float]]) -> tuple[tuple[int, float], int]:
    """Run ``work``; the process's peak RSS (KiB) meanwhile."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:  # no reset: sample instead
        peak = [_proc(pid, "VmRSS")]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.005):
                peak[0] = max(peak[0], _proc(pid, "VmRSS"))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            return work(), peak[0]
        finally:
            stop.set()
            sampler.join(5)
    return work(), _proc(pid, "VmHWM")


def _backend(args: argparse.Namespace) -> int:
    """Start the hostile backend in a thread of its own; its port."""
    ready: list[int] = []
    started = threading.Event()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(ln.split(b":")[1]) for ln in head.split(b"\r\n")
                           if ln.lower().startswith(b"content-length")), 0)
            await reader.readexactly(length)
            scenario = SCENARIOS[head.split(b" ")[1].decode().rsplit("/", 1)[-1]]
            if scenario is not None:
                await scenario(writer, args)
        writer.close()

    def run() -> None:
        loop = asyncio.new_event_loop()
        server = loop.run_until_complete(asyncio.start_server(answer, "127.0.0.1", 0))
        ready.append(server.sockets[0].getsockname()[1])
        started.set()
        loop.run_forever()

    threading.Thread(target=run, name="hostile-backend", daemon=True).start()
    if not started.wait(5):
        raise RuntimeError("the hostile backend did not start")
    return ready[0]


def main(args: argparse.Namespace) -> int:
    names = [n for n in (args.only.split(",") if args.only else SCENARIOS) if n]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    # The down backend's port stays bound (never listening) while the router runs: refused, and no other
    # process can be given it.
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    bport, down = _backend(args), int(held.getsockname()[1])
    gdir = Path(args.workdir or tempfile.mkdtemp(prefix="graph-router-hostile-"))
    gdir.mkdir(parents=True, exist_ok=True)
    for name in names:
        url = f"http://127.0.0.1:{down if name == 'down-backend' else bport}/v1/models/{name}"
        (gdir / f"{name}.yaml").write_text(
            f"apiVersion: serving.kserve.io/v1alpha1\nkind: InferenceGraph\nmetadata: {{name: {name}}}\n"
            f"spec:\n  nodes:\n    root:\n      routerType: Sequence\n      steps:\n        - serviceUrl: {url}\n")
    port = _free_port()
    checkout = Path(args.checkout).resolve() if args.checkout else ROOT
    proc = subprocess.Popen([sys.executable, "-m", "graph_router", "serve", str(gdir), "--host", "127.0.0.1",
                             "--port", str(port), "--no-access-log", "--log-level", "error"],
                            cwd=checkout, start_new_session=True, stderr=subprocess.DEVNULL)
    try:
        for _ in range(400):
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            time.sleep(0.05)
        time.sleep(0.3)
        print(f"router from {checkout} (pid {proc.pid}); tiny-chunks body {args.size_mib} MiB in 2-byte chunks")
        print(f"  {'scenario':<16} {'status':>6} {'seconds':>8} {'cpu s':>7} {'peak MiB':>9} {'after MiB':>9}")
        for name in names:
            idle, cpu = _proc(proc.pid, "VmRSS"), _cpu(proc.pid)
            try:
                (status, secs), peak = _peak_during(proc.pid, lambda n=name: _post(port, f"/graphs/{n}", args.timeout))
            except OSError:  # no answer (a timeout or a dropped connection)
                status, secs, peak = 0, args.timeout, _proc(proc.pid, "VmHWM")
            time.sleep(0.3)
            after = _proc(proc.pid, "VmRSS")
            print(f"  {name:<16} {status or '-':>6} {secs:>8.2f} {_cpu(proc.pid) - cpu:>7.2f} "
                  f"{(peak - idle) / 1024:>9.1f} {(after - idle) / 1024:>9.1f}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        held.close()
    return 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size-mib", type=int, default=16, help="body of the tiny-chunks answer (2-byte chunks)")
    p.add_argument("--max-mib", type=int, default=256, help="cap on any endless stream")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds before a request counts as unanswered")
    p.add_argument("--only", default="", help=f"comma-separated scenarios of: {', '.join(SCENARIOS)}")
    p.add_argument("--checkout", help="serve from this source tree instead (e.g. the previous commit's)")
    p.add_argument("--workdir", help="where the graphs are written (default: a new temporary directory)")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main(parse()))
