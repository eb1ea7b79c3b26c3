"""gRPC in, gRPC steps: the router's CPU per request and per hop, beside a direct gRPC call to the backend.

Three kinds of process on 127.0.0.1: a gRPC model (``ModelInfer`` answering a fixed FP32 tensor), the
router (``graph-router serve --grpc-port``, uvloop when installed, access log off) and this load
generator (grpc.aio, ``--concurrency`` calls in flight). Phases, in one run:

- ``direct``: the client calls the model itself (the floor: what a gRPC hop costs the backend);
- ``1 hop``: client -> router -> model;
- ``Sequence of 3``: client -> router -> model three times (``mapOutputsToInputs`` between steps).

The router's and the model's CPU come from /proc (all threads), so the figures exclude the load
generator. "router CPU / hop" is the router's CPU per request divided by the hops it made.

    .venv/bin/python benchmarks/grpc_bench.py [--requests 20000] [--concurrency 32] [--elements 16]

Bounded: each phase stops after --max-seconds (default 20) whatever its request count.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
import orjson  # noqa: E402

from benchmarks.benchkit.procstat import CLK_TCK, parse_stat  # noqa: E402
from graph_router.grpc.proto import grpc_predict_v2_pb2 as pb  # noqa: E402
from graph_router.grpc.proto import grpc_predict_v2_pb2_grpc as pb_grpc  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    st = parse_stat(Path(f"/proc/{pid}/stat").read_text())
    return (st.utime + st.stime) / CLK_TCK


# --- the model -----------------------------------------------------------------------------------


def model_main(port: int, elements: int) -> None:
    """A gRPC model answering every ModelInfer with one FP32 [1, elements] tensor."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    answer = pb.ModelInferResponse(model_name="m", id="")
    answer.outputs.add(name="y", datatype="FP32", shape=[1, elements]).contents.fp32_contents.extend(
        [0.5] * elements)
    wire = answer.SerializeToString()

    class Model(pb_grpc.GRPCInferenceServiceServicer):
        async def ModelInfer(self, request: Any, context: Any) -> Any:
            return pb.ModelInferResponse.FromString(wire)

    async def serve() -> None:
        server = grpc.aio.server()
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(Model(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    asyncio.run(serve())


# --- the load ------------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    hops: int
    requests: int
    seconds: float
    latencies: list[float]
    router_cpu: float
    model_cpu: float
    errors: int


def request(elements: int) -> Any:
    req = pb.ModelInferRequest(model_name="m", id="bench")
    req.inputs.add(name="x", datatype="FP32", shape=[1, elements]).contents.fp32_contents.extend(
        [1.0] * elements)
    return req


async def calls(stub: Any, msg: Any, requests: int, concurrency: int, max_seconds: float) -> tuple[
        float, list[float], int]:
    """``requests`` ModelInfer calls, ``concurrency`` at a time; (seconds, latencies, errors)."""
    latencies: list[float] = []
    errors = 0
    sent = 0
    start = time.perf_counter()
    stop_at = start + max_seconds

    async def worker() -> None:
        nonlocal sent, errors
        while sent < requests and time.perf_counter() < stop_at:
            sent += 1
            t0 = time.perf_counter()
            try:
                await stub.ModelInfer(msg, timeout=10)
            except grpc.aio.AioRpcError:
                errors += 1
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start, latencies, errors


async def measure(name: str, hops: int, target: str, router_pid: int | None, model_pid: int,
                  args: argparse.Namespace) -> Phase:
    """Warm up (connections, caches), then measure: CPU read from /proc around the measured calls only."""
    msg = request(args.elements)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        await stub.ModelInfer(msg, timeout=20, wait_for_ready=True)  # the server may still be starting
        await calls(stub, msg, args.warmup, args.concurrency, args.max_seconds)
        r0 = cpu_seconds(router_pid) if router_pid else 0.0
        m0 = cpu_seconds(model_pid)
        seconds, lat, errors = await calls(stub, msg, args.requests, args.concurrency, args.max_seconds)
        r1 = cpu_seconds(router_pid) if router_pid else 0.0
        m1 = cpu_seconds(model_pid)
    return Phase(name, hops, len(lat), seconds, lat, r1 - r0, m1 - m0, errors)


def run_phase(name: str, hops: int, target: str, router_pid: int | None, model_pid: int,
              args: argparse.Namespace) -> Phase:
    return asyncio.run(measure(name, hops, target, router_pid, model_pid, args))


# --- the router ----------------------------------------------------------------------------------


def graph(model_url: str, steps: int) -> str:
    chain = [{"name": "s0", "serviceUrl": model_url}]
    chain += [{"name": f"s{i}", "serviceUrl": model_url, "data": "$response", "mapOutputsToInputs": True}
              for i in range(1, steps)]
    return orjson.dumps({"nodes": {"root": {"routerType": "Sequence", "steps": chain}}}).decode()


def start_router(model_port: int, steps: int) -> tuple[subprocess.Popen[bytes], int]:
    http_port, grpc_port = free_port(), free_port()
    spec = graph(f"grpc://127.0.0.1:{model_port}/m", steps)
    cmd = [sys.executable, "-m", "graph_router", "serve", "--graph-json", spec,
           "--host", "127.0.0.1", "--port", str(http_port), "--grpc-port", str(grpc_port), "--no-access-log",
           "--drain-seconds", "0", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"router exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return proc, grpc_port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("router not ready after 20 s")


def stop_router(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- report --------------------------------------------------------------------------------------


def report(phases: list[Phase], args: argparse.Namespace) -> None:
    print(f"gRPC bench: {args.requests} requests/phase, concurrency {args.concurrency}, FP32 [1, {args.elements}] "
          f"in and out, max {args.max_seconds:g} s/phase")
    head = (f"  {'phase':<14} {'requests':>8} {'errors':>6} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'router us/req':>13} {'router us/hop':>13} {'model us/call':>13}")
    print(head)
    for p in phases:
        lat = sorted(p.latencies) or [0.0]
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        per_req = p.router_cpu / max(1, p.requests) * 1e6
        per_hop = per_req / p.hops if p.hops else 0.0
        model = p.model_cpu / max(1, p.requests * max(1, p.hops)) * 1e6
        print(f"  {p.name:<14} {p.requests:>8} {p.errors:>6} {p.requests / p.seconds:>9.0f} "
              f"{statistics.median(lat) * 1e3:>8.2f} {p99 * 1e3:>8.2f} {per_req:>13.1f} {per_hop:>13.1f} "
              f"{model:>13.1f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--warmup", type=int, default=1000, help="calls before each measured phase")
    ap.add_argument("--elements", type=int, default=16, help="FP32 elements in each request and answer")
    ap.add_argument("--max-seconds", type=float, default=20.0)
    args = ap.parse_args()
    model_port = free_port()
    ctx = mp.get_context("spawn")
    model = ctx.Process(target=model_main, args=(model_port, args.elements), daemon=True)
    model.start()
    assert model.pid is not None
    phases: list[Phase] = []
    try:
        phases.append(run_phase("direct", 0, f"127.0.0.1:{model_port}", None, model.pid, args))
        for name, steps in (("1 hop", 1), ("Sequence of 3", 3)):
            router, grpc_port = start_router(model_port, steps)
            try:
                phases.append(run_phase(name, steps, f"127.0.0.1:{grpc_port}", router.pid, model.pid, args))
            finally:
                stop_router(router)
    finally:
        model.terminate()
        model.join(5)
    report(phases, args)
    return 1 if any(p.errors for p in phases) else 0


if __name__ == "__main__":
    sys.exit(main())
