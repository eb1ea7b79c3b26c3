"""One benchmark run's servers: backends, the routers under test, and measuring one start of each.

A *job* is one line of a table (a :class:`Series`): how to start its server, which load to send.
``Bench.run_job`` starts it, checks one POST, measures, stops it, and appends the run to the
series; rounds call it in turn for every job, so rows are measured alternately.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import nginx, payload, procs, router, wrk
from .measure import Settings, Target, measure
from .procs import StartError, Supervisor
from .rounds import Series
from .table import Row
from .wrk import WrkOutputError

#: What starting a server gives back: the process, its port, and whether to SIGKILL it.
Started = tuple[subprocess.Popen[bytes], int, bool]


@dataclass(slots=True)
class Backends:
    """A set of fixed-response model backends (one nginx): its process, ports and service URLs."""

    pid: int
    ports: list[int]
    services: dict[str, str]
    answer: bytes  # what model-a answers (the smoke check compares with it where it should pass through)


@dataclass(slots=True)
class Job:
    series: Series
    start: Callable[[], Started] | None  # None: measure the backend itself
    settings: Settings
    backends: Backends
    body: bytes  # the smoke POST's body (the wrk script sends the same)
    expect: bytes | None = None  # the answer the smoke POST must get, when it is known
    cpu: int | None = None
    answer_bytes: list[int] = field(default_factory=list)  # size of the smoke answer per round


class Bench:
    """Owns the supervisor, the work dir, the time budget and the ways to start each server."""

    def __init__(self, sup: Supervisor, workdir: Path, nginx_bin: str, router_cmd: list[str],
                 budget_s: float, sink_port: int) -> None:
        self.sup, self.workdir, self.nginx_bin, self.router_cmd = sup, workdir, nginx_bin, router_cmd
        self.deadline = time.monotonic() + budget_s
        self.sink_port = sink_port
        self.event_loop = "not checked"

    # --- backends -----------------------------------------------------------------------------

    def small_backends(self, name: str, cpu: int | None) -> Backends:
        """Three nginx backends answering ``{"predictions":[1,2,3]}``, plus the OTLP sink port."""
        ports = [procs.free_port() for _ in router.SERVICES]
        sink = [self.sink_port] if name == "pinned" else []
        body = router.BODY.encode()
        proc = nginx.start_backends(self.sup, self.nginx_bin, self.workdir / f"backends-{name}", [*ports, *sink],
                                    cpu, body)
        return Backends(proc.pid, ports, _services(ports), nginx.RESPONSE.encode())

    def payload_backends(self, size: int, cpu: int | None) -> Backends:
        """Three nginx backends answering the same JSON file of ``size`` bytes to every POST."""
        workdir = self.workdir / f"payload-{size}"
        root = workdir / "html"
        root.mkdir(parents=True, exist_ok=True)
        answer = payload.response_body(size)
        (root / "answer.json").write_bytes(answer)
        ports = [procs.free_port() for _ in router.SERVICES]
        config = payload.backend_config(workdir, root, [(p, "answer.json") for p in ports])
        proc = nginx.start(self.sup, self.nginx_bin, workdir, config, ports[0], cpu)
        status, got = procs.post_once(ports[0], "/", payload.request_body(size))
        if status != 200 or got != answer:
            raise StartError(f"payload backend answered {status} with {len(got)} bytes, expected {size}")
        return Backends(proc.pid, ports, _services(ports), answer)

    def stop_backends(self, backends: Backends) -> None:
        for proc in self.sup.running():
            if proc.pid == backends.pid:
                self.sup.stop(proc)

    # --- the servers under test ---------------------------------------------------------------

    def graph_router(self, pattern: router.Pattern, variant: router.Variant, b: Backends,
                     cpu: int | None) -> Callable[[], Started]:
        def start() -> Started:
            port = procs.free_port()
            argv = router.serve_argv(self.router_cmd, pattern.graph, port, b.services, variant)
            env = router.router_env(variant, self.sink_port)
            return self._start(argv, port, f"gr-{pattern.key}-{variant.key}", env, cpu), port, False
        return start

    def other(self, other: router.OtherRouter, pattern: router.Pattern, b: Backends,
              cpu: int | None) -> Callable[[], Started]:
        def start() -> Started:
            port = other.fixed_port or procs.free_port()
            if other.fixed_port and procs.port_open(port):
                raise StartError(f"port {port} is already in use; free it for {other.name}")
            argv = other.argv(port, router.graph_json(pattern.graph, b.services))
            name = "other-" + pattern.key
            return self._start(argv, port, name, other.env(port), cpu, discard=False), port, other.kill
        return start

    def nginx_proxy(self, b: Backends, cpu: int | None) -> Callable[[], Started]:
        def start() -> Started:
            port = procs.free_port()
            workdir = self.workdir / f"proxy-{port}"
            config = nginx.proxy_config(workdir, port, b.ports[0])
            return nginx.start(self.sup, self.nginx_bin, workdir, config, port, cpu), port, False
        return start

    def aiohttp_proxy(self, b: Backends, python: str, cpu: int | None) -> Callable[[], Started]:
        def start() -> Started:
            port = procs.free_port()
            script = Path(__file__).resolve().parent.parent / "aiohttp_proxy.py"
            argv = [python, str(script), "--port", str(port), "--backend", b.services["model-a"]]
            return self._start(argv, port, "aiohttp-proxy", None, cpu), port, False
        return start

    def _start(self, argv: list[str], port: int, name: str, env: dict[str, str | None] | None,
               cpu: int | None, *, discard: bool = True) -> subprocess.Popen[bytes]:
        log = self.workdir / f"{name}.log"
        (self.workdir / f"{name}.cmd").write_text(shlex.join(argv) + "\n")
        # graph-router's stdout is the access log (a line a request): discarded, or long runs fill the disk.
        proc = self.sup.start(procs.pinned(argv, cpu), log, env, discard_stdout=discard)
        try:
            procs.wait_http_ready(proc, port, router.READY_PATH, log, timeout=30.0)
        except BaseException:
            self.sup.stop(proc, kill=True)
            raise
        return proc

    # --- one measured start of a job ----------------------------------------------------------

    def row_seconds(self, s: Settings) -> float:
        return s.warmup + s.seconds * len(s.concurrencies) + 3

    def run_job(self, job: Job) -> None:
        """Start the job's server, smoke-check it, measure it, stop it; a failure becomes the run's note."""
        s = job.series
        row = Row(s.router, s.pattern, s.variant)
        s.runs.append(row)
        label = f"{s.router} / {s.pattern} / {s.variant}"
        if time.monotonic() + self.row_seconds(job.settings) > self.deadline:
            row.note = "skipped: time budget"
            print(f"# skip {label}: time budget", flush=True)
            return
        started = time.monotonic()
        try:
            self._measure(job, row)
        except (StartError, WrkOutputError, OSError, ValueError) as exc:
            row.note = f"failed: {' '.join(str(exc).split())[:240]}"
            print(f"# FAILED {label}: {exc}", flush=True)
        print(f"# done {label} in {time.monotonic() - started:.1f}s", flush=True)

    def _measure(self, job: Job, row: Row) -> None:
        path = router.GRAPH_PATH
        if job.start is None:  # the backend itself
            target = Target(job.backends.ports[0], "/v1/models/model-a:predict", job.backends.pid)
            measure(row, target, job.settings)
            return
        proc, port, kill = job.start()
        try:
            # An Ensemble of 8 MB answers takes KServe's router seconds: the smoke POST may wait for it.
            status, answer = procs.post_once(port, path, job.body, timeout=60.0)
            if status != 200:
                raise StartError(f"smoke POST answered {status}: {answer[:160]!r}")
            if job.expect is not None and answer != job.expect:
                raise StartError(f"smoke POST answered {len(answer)} bytes, not the backend's {len(job.expect)}")
            job.answer_bytes.append(len(answer))
            measure(row, Target(port, path, proc.pid, (job.backends.pid,)), job.settings)
            idle = [x.connections for x in row.loads if x.wrk.requests == 0]
            if idle:
                row.note = (f"no request completed at c{idle[0]} in {job.settings.seconds} s "
                            f"(each took longer than wrk's {wrk.TIMEOUT_S} s timeout)")
        finally:
            self.sup.stop(proc, kill=kill)


def _services(ports: list[int]) -> dict[str, str]:
    return {name: router.service_url(name, port) for name, port in zip(router.SERVICES, ports, strict=True)}

