"""``graph-router quickstart [EXAMPLE]``: an example graph end to end on a laptop.

Starts the example's models (``python -m graph_router.modelhost serve``) and the router
(``python -m graph_router serve graphs/<example>/graph.yaml --service name=URL ...``) as child
processes, waits until both are ready, prints the request to try, and on Ctrl-C (SIGINT) or
SIGTERM stops both and exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from .catalog import EXAMPLE_MODELS

DEFAULT_EXAMPLE = "sequential-pipeline"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
#: Headers the printed curl command adds for an example (the A/B test is sticky on a user id).
EXAMPLE_HEADERS = {"ab-test": {"x-user-id": "alice"}}


class QuickstartError(Exception):
    """Something the user can fix (unknown example, a port in use); printed without a traceback."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``quickstart [EXAMPLE] [--port] [--models-port]`` to the ``graph-router`` parser."""
    q = subparsers.add_parser("quickstart", help="run an example graph and its models locally")
    q.add_argument("example", nargs="?", default=DEFAULT_EXAMPLE, help=f"default: {DEFAULT_EXAMPLE}")
    q.add_argument("--port", type=int, default=8080, help="router port (default 8080)")
    q.add_argument("--models-port", type=int, default=9000, help="model host port (default 9000)")
    q.add_argument("--grpc-port", type=int, default=8081,
                   help="gRPC examples: the router's gRPC port (default 8081) and the model host's (--models-port + 1)")
    q.set_defaults(func=lambda a: run_quickstart(a.example, port=a.port, models_port=a.models_port,
                                                 grpc_port=a.grpc_port))


def graph_dirs() -> list[Path]:
    """Where examples are looked for: ./graphs, then the checkout the package was loaded from."""
    candidates = [Path.cwd() / "graphs", Path(__file__).resolve().parents[2] / "graphs"]
    seen: list[Path] = []
    for path in candidates:
        if path.is_dir() and path.resolve() not in [s.resolve() for s in seen]:
            seen.append(path)
    return seen


def examples() -> list[str]:
    names = {p.name for d in graph_dirs() for p in d.iterdir() if (p / "graph.yaml").is_file()}
    return sorted(names)


def find_example(example: str) -> Path:
    for directory in graph_dirs():
        if (directory / example / "graph.yaml").is_file():
            return directory / example
    raise QuickstartError(f"no example {example!r}; examples: {', '.join(examples()) or 'none found'}")


def grpc_services(example_dir: Path) -> set[str]:
    """Services the example's ``deploy.yaml`` declares ``protocol: grpc-v2``: the quick start calls them over gRPC."""
    deploy = example_dir / "deploy.yaml"
    if not deploy.is_file():
        return set()
    with deploy.open() as f:
        doc: Any = yaml.safe_load(f)
    services = doc.get("services") if isinstance(doc, dict) else None
    if not isinstance(services, dict):
        return set()
    return {n for n, b in services.items() if isinstance(b, dict) and b.get("protocol") == "grpc-v2"}


def service_names(graph_file: Path) -> list[str]:
    """Every ``serviceName`` in the graph, in order of appearance."""
    with graph_file.open() as f:
        doc: Any = yaml.safe_load(f)
    nodes = (doc.get("spec", doc) if isinstance(doc, dict) else {}).get("nodes", {})
    names: list[str] = []
    for node in nodes.values():
        for step in node.get("steps", []):
            name = step.get("serviceName")
            if name and name not in names:
                names.append(name)
    return names


@dataclass
class Child:
    what: str
    proc: subprocess.Popen[bytes]


def _start(what: str, argv: list[str]) -> Child:
    # A new session: the terminal's Ctrl-C reaches only us, and we stop the children in order.
    proc = subprocess.Popen(argv, start_new_session=True)
    print(f"started {what} (pid {proc.pid}): {shlex.join(argv[2:])}", flush=True)
    return Child(what, proc)


def _stop(children: list[Child]) -> None:
    for child in children:
        if child.proc.poll() is None:
            child.proc.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT
    for child in children:
        try:
            child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.proc.kill()
            child.proc.wait()


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _wait_ready(child: Child, url: str, stop: threading.Event) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while not _http_ok(url):
        if child.proc.poll() is not None:
            raise QuickstartError(f"the {child.what} exited with code {child.proc.returncode} before it was ready")
        if stop.is_set():
            return
        if time.monotonic() > deadline:
            raise QuickstartError(f"the {child.what} was not ready at {url} after {READY_TIMEOUT:.0f} s")
        stop.wait(0.1)


@contextlib.contextmanager
def _signals(stop: threading.Event) -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def curl_command(example_dir: Path, port: int) -> str:
    request = example_dir / "request.json"
    with contextlib.suppress(ValueError):
        request = request.relative_to(Path.cwd())
    parts = ["curl", "-i", f"http://127.0.0.1:{port}/", "-H", "Content-Type: application/json"]
    for name, value in EXAMPLE_HEADERS.get(example_dir.name, {}).items():
        parts += ["-H", f"{name}: {value}"]
    return shlex.join([*parts, "-d", f"@{request}"])


def run_quickstart(example: str, *, port: int = 8080, models_port: int = 9000, grpc_port: int = 8081) -> int:
    """Run an example until SIGINT/SIGTERM; 0 when stopped that way, 1 if a child failed, 2 bad input."""
    try:
        example_dir = find_example(example)
        services = service_names(example_dir / "graph.yaml")
        missing = [s for s in services if s not in EXAMPLE_MODELS]
        if missing:
            raise QuickstartError(
                f"example {example!r} needs models the host does not have: {', '.join(missing)}"
                " (it is a manifests-only example)"
            )
    except (QuickstartError, OSError, yaml.YAMLError) as exc:
        print(f"graph-router quickstart: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    children: list[Child] = []
    with _signals(stop):
        try:
            grpc = Grpc(grpc_services(example_dir), grpc_port, models_port + 1)
            return _run(example_dir, services, port, models_port, stop, children, grpc)
        except QuickstartError as exc:
            print(f"graph-router quickstart: {exc}", file=sys.stderr)
            return 1
        finally:
            _stop(list(reversed(children)))
            print("quickstart: stopped", flush=True)


@dataclass(frozen=True)
class Grpc:
    """A gRPC example: which services are called over gRPC, the router's and the model host's gRPC ports."""

    services: set[str]
    port: int
    models_port: int


NO_GRPC = Grpc(set(), 0, 0)


def model_host_argv(services: list[str], models_port: int, grpc: Grpc = NO_GRPC) -> list[str]:
    names = ",".join(services)
    argv = [sys.executable, "-m", "graph_router.modelhost", "serve", "--port", str(models_port), "--models", names]
    if grpc.services:
        argv += ["--grpc-port", str(grpc.models_port)]
    return argv


def router_argv(graph_file: Path, services: list[str], port: int, models_port: int, grpc: Grpc = NO_GRPC) -> list[str]:
    """``graph-router serve`` with a ``--service`` override per model; no drain wait on stop."""
    argv = [sys.executable, "-m", "graph_router", "serve", str(graph_file), "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--drain-seconds", "0", "--log-format", "text"]
    if grpc.services:
        argv += ["--grpc-port", str(grpc.port)]
    for name in services:
        if name in grpc.services:
            argv += ["--service", f"{name}=grpc://127.0.0.1:{grpc.models_port}/{name}"]
            continue
        v1 = EXAMPLE_MODELS[name]().supports_v1
        path = f"/v1/models/{name}:predict" if v1 else f"/v2/models/{name}/infer"
        argv += ["--service", f"{name}=http://127.0.0.1:{models_port}{path}"]
    return argv


def _run(
    example_dir: Path,
    services: list[str],
    port: int,
    models_port: int,
    stop: threading.Event,
    children: list[Child],
    grpc: Grpc = NO_GRPC,
) -> int:
    host = _start("model host", model_host_argv(services, models_port, grpc))
    children.append(host)
    _wait_ready(host, f"http://127.0.0.1:{models_port}/v2/health/ready", stop)
    if stop.is_set():
        return 0
    router = _start("router", router_argv(example_dir / "graph.yaml", services, port, models_port, grpc))
    children.append(router)
    _wait_ready(router, f"http://127.0.0.1:{port}/readyz", stop)
    if not stop.is_set():
        curl = curl_command(example_dir, port)
        also = ""
        if grpc.services:
            also = (f"\n\nThe steps {', '.join(sorted(grpc.services))} are called over gRPC; the router also serves "
                    f"gRPC (inference.GRPCInferenceService) on 127.0.0.1:{grpc.port}.")
        print(
            f"\nquickstart: {example_dir.name} is ready. Try:\n\n  {curl}{also}\n\nPress Ctrl-C to stop.",
            flush=True,
        )
    while not stop.wait(0.2):
        for child in children:
            if child.proc.poll() is not None:
                raise QuickstartError(f"the {child.what} exited with code {child.proc.returncode}")
    return 0
