"""The router pod's process life: start, serve, reload (SIGHUP / --watch), drain (SIGTERM), workers.

Drain follows KServe: on SIGTERM or SIGINT ``/readyz`` turns 503 at once, graph requests keep
being served for ``drain_seconds`` (so load balancers notice), then the listener closes and every
in-flight request completes before exit 0. A second signal cuts the wait short, never a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import heap
from .accesslog import AccessLog
from .api import GraphRouter
from .app import RouterApp, error_response
from .backend import DEFAULT_RETRY_WINDOW
from .errors import ListenError, Problem, SpecError
from .http.budget import ByteBudget
from .http.client import ClientLimits
from .http.messages import ServerLimits
from .http.server import start_server
from .loader import graph_files, load_graph_json, load_graphs
from .mirror import Shadows
from .prewarm import PrewarmSettings
from .spec import GraphDocument

log = logging.getLogger("graph_router.process")

#: The default ``--max-inflight-bytes`` of each worker: with the example pod's 2 workers and 256 MiB,
#: 2 x (idle RSS + 2 x 32 MiB, the bodies held and one copy each while joined) stays under the limit.
DEFAULT_INFLIGHT_BYTES = 32 * 1024 * 1024
#: With workers, a second identical signal this soon after the first is the same one delivered twice.
ECHO_SECONDS = 0.5
#: The signals serve() handles: drain (SIGTERM, SIGINT) and reload (SIGHUP).
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
#: Signals that arrived while the process was starting (before serve() handles them), in order.
_early: list[str] = []


def hold_signals() -> None:
    """Until serve() installs its handlers (and again once it removed them), a signal is noted, not fatal.

    Without this, a SIGTERM to a pod that is still starting kills it with 143 instead of a drain, a
    Ctrl-C gives a worker a KeyboardInterrupt, and a SIGHUP (whose default is to exit) kills it.
    serve() replays what was noted as soon as its handlers are in place. Main thread only.
    """
    for sig in SIGNALS:
        signal.signal(sig, _note)


def _note(signum: int, _frame: object) -> None:
    _early.append(signal.Signals(signum).name)


@dataclass
class ServeConfig:
    paths: list[str] = field(default_factory=list)
    graph_json: str | None = None
    host: str = "0.0.0.0"
    port: int = 8080
    workers: int = 1
    drain_seconds: float = 30.0
    max_body_bytes: int = 10 * 1024 * 1024
    max_response_bytes: int = 64 * 1024 * 1024
    max_header_bytes: int = 64 * 1024
    max_headers: int = 200
    max_trailer_bytes: int = 16 * 1024
    max_trailers: int = 64
    max_chunk_ext_bytes: int = 16 * 1024
    #: Bytes of bodies held in memory per worker process (0: no limit); see docs/security.md.
    max_inflight_bytes: int = DEFAULT_INFLIGHT_BYTES
    #: X-Graph-Route names backend URLs too (operators' opt-in; by default nodes, steps, services).
    route_urls: bool = False
    #: Bounds on a backend answer's head, trailers and chunk framing (``ClientLimits``' defaults).
    max_response_head_bytes: int = 1024 * 1024
    max_response_headers: int = 1000
    max_response_trailer_bytes: int = 64 * 1024
    max_response_trailers: int = 100
    default_retry_window: float = DEFAULT_RETRY_WINDOW
    auth_token: str | None = None
    watch: float = 0.0
    access_log: bool = True
    metrics: bool = True
    tracing: str = "off"
    namespace: str = "default"
    protocol: str = "v1"
    services: dict[str, str] = field(default_factory=dict)
    propagate_headers: list[str] = field(default_factory=list)
    default_retry: bool = True
    follow_redirects: bool = False
    prewarm: PrewarmSettings = field(default_factory=PrewarmSettings)
    #: Also serve the Open Inference Protocol over gRPC on this port (needs the grpc extra).
    grpc_port: int | None = None
    #: Built by the CLI from the environment; telemetry is optional.
    telemetry_factory: Callable[[], Any] | None = None


def listen_error(host: str, port: int, exc: OSError) -> ListenError:
    hint = " (another process has it: stop that one or pick another --port)" if exc.errno == errno.EADDRINUSE else ""
    why = os.strerror(exc.errno) if exc.errno else str(exc)
    return ListenError(f"cannot listen on {host}:{port}: {why}{hint}")


def load(cfg: ServeConfig) -> list[GraphDocument]:
    """The graphs named by the config. Raises SpecError listing every problem."""
    if cfg.graph_json is not None:
        return [load_graph_json(cfg.graph_json)]
    return load_graphs(cfg.paths)


def limits_for(cfg: ServeConfig, docs: list[GraphDocument]) -> ServerLimits:
    """Server timeouts from ``routerTimeouts`` (KServe defaults 60/60/180 s); the largest wins."""
    def pick(attr: str, default: float) -> float:
        vals = [getattr(d.spec.router_timeouts, attr) for d in docs if d.spec.router_timeouts]
        vals = [v for v in vals if v]
        return float(max(vals)) if vals else default

    return ServerLimits(
        max_body_bytes=cfg.max_body_bytes,
        max_header_bytes=cfg.max_header_bytes,
        max_headers=cfg.max_headers,
        max_trailer_bytes=cfg.max_trailer_bytes,
        max_trailers=cfg.max_trailers,
        max_chunk_ext_bytes=cfg.max_chunk_ext_bytes,
        read_timeout=pick("server_read", 60.0),
        write_timeout=pick("server_write", 60.0),
        idle_timeout=pick("server_idle", 180.0),
    )


def client_limits(cfg: ServeConfig, budget: ByteBudget | None = None) -> ClientLimits:
    """What one backend answer may cost (``--max-response-*``); bodies are charged to ``budget``."""
    return ClientLimits(
        max_response_bytes=cfg.max_response_bytes, max_head_bytes=cfg.max_response_head_bytes,
        max_headers=cfg.max_response_headers, max_trailer_bytes=cfg.max_response_trailer_bytes,
        max_trailers=cfg.max_response_trailers, budget=budget,
    )


class Watcher:
    """Polls the graph files' modification times (``--watch``); a directory's files recursively, as loaded."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = [Path(p) for p in paths]
        self.stamp = self._stamp()

    def _stamp(self) -> tuple[tuple[str, float], ...]:
        out: list[tuple[str, float]] = []
        for p in self.paths:
            files = graph_files(p) if p.is_dir() else [p]
            for f in files:
                try:
                    out.append((str(f), f.stat().st_mtime))
                except OSError:
                    out.append((str(f), -1.0))
        return tuple(out)

    def changed(self) -> bool:
        new = self._stamp()
        if new != self.stamp:
            self.stamp = new
            return True
        return False


def build_app(cfg: ServeConfig, docs: list[GraphDocument], worker: int) -> tuple[RouterApp, Any]:
    """The worker's application (with its byte budget as ``app.budget``) and its telemetry."""
    telemetry = cfg.telemetry_factory() if cfg.telemetry_factory else None
    # One budget per worker for every body this process holds: request bodies (the server) and
    # backend response bodies (the client); reachable as ``app.budget``.
    budget = ByteBudget(cfg.max_inflight_bytes or None)
    limits = limits_for(cfg, docs)
    router = GraphRouter(
        docs, services=cfg.services, namespace=cfg.namespace, protocol=cfg.protocol,
        propagate_headers=cfg.propagate_headers, default_retry=cfg.default_retry,
        hooks=telemetry.hooks if telemetry is not None else None, follow_redirects=cfg.follow_redirects,
        route_urls=cfg.route_urls, client_limits=client_limits(cfg, budget),
        default_retry_window=cfg.default_retry_window, write_timeout=limits.write_timeout,
        prewarm=cfg.prewarm, prewarm_observer=telemetry,
        shadows=Shadows(telemetry.metrics if telemetry is not None else None),
    )
    access = AccessLog() if cfg.access_log else None
    app = RouterApp(router, auth_token=cfg.auth_token, telemetry=telemetry, access_log=access, metrics=cfg.metrics)
    app.budget = budget
    return app, telemetry


async def serve(cfg: ServeConfig, docs: list[GraphDocument], *, worker: int = 0,
                ready: Callable[[int], None] | None = None) -> int:
    """Serve until SIGTERM/SIGINT, then drain. Returns the exit code."""
    app, telemetry = build_app(cfg, docs, worker)
    router, access = app.router, app.access_log
    limits = limits_for(cfg, docs)
    grpc_front = await _start_grpc(cfg, app) if cfg.grpc_port is not None else None
    try:
        server = await start_server(app.handle, host=cfg.host, port=cfg.port, limits=limits,
                                    on_error=error_response, reuse_port=cfg.workers > 1, budget=app.budget,
                                    on_refused=app.refused)
    except OSError as exc:
        if grpc_front is not None:
            await grpc_front.stop(0)
        await router.aclose()
        raise listen_error(cfg.host, cfg.port, exc) from None
    # Everything loaded so far lives as long as the process: keep it out of the collector's passes.
    gc.freeze()
    # (A young-generation threshold of 10,000 instead of CPython's 700 saved about 6% of the CPU on an
    # Ensemble of 3, but RSS then grew by about 1 MB a minute under load: docs/benchmark-results.md.)
    log.debug("gc: %d start-up objects frozen; thresholds %s", gc.get_freeze_count(), gc.get_threshold())
    app.health.ready = True
    if grpc_front is not None:
        await grpc_front.set_serving(True)
    log.info("serving %d graph(s) %s on http://%s:%d%s (worker %d, pid %d)", len(router.graphs),
             ", ".join(router.graphs), cfg.host, server.port,
             f" and grpc://{cfg.host}:{grpc_front.port}" if grpc_front is not None else "", worker, os.getpid())
    if ready is not None:
        ready(server.port)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    hurry = asyncio.Event()

    first: list[tuple[str, float]] = []

    def on_stop(signame: str) -> None:
        if stop.is_set():
            # A Ctrl-C reaches a worker twice: the terminal signals the whole process group and the
            # supervisor forwards what it got. The same signal within ECHO_SECONDS is that one press.
            if cfg.workers > 1 and first[0][0] == signame and loop.time() - first[0][1] < ECHO_SECONDS:
                return
            log.info("%s again: ending the drain wait now", signame)
            hurry.set()
            return
        first.append((signame, loop.time()))
        log.info("%s received: draining (readyz 503) for %gs, then finishing in-flight requests",
                 signame, cfg.drain_seconds)
        app.health.draining = True
        stop.set()

    def on_reload() -> None:
        reload(cfg, router)

    held = signal.getsignal(signal.SIGTERM) is _note  # started by run(): hold again once done
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_stop, sig.name)
    loop.add_signal_handler(signal.SIGHUP, on_reload)
    early, _early[:] = list(_early), []
    for name in early:  # what came while starting, in order
        if name == "SIGHUP":
            on_reload()
        else:
            on_stop(name)
    watch_task = asyncio.create_task(_watch(cfg, router)) if cfg.watch > 0 and cfg.paths else None
    trim_task = heap.trim_when_idle(app.budget) if app.budget is not None else None
    try:
        await stop.wait()
        if grpc_front is not None:  # grpc.health.v1 turns NOT_SERVING with /readyz
            await grpc_front.set_serving(False)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(hurry.wait(), timeout=cfg.drain_seconds)
        await server.close_listener()
        grace = (limits.write_timeout or 60.0) + (max((g.timeout or 0) for g in router.graphs.values()) or 0)
        # gRPC: stop accepting now; calls in flight get the same grace as HTTP requests
        grpc_stop = asyncio.create_task(grpc_front.stop(grace)) if grpc_front is not None else None
        if not await server.wait_idle(grace):
            log.error("in-flight requests still running after %gs; closing", grace)
        await server.close()
        if grpc_stop is not None:
            await grpc_stop
    finally:
        for task in (watch_task, trim_task):
            if task is not None:
                task.cancel()
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)
        if held:
            hold_signals()  # a signal from now on (a late echo, a second Ctrl-C) cannot cut the clean-up short
        if access is not None:
            access.close()
        await router.aclose()
        if telemetry is not None:
            await telemetry.aclose()  # exports the spans still queued
    log.info("stopped cleanly")
    return 0


async def _start_grpc(cfg: ServeConfig, app: RouterApp) -> Any:
    from .grpc.server import GrpcLimits, start_grpc

    assert cfg.grpc_port is not None
    limits = GrpcLimits(max_receive_bytes=cfg.max_body_bytes, max_send_bytes=cfg.max_response_bytes)
    try:
        return await start_grpc(app, host=cfg.host, port=cfg.grpc_port, limits=limits, reuse_port=cfg.workers > 1)
    except OSError as exc:
        await app.router.aclose()
        raise SpecError(Problem("", f"--grpc-port {cfg.grpc_port}: {exc}")) from None


def reload(cfg: ServeConfig, router: GraphRouter) -> bool:
    """Reload graphs atomically; a bad new version keeps the old one serving and logs every problem."""
    if not cfg.paths:
        log.warning("reload requested, but graphs came from --graph-json: nothing to reload")
        return False
    try:
        docs = load(cfg)
        router.replace(docs)
    except SpecError as exc:
        log.error("reload rejected, still serving the previous graphs:\n%s", exc.render())
        return False
    log.info("reloaded %d graph(s): %s", len(router.graphs), ", ".join(router.graphs))
    return True


async def _watch(cfg: ServeConfig, router: GraphRouter) -> None:
    watcher = Watcher(cfg.paths)
    while True:
        await asyncio.sleep(cfg.watch)
        if watcher.changed():
            reload(cfg, router)


def run(cfg: ServeConfig, docs: list[GraphDocument]) -> int:
    """Run one worker in this process, or supervise ``cfg.workers`` forked workers."""
    hold_signals()
    kept = heap.tune_malloc(cfg.max_inflight_bytes or DEFAULT_INFLIGHT_BYTES, os.environ)
    if kept:
        log.debug("malloc: bodies below %d bytes come from the heap; up to %d free bytes kept while busy", *kept)
    if cfg.workers <= 1:
        return _run_loop(cfg, docs, 0)
    _check_port(cfg)
    return _supervise(cfg, docs)


def _check_port(cfg: ServeConfig) -> None:
    """Before forking workers: is the port free? (One line instead of one per worker; and workers
    binding with SO_REUSEPORT would otherwise share a port another process of this user listens on.)"""
    if not cfg.port:
        return
    with socket.socket(socket.AF_INET6 if ":" in cfg.host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((cfg.host, cfg.port))
        except OSError as exc:
            raise listen_error(cfg.host, cfg.port, exc) from None


def _run_loop(cfg: ServeConfig, docs: list[GraphDocument], worker: int) -> int:
    try:
        import uvloop

        return int(uvloop.run(serve(cfg, docs, worker=worker)))
    except ImportError:
        return asyncio.run(serve(cfg, docs, worker=worker))


def _supervise(cfg: ServeConfig, docs: list[GraphDocument]) -> int:
    """Fork workers that share the port (SO_REUSEPORT); forward signals; exit when all exited."""
    children: dict[int, int] = {}
    log.info("starting %d workers (supervisor pid %d)", cfg.workers, os.getpid())
    # Signals wait while forking: a child must not run the parent's handler, nor the parent forward to
    # a list of children that is not complete yet.
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    for i in range(cfg.workers):
        pid = os.fork()
        if pid == 0:  # child
            _early.clear()  # the supervisor's, forwarded below
            hold_signals()
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
            code = 1
            try:
                code = _run_loop(cfg, docs, i)
            except ListenError as exc:
                print(f"error: {exc}", file=sys.stderr)
                code = 2
            except BaseException:
                log.exception("worker %d failed", i)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = i

    def forward(signum: int, _frame: object) -> None:
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    for sig in SIGNALS:
        signal.signal(sig, forward)
    for name in _early:  # what the supervisor got while starting
        forward(signal.Signals[name], None)
    _early.clear()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
    worst = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid in children:
            code = os.waitstatus_to_exitcode(status)
            log.info("worker %d (pid %d) exited with %d", children.pop(pid), pid, code)
            if cfg.metrics and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                from .telemetry.metrics import worker_exited

                worker_exited(pid)  # a crashed worker's in-flight gauge must not stay in the sum
            worst = max(worst, abs(code))
    return worst
