"""``graph-router quickstart [EXAMPLE]``: an example graph end to end on a laptop.

Starts the example's models (``python -m graph_router.modelhost serve``) and the router
(``python -m graph_router serve graphs/<example>/graph.yaml --service name=URL ...``) as child
processes, waits until both are ready, prints the request to try, and on Ctrl-C (SIGINT) or
SIGTERM stops both with the same signal and exits 0.

The terminal shows one format: readable text. The router's logs are text and its access log
(one JSON line per request, for log collectors) is off here; ``graph-router serve`` keeps it.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import signal
import socket
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


@dataclass(frozen=True)
class Serverless:
    """``--serverless``: the model host's Knative emulation settings."""

    scale_to_zero: float = 30.0
    cold_start: float = 2.0

    def host_args(self) -> list[str]:
        return ["--scale-to-zero", f"{self.scale_to_zero:g}", "--cold-start", f"{self.cold_start:g}"]


class QuickstartError(Exception):
    """Something the user can fix (unknown example, a port in use); printed without a traceback."""


#: Stands for the list of examples in ``quickstart --help``, found only when the help is shown.
EXAMPLES_EPILOG = "(the examples)"


class _HelpWithExamples(argparse.RawDescriptionHelpFormatter):
    def add_text(self, text: str | None) -> None:
        super().add_text(examples_help() if text == EXAMPLES_EPILOG else text)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``quickstart [EXAMPLE] [--port] [--models-port]`` to the ``graph-router`` parser."""
    q = subparsers.add_parser("quickstart", help="run an example graph and its models locally",
                              description="Run an example graph and the models it calls on this machine,\n"
                                          "print a request to try, and stop both on Ctrl-C.",
                              epilog=EXAMPLES_EPILOG, formatter_class=_HelpWithExamples)
    q.add_argument("example", nargs="?", default=DEFAULT_EXAMPLE,
                   help=f"which example (listed below; default: {DEFAULT_EXAMPLE})")
    q.add_argument("--port", type=int, default=8080, help="router port (default 8080)")
    q.add_argument("--models-port", type=int, default=9000, help="model host port (default 9000)")
    q.add_argument("--serverless", action="store_true",
                   help="models scale to zero and cold-start (Knative emulation); prints what the first request "
                        "cost with prewarming off and on")
    q.add_argument("--cold-start", type=float, default=2.0, metavar="S",
                   help="with --serverless: seconds a model at zero takes to start (default 2)")
    q.add_argument("--scale-to-zero", type=float, default=30.0, metavar="IDLE_S",
                   help="with --serverless: seconds idle before a model is at zero again (default 30)")
    q.add_argument("--grpc-port", type=int, default=8081,
                   help="gRPC examples: the router's gRPC port (default 8081) and the model host's (--models-port + 1)")
    q.set_defaults(func=lambda a: run_quickstart(
        a.example, port=a.port, models_port=a.models_port, grpc_port=a.grpc_port,
        serverless=Serverless(a.scale_to_zero, a.cold_start) if a.serverless else None))


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


def describe(example_dir: Path) -> str:
    """The first sentence of the comment that opens the example's ``graph.yaml``, shortened."""
    words: list[str] = []
    with contextlib.suppress(OSError, UnicodeDecodeError), (example_dir / "graph.yaml").open(encoding="utf-8") as f:
        for line in f:
            if not line.startswith("#"):
                break
            words += line.lstrip("#").split()
    text = " ".join(words)
    end = text.find(". ")
    text = text[:end + 1] if end >= 0 else text
    return text if len(text) <= 56 else text[:53].rsplit(" ", 1)[0] + "..."


def examples_help() -> str:
    """The examples ``quickstart`` can run, each with what it shows (for ``--help``)."""
    try:
        names = examples()
    except OSError:
        names = []
    if not names:
        return ("examples: none found. They are looked for in ./graphs/<example>/graph.yaml and in the "
                "checkout graph-router was installed from; run from a clone of the repository.")
    lines = ["examples (graphs/<example>/graph.yaml):"]
    for name in names:
        example_dir = find_example(name)
        missing = [s for s in service_names(example_dir / "graph.yaml") if s not in EXAMPLE_MODELS]
        what = f"manifests only: needs {', '.join(missing)}" if missing else describe(example_dir)
        lines.append(f"  {name:<20} {what}")
    return "\n".join(lines)


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
    """Every ``serviceName`` in the graph (a step's shadow, ``mirror``, included), in order of appearance."""
    with graph_file.open() as f:
        doc: Any = yaml.safe_load(f)
    nodes = (doc.get("spec", doc) if isinstance(doc, dict) else {}).get("nodes", {})
    names: list[str] = []
    for node in nodes.values():
        for step in node.get("steps", []):
            mirror = step.get("mirror")
            for name in (step.get("serviceName"), mirror.get("serviceName") if isinstance(mirror, dict) else None):
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


def _stop(children: list[Child], sig: int = signal.SIGTERM) -> None:
    """Stop the children with ``sig`` (the one we got: a Ctrl-C is logged by them as SIGINT), then wait."""
    for child in children:
        if child.proc.poll() is None:
            child.proc.send_signal(sig)
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


def _check_free(what: str, port: int, flag: str) -> None:
    """Refuse a port something already listens on: its answers would pass for our child's."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise QuickstartError(f"port {port} for the {what} is not free ({exc.strerror or exc}); "
                                  f"pick another with {flag}") from None


def _wait_ready(child: Child, url: str, stop: threading.Event) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while not _http_ok(url) or child.proc.poll() is not None:
        if child.proc.poll() is not None:
            raise QuickstartError(f"the {child.what} exited with code {child.proc.returncode} before it was ready")
        if stop.is_set():
            return
        if time.monotonic() > deadline:
            raise QuickstartError(f"the {child.what} was not ready at {url} after {READY_TIMEOUT:.0f} s")
        stop.wait(0.1)


@contextlib.contextmanager
def _signals(stop: threading.Event, received: list[int]) -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
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


def run_quickstart(example: str, *, port: int = 8080, models_port: int = 9000, grpc_port: int = 8081,
                   serverless: Serverless | None = None) -> int:
    """Run an example until SIGINT/SIGTERM; 0 when stopped that way, 1 if a child failed, 2 bad input."""
    if serverless is not None and not (serverless.scale_to_zero > 0 and serverless.cold_start >= 0):
        print("graph-router quickstart: --scale-to-zero needs seconds > 0 and --cold-start seconds >= 0",
              file=sys.stderr)
        return 2
    try:
        example_dir = find_example(example)
        services = service_names(example_dir / "graph.yaml")
        missing = [s for s in services if s not in EXAMPLE_MODELS]
        if missing:
            raise QuickstartError(
                f"example {example!r} needs models the host does not have: {', '.join(missing)}"
                " (it is a manifests-only example)"
            )
        for what, number, flag in (("router", port, "--port"), ("model host", models_port, "--models-port")):
            _check_free(what, number, flag)
    except (QuickstartError, OSError, yaml.YAMLError) as exc:
        print(f"graph-router quickstart: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    received: list[int] = []
    children: list[Child] = []
    with _signals(stop, received):
        try:
            grpc = Grpc(grpc_services(example_dir), grpc_port, models_port + 1)
            if serverless is not None:
                return _run_serverless(example_dir, services, port, models_port, stop, children, serverless)
            return _run(example_dir, services, port, models_port, stop, children, grpc)
        except QuickstartError as exc:
            print(f"graph-router quickstart: {exc}", file=sys.stderr)
            return 1
        finally:
            _stop(list(reversed(children)), received[0] if received else signal.SIGTERM)
            print("quickstart: stopped", flush=True)


@dataclass(frozen=True)
class Grpc:
    """A gRPC example: which services are called over gRPC, the router's and the model host's gRPC ports."""

    services: set[str]
    port: int
    models_port: int


NO_GRPC = Grpc(set(), 0, 0)


def model_host_argv(services: list[str], models_port: int, grpc: Grpc = NO_GRPC,
                    extra: list[str] | None = None) -> list[str]:
    names = ",".join(services)
    argv = [sys.executable, "-m", "graph_router.modelhost", "serve", "--port", str(models_port), "--models", names]
    if grpc.services:
        argv += ["--grpc-port", str(grpc.models_port)]
    return argv + list(extra or ())


def router_argv(graph_file: Path, services: list[str], port: int, models_port: int, grpc: Grpc = NO_GRPC,
                extra: list[str] | None = None) -> list[str]:
    """``graph-router serve`` with a ``--service`` override per model; no drain wait on stop; text logs only
    (the JSON access log is for collectors, not a terminal)."""
    argv = [sys.executable, "-m", "graph_router", "serve", str(graph_file), "--host", "127.0.0.1", *(extra or ())]
    argv += ["--port", str(port), "--drain-seconds", "0", "--log-format", "text", "--no-access-log"]
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
    # "ready" only once everything started answers, and is still ours.
    _wait_ready(host, f"http://127.0.0.1:{models_port}/v2/health/ready", stop)
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
    return _supervise(children, stop)


def _supervise(children: list[Child], stop: threading.Event) -> int:
    while not stop.wait(0.2):
        for child in children:
            if child.proc.poll() is not None:
                raise QuickstartError(f"the {child.what} exited with code {child.proc.returncode}")
    return 0


def _first_request(example_dir: Path, port: int) -> tuple[int, float]:
    """POST the example's request once; (status, seconds)."""
    body = (example_dir / "request.json").read_bytes()
    headers = {"Content-Type": "application/json", **EXAMPLE_HEADERS.get(example_dir.name, {})}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=body, headers=headers, method="POST")
    start = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=READY_TIMEOUT) as r:
            r.read()
            status = int(r.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        raise QuickstartError(f"the first request failed: {exc}") from None
    return status, time.monotonic() - start


def _run_serverless(
    example_dir: Path,
    services: list[str],
    port: int,
    models_port: int,
    stop: threading.Event,
    children: list[Child],
    sl: Serverless,
) -> int:
    """Models at zero, first request with prewarming off, then (fresh models at zero) on; then serve."""
    cost: dict[str, tuple[int, float]] = {}
    for mode in ("off", "certain"):
        host = _start("model host (serverless)", model_host_argv(services, models_port, extra=sl.host_args()))
        children.append(host)
        _wait_ready(host, f"http://127.0.0.1:{models_port}/v2/health/ready", stop)  # wakes no model
        if stop.is_set():
            return 0
        argv = router_argv(example_dir / "graph.yaml", services, port, models_port, extra=["--prewarm", mode])
        router = _start(f"router (prewarm {mode})", argv)
        children.append(router)
        _wait_ready(router, f"http://127.0.0.1:{port}/readyz", stop)
        if stop.is_set():
            return 0
        cost[mode] = _first_request(example_dir, port)
        if mode == "off":  # fresh models at zero for the second run
            _stop([router, host])
            children.clear()
    lines = [f"\nquickstart: {example_dir.name}, {len(services)} models at zero, {sl.cold_start:g} s cold start each.",
             "What the first request cost:"]
    for mode, label in (("off", "prewarming off (as KServe's router)"), ("certain", "prewarming on (certain)")):
        status, seconds = cost[mode]
        lines.append(f"  {label:<36} HTTP {status} in {seconds:.2f} s")
    curl = curl_command(example_dir, port)
    lines.append(f"\nThe router (prewarming on) is ready. Try:\n\n  {curl}\n\nModels scale to zero again after "
                 f"{sl.scale_to_zero:g} s without requests. Press Ctrl-C to stop.")
    print("\n".join(lines), flush=True)
    return _supervise(children, stop)
