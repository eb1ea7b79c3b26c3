#!/usr/bin/env python3
"""First-request latency of graphs of scaled-to-zero models: graph-router with and without prewarming,
and KServe's router, side by side in one run.

    python benchmarks/coldstart.py [--cold-start 2] [--kserve-router ../shared/kserve-router/router]

Every row gets fresh models at zero on the model host's Knative emulation (``ModelHost(scale_to_zero=...,
cold_start=S)``: a request to a model at zero is held S seconds), a fresh router process, and one
request; the table gives its latency and how many cold starts that is. This measures latency, not
CPU: it runs on a busy machine as well as on a quiet one. KServe's router is skipped, with a note,
when its binary is absent.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from graph_router.modelhost import Model, ModelHost  # noqa: E402

DEFAULT_KSERVE = "../shared/kserve-router/router"
READY_TIMEOUT = 30.0


class Echo(Model):
    """Answers its instances back (any shape)."""

    name = "echo"

    def predict(self, instances: list[Any], parameters: dict[str, Any]) -> list[Any]:
        return instances


@dataclass(frozen=True)
class Shape:
    title: str
    models: tuple[str, ...]

    def spec(self, url: dict[str, str]) -> dict[str, Any]:
        raise NotImplementedError


NEXT = {"data": "$response", "mapPredictionsToInstances": True}


class Seq3(Shape):
    def spec(self, url: dict[str, str]) -> dict[str, Any]:
        return {"nodes": {"root": {"routerType": "Sequence", "steps": [
            {"name": m, "serviceUrl": url[m], **(NEXT if i else {})}
            for i, m in enumerate(self.models)]}}}


class SeqEnsemble(Shape):
    def spec(self, url: dict[str, str]) -> dict[str, Any]:
        return {"nodes": {
            "root": {"routerType": "Sequence", "steps": [
                {"name": "pre", "serviceUrl": url["pre"]},
                {"name": "ensemble", "nodeName": "ensemble", "data": "$request"},
                {"name": "post", "serviceUrl": url["post"], "data": "$request"}]},
            "ensemble": {"routerType": "Ensemble", "steps": [
                {"name": m, "serviceUrl": url[m]} for m in ("m1", "m2", "m3")]}}}


SHAPES = (
    Seq3("Sequence of 3", ("s1", "s2", "s3")),
    SeqEnsemble("Sequence: step, Ensemble of 3, step", ("pre", "m1", "m2", "m3", "post")),
)


@dataclass(frozen=True)
class RouterKind:
    name: str
    variant: str
    prewarm: str = ""

    def command(self, spec_json: str, port: int, kserve: str) -> tuple[list[str], dict[str, str]]:
        if self.name == "KServe router":
            return [kserve, "--graph-json", spec_json], {"ORACLE_LISTEN_ADDR": f"127.0.0.1:{port}"}
        mode = self.prewarm
        return ([sys.executable, "-m", "graph_router", "serve", "--graph-json", spec_json, "--host", "127.0.0.1",
                 "--port", str(port), "--prewarm", mode, "--drain-seconds", "0", "--no-access-log",
                 "--log-level", "warning"], {})


ROUTERS = (
    RouterKind("graph-router", "prewarm: certain (default)", "certain"),
    RouterKind("graph-router", "prewarm: off", "off"),
    RouterKind("KServe router", "upstream"),
)


@dataclass
class Result:
    shape: Shape
    router: RouterKind
    seconds: float
    status: int
    cold_starts: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_ready(session: aiohttp.ClientSession, url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"router exited with {proc.returncode}")
        try:
            async with session.get(url + "/readyz") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError(f"router not ready at {url} after {READY_TIMEOUT:.0f} s")


def start(argv: list[str], env: dict[str, str], log: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                            start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    # KServe's router waits 30 s on SIGTERM; neither router has anything left to do here
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


async def one(shape: Shape, kind: RouterKind, cold: float, kserve: str, logdir: Path) -> Result:
    """Fresh models at zero, a fresh router, one request."""
    async with ModelHost([Echo(m) for m in shape.models], scale_to_zero=3600, cold_start=cold) as host, \
            aiohttp.ClientSession() as session:
        spec_json = orjson.dumps(shape.spec(host.service_urls())).decode()
        port = free_port()
        argv, env = kind.command(spec_json, port, kserve)
        with (logdir / f"router-{port}.log").open("wb") as log:
            proc = start(argv, env, log)
        try:
            url = f"http://127.0.0.1:{port}"
            await wait_ready(session, url, proc)
            t0 = time.monotonic()
            async with session.post(url + "/", json={"instances": [[1.0, 2.0]]}) as r:
                await r.read()
                status = r.status
            took = time.monotonic() - t0
        finally:
            stop(proc)
        return Result(shape, kind, took, status, sum(lc.cold_starts for lc in host.lifecycles.values()))


def table(results: Sequence[Result], cold: float) -> str:
    lines = ["| graph | router | variant | first request | in cold starts | models started | status |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.shape.title} | {r.router.name} | {r.router.variant} | {r.seconds:.2f} s | "
                     f"{r.seconds / cold:.2f}x | {r.cold_starts} of {len(r.shape.models)} | {r.status} |")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    kserve = str((ROOT / args.kserve_router).resolve()) if not os.path.isabs(args.kserve_router) \
        else args.kserve_router
    routers = [k for k in ROUTERS if k.name != "KServe router" or (not args.no_kserve and os.access(kserve, os.X_OK))]
    notes = []
    if len(routers) < len(ROUTERS):
        notes.append(f"KServe's router skipped: {'--no-kserve' if args.no_kserve else f'no executable at {kserve}'}")
    logdir = Path(args.logs)
    results = []
    for shape in SHAPES:
        for kind in routers:
            results.append(await one(shape, kind, args.cold_start, kserve, logdir))
    print(f"Cold start {args.cold_start:g} s per model (model host emulation); one request per row, every model "
          f"at zero; 'in cold starts' = latency / cold start.\n")
    print(table(results, args.cold_start))
    for n in notes:
        print(f"\n{n}")
    print(f"\ncommand: python benchmarks/coldstart.py {shlex.join(sys.argv[1:])}".rstrip())
    return 0 if all(r.status == 200 for r in results) else 1


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cold-start", type=float, default=2.0, metavar="S", help="seconds per cold start (default 2)")
    p.add_argument("--kserve-router", default=DEFAULT_KSERVE, metavar="PATH",
                   help=f"KServe's router binary, relative to the repo root or absolute (default {DEFAULT_KSERVE})")
    p.add_argument("--no-kserve", action="store_true", help="leave KServe's router out")
    p.add_argument("--logs", default=str(ROOT / "benchmarks" / "out" / "coldstart"),
                   help="directory for the routers' logs")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.cold_start > 0:
        print("coldstart.py: --cold-start must be > 0", file=sys.stderr)
        return 2
    Path(args.logs).mkdir(parents=True, exist_ok=True)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
