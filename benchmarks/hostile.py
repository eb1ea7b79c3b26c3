"""What one hostile client costs everyone else: fairness and memory of a real `graph-router serve`.

    python benchmarks/hostile.py                      # the figures for docs/security.md
    python benchmarks/hostile.py --samples 20 --body-mb 1 --attack-kib 256   # a quick look

Fairness: the p99 latency of normal requests on one keep-alive connection, quiet and then beside one
hostile connection of each kind (1-byte chunks, an endless trailer, an endless chunk line). Memory:
peak RSS above idle for one body sent as 1-byte chunks, and for 8 concurrent attackers each holding
part of a chunked body against a small ``--max-inflight-bytes`` (how many were refused with 503).
Run it on a quiet machine; the backend is a threaded echo server in this process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GRAPH = """
apiVersion: serving.kserve.io/v1alpha1
kind: InferenceGraph
metadata: {{name: echo}}
spec:
  nodes:
    root:
      routerType: Sequence
      steps:
        - serviceUrl: {url}/v1/models/echo:predict
"""
NORMAL = b'POST / HTTP/1.1\r\nHost: r\r\nContent-Length: 8\r\n\r\n{"x": 1}'
CHUNKED = b"POST / HTTP/1.1\r\nHost: r\r\nTransfer-Encoding: chunked\r\n\r\n"
MiB = 1 << 20


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        out = json.dumps({"received": len(body)}).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, format: str, *args: object) -> None:
        pass


class Router:
    def __init__(self, graph: Path, *flags: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        cmd = [sys.executable, "-m", "graph_router", "serve", str(graph), "--host", "127.0.0.1",
               "--port", str(self.port), "--no-access-log", *flags]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1) as s:
                s.sendall(b"GET /readyz HTTP/1.1\r\nHost: r\r\n\r\n")
                if s.recv(100).startswith(b"HTTP/1.1 200"):
                    return
            time.sleep(0.05)
        self.close()
        raise SystemExit("the router did not start")

    def rss(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def answer(sock: socket.socket) -> bytes:
    """One response's head line (the body is small and read with it)."""
    buf = b""
    while b"}" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf.split(b"\r\n", 1)[0]


def p99(port: int, samples: int) -> float:
    took = []
    with connect(port) as sock:
        for _ in range(samples):
            t0 = time.perf_counter()
            sock.sendall(NORMAL)
            answer(sock)
            took.append(time.perf_counter() - t0)
    took.sort()
    return took[min(len(took) - 1, int(len(took) * 0.99))]


#: A hostile client in its own process (so it does not compete with the measurement for the GIL):
#: sends its head, then its filler until the deadline; reconnects when refused.
ATTACKER = """
import socket, sys, time
port, head, unit, times, seconds = sys.argv[1:]
head, filler = bytes.fromhex(head), bytes.fromhex(unit) * int(times)
deadline = time.monotonic() + float(seconds)
while time.monotonic() < deadline:
    try:
        with socket.create_connection(("127.0.0.1", int(port)), timeout=2) as s:
            s.sendall(head)
            while time.monotonic() < deadline:
                s.sendall(filler)
    except OSError:
        time.sleep(0.01)
"""

#: name: (head, filler unit, repeats per send)
HOSTILE = {
    "1-byte chunks": (CHUNKED, b"1\r\nx\r\n", 10000),
    "endless trailer": (CHUNKED + b"1\r\nx\r\n0\r\nX: ", b"a", 65536),
    "endless chunk line": (CHUNKED + b"1;e=", b"v", 65536),
}


@contextlib.contextmanager
def beside(kind: tuple[bytes, bytes, int], port: int, seconds: float = 30.0) -> Iterator[None]:
    """One hostile client running (at most ``seconds``) while the block runs."""
    head, unit, times = kind
    argv = [sys.executable, "-c", ATTACKER, str(port), head.hex(), unit.hex(), str(times), str(seconds)]
    proc = subprocess.Popen(argv)
    time.sleep(0.3)
    try:
        yield
    finally:
        proc.kill()
        proc.wait(timeout=10)


def fairness(router: Router, samples: int) -> None:
    p99(router.port, samples)  # warm
    quiet = p99(router.port, samples)
    print(f"fairness: p99 of {samples} normal requests on another connection")
    print(f"  {'quiet':<28} {quiet * 1000:8.1f} ms")
    for name, kind in HOSTILE.items():
        with beside(kind, router.port):
            busy = p99(router.port, samples)
        print(f"  {'beside ' + name:<28} {busy * 1000:8.1f} ms  (+{(busy - quiet) * 1000:.1f} ms)")


def tiny_chunks(router: Router, body: int) -> None:
    idle, cpu0, peak = router.rss(), router.cpu(), [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.005):
            peak[0] = max(peak[0], router.rss())

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    with connect(router.port) as sock:
        sock.sendall(CHUNKED + b"1\r\nx\r\n" * body + b"0\r\n\r\n")
        status = answer(sock)
    stop.set()
    t.join()
    time.sleep(1.0)
    print(f"memory: {body / 1e6:g} MB in 1-byte chunks ({status.decode()}): idle {idle / MiB:.1f} MiB, "
          f"peak +{(peak[0] - idle) / MiB:.1f} MiB, after +{(router.rss() - idle) / MiB:.1f} MiB, "
          f"router CPU {router.cpu() - cpu0:.2f} s")


def attackers(graph: Path, count: int, each: int, budget: int) -> None:
    router = Router(graph, "--max-inflight-bytes", str(budget))
    try:
        idle, socks, refused = router.rss(), [], 0
        for _ in range(count):
            sock = connect(router.port)
            sock.sendall(CHUNKED + b"%x\r\n" % each + b"x" * each)
            socks.append(sock)
        time.sleep(0.5)
        peak = router.rss()
        with connect(router.port) as sock:
            sock.sendall(NORMAL)
            normal = answer(sock).decode()
        for sock in socks:
            sock.settimeout(0.5)
            with contextlib.suppress(OSError):
                refused += b" 503 " in sock.recv(200)
            sock.close()
        print(f"budget: {count} attackers x {each / MiB:g} MiB against {budget / MiB:g} MiB: {refused} refused "
              f"with 503, RSS +{(peak - idle) / MiB:.1f} MiB; a new request meanwhile: {normal}")
    finally:
        router.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--samples", type=int, default=200, help="normal requests per p99 (default 200)")
    p.add_argument("--body-mb", type=float, default=10.0, help="body sent as 1-byte chunks, in MB (default 10)")
    p.add_argument("--attackers", type=int, default=8)
    p.add_argument("--attack-kib", type=int, default=1024, help="bytes each attacker holds, in KiB (default 1024)")
    p.add_argument("--budget-mib", type=float, default=4.0, help="--max-inflight-bytes for the attackers (MiB)")
    args = p.parse_args()
    backend = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    backend.daemon_threads = True
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        graph = Path(tmp) / "graph.yaml"
        graph.write_text(GRAPH.format(url=f"http://127.0.0.1:{backend.server_address[1]}"))
        router = Router(graph)
        try:
            fairness(router, args.samples)
            tiny_chunks(router, int(args.body_mb * 1e6))
        finally:
            router.close()
        attackers(graph, args.attackers, args.attack_kib * 1024, int(args.budget_mib * MiB))
    backend.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
