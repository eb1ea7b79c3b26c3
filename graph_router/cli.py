"""The composition root: ``graph-router validate | run | graph | serve | manifests | rollout | models``.

Only this module reads ``os.environ`` and ``argv``. Exit codes: 0 ok, 1 failure, 2 bad input
(every problem listed on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from . import __version__
from .backend import DEFAULT_RETRY_WINDOW
from .errors import ListenError, Problem, SpecError
from .loader import find_graphs, load_graph_json, load_graphs
from .spec import GraphDocument

if TYPE_CHECKING:
    from .telemetry import Telemetry, TelemetrySettings

log = logging.getLogger("graph_router.cli")

ENV_AUTH_TOKEN = "GRAPH_ROUTER_AUTH_TOKEN"
ENV_PROPAGATE = "PROPAGATE_HEADERS"
ENV_MULTIPROC = "PROMETHEUS_MULTIPROC_DIR"
DEFAULT_PREWARM_TIMEOUT = 30.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    setup_logging(getattr(args, "log_level", "info"), getattr(args, "log_format", "json"))
    try:
        return int(args.func(args))
    except SpecError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return 2
    except ListenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="graph-router", description="A fast, KServe-compatible InferenceGraph router.")
    p.add_argument("--version", action="version", version=f"graph-router {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    v = sub.add_parser("validate", help="check graph files; exit 2 listing every problem")
    v.add_argument("files", nargs="+", metavar="FILE|DIR",
                   help="graph files, or directories: read recursively, their files that hold no graph "
                        "(an example's deploy.yaml, request.json) skipped with a note")
    v.set_defaults(func=cmd_validate)

    r = sub.add_parser("run", help="run a graph once and print status, route and body")
    r.add_argument("file", metavar="FILE")
    r.add_argument("--data", "-d", required=True, help="request body: JSON text, or @file")
    r.add_argument("--graph", help="which graph, when the file holds several")
    r.add_argument("--header", "-H", action="append", default=[], metavar="NAME:VALUE")
    _add_backend_flags(r)
    r.set_defaults(func=cmd_run)

    g = sub.add_parser("graph", help="print the graph as a Mermaid flowchart")
    g.add_argument("file", metavar="FILE")
    g.add_argument("--graph", help="which graph, when the file holds several")
    g.set_defaults(func=cmd_graph)

    s = sub.add_parser("serve", help="serve graphs over HTTP (the router pod)")
    _add_serve_flags(s)
    s.set_defaults(func=cmd_serve)

    _register_subcommands(sub)
    return p


#: The modules that add commands of their own (``register(subparsers)``), and the commands each adds.
SUBCOMMANDS: dict[str, tuple[str, ...]] = {
    "graph_router.manifests.cli": ("manifests", "rollout"),
    "graph_router.modelhost.cli": ("models",),
    "graph_router.modelhost.quickstart": ("quickstart",),
    "graph_router.planner.cli": ("plan",),
}


def _register_subcommands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add each module's commands. None imports an extra's package when loaded (a test checks it): a
    command that needs one says which extra to install when run, and any ImportError here is a bug."""
    import importlib

    for name in SUBCOMMANDS:
        importlib.import_module(name).register(sub)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of bytes or fields, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds (e.g. 5 or 0.5), got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, got {text}")
    return value


def _add_backend_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--service", action="append", default=[], metavar="NAME=URL",
                   help="where serviceName NAME (or an exact serviceUrl) is served; repeatable")
    p.add_argument("--namespace", default="default", help="namespace for serviceName URLs (default: default)")
    p.add_argument("--protocol", choices=("v1", "v2", "grpc"), default="v1",
                   help="protocol for serviceName URLs: v1 :predict, v2 /infer or grpc (grpc://NAME...:80/NAME) "
                        "(default v1)")
    p.add_argument("--no-default-retry", action="store_true", help="do not retry refused connections")
    p.add_argument("--default-retry-window", type=_seconds, default=DEFAULT_RETRY_WINDOW, metavar="SECONDS",
                   help="retry a refused backend connection for this long (scale-from-zero), then answer 500 "
                        f"(default {DEFAULT_RETRY_WINDOW:g}; always ends before the server's write timeout)")
    p.add_argument("--follow-redirects", action="store_true",
                   help="follow same-host redirects from backends (default: return them as they are)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.add_argument("--log-format", default="json", choices=("json", "text"))


def _add_serve_flags(s: argparse.ArgumentParser) -> None:
    s.add_argument("paths", nargs="*", metavar="FILE|DIR",
                   help="graph files, or directories: read recursively, files that hold no graph skipped")
    s.add_argument("--graph-json", help="KServe drop-in: the graph spec as a JSON string")
    s.add_argument("--host", default="0.0.0.0")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--grpc-port", type=int, metavar="PORT",
                   help="also serve the Open Inference Protocol over gRPC (plaintext HTTP/2) on PORT; needs the "
                        "grpc extra: pip install 'graph-router[grpc]'")
    s.add_argument("--workers", type=int, default=1,
                   help="processes sharing the port (SO_REUSEPORT); with N >= 2 /metrics sums all workers "
                        f"(a temporary {ENV_MULTIPROC}, or yours if set: its *.db files are removed at start)")
    s.add_argument("--drain-seconds", type=float, default=30.0,
                   help="after SIGTERM keep serving this long with /readyz 503 (default 30, as KServe)")
    s.add_argument("--max-body-bytes", type=int, default=10 * 1024 * 1024, help="request body limit (413 above)")
    s.add_argument("--max-response-bytes", type=_positive_int, default=64 * 1024 * 1024, metavar="N",
                   help="backend body limit (502 above; default 64 MiB)")
    _limit_flags(s)
    s.add_argument("--max-response-head-bytes", type=_positive_int, default=1024 * 1024, metavar="N",
                   help="backend answer's status line and headers, 1xx answers included (502 above; default 1 MiB)")
    s.add_argument("--max-response-headers", type=_positive_int, default=1000, metavar="N",
                   help="header fields in a backend answer (502 above; default 1000)")
    s.add_argument("--max-response-trailer-bytes", type=_positive_int, default=64 * 1024, metavar="N",
                   help="a chunked backend answer's chunk extensions and trailers (502 above; default 64 KiB)")
    s.add_argument("--max-response-trailers", type=_positive_int, default=100, metavar="N",
                   help="trailer fields in a backend answer (502 above; default 100)")
    s.add_argument("--auth-token-file", help=f"require 'Authorization: Bearer <token>' (or env {ENV_AUTH_TOKEN})")
    s.add_argument("--watch", type=float, default=0.0, metavar="SECONDS", help="poll graph files and reload")
    s.add_argument("--no-access-log", action="store_true")
    s.add_argument("--no-metrics", action="store_true", help="no /metrics endpoint and no metric recording")
    s.add_argument("--tracing", choices=("auto", "off", "console", "otlp"), default="auto",
                   help="auto: OTLP when OTEL_EXPORTER_OTLP_* is set, else off")
    _add_prewarm_flags(s)
    kserve = s.add_argument_group("KServe compatibility", "flags KServe's controller passes to the router image")
    kserve.add_argument("--inferencegraph-name", metavar="NAME",
                        help="the name of the --graph-json graph (default 'graph'); ignored with graph files, "
                             "which carry their own names")
    kserve.add_argument("--enable-auth", action="store_true",
                        help="accepted and ignored with a warning: KServe's SubjectAccessReview auth is not "
                             "supported; use --auth-token-file")
    kserve.add_argument("--enable-tls", action="store_true",
                        help="accepted and ignored with a warning: terminate TLS in the mesh or ingress")
    _add_backend_flags(s)


def _add_prewarm_flags(s: argparse.ArgumentParser) -> None:
    s.add_argument("--prewarm", choices=("off", "certain", "all"), default="certain",
                   help="at request start, wake idle backends the request will call (certain), may call (all), "
                        "or none (off); a graph's own 'prewarm' field wins (default certain)")
    s.add_argument("--prewarm-idle", action="append", default=[], metavar="SECONDS|NAME=SECONDS",
                   help="a backend idle this long may be at zero, so it is woken (default 90: Knative's stable "
                        "window 60 s + scale-to-zero grace period 30 s); NAME=SECONDS for one serviceName or "
                        "URL host; repeatable")
    s.add_argument("--prewarm-timeout", type=float, default=DEFAULT_PREWARM_TIMEOUT, metavar="SECONDS",
                   help=f"give up on a warm-up request after this long (default {DEFAULT_PREWARM_TIMEOUT:g})")


def parse_prewarm(mode: str, idle: Sequence[str], timeout: float) -> Any:
    """``--prewarm*`` flags as :class:`~graph_router.prewarm.PrewarmSettings`; SpecError lists bad values."""
    from .prewarm import DEFAULT_IDLE, PrewarmSettings
    from .spec import Prewarm

    default, by_service, problems = DEFAULT_IDLE, {}, []
    for item in idle:
        name, sep, value = item.rpartition("=")
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if seconds < 0 or seconds != seconds or (sep and not name):
            problems.append(Problem("", f"--prewarm-idle {item!r}: expected SECONDS or NAME=SECONDS "
                                        "(a number >= 0), e.g. --prewarm-idle 90 or --prewarm-idle classifier=120"))
        elif sep:
            by_service[name] = seconds
        else:
            default = seconds
    if not timeout > 0:
        problems.append(Problem("", f"--prewarm-timeout {timeout!r}: expected seconds > 0"))
    if problems:
        raise SpecError(problems)
    return PrewarmSettings(Prewarm(mode), default, by_service, timeout)


# --- commands ----------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    found = find_graphs(args.files)
    for note in found.skipped:
        print(f"note: {note}")
    for d in found.graphs:
        nodes = len(d.spec.nodes)
        steps = sum(len(n.steps) for n in d.spec.nodes.values())
        print(f"ok: {d.source}: graph {d.name!r} ({nodes} nodes, {steps} steps)")
    return 0


def _pick(docs: list[GraphDocument], name: str | None) -> GraphDocument:
    if name is not None:
        for d in docs:
            if d.name == name:
                return d
        raise SpecError(Problem("", f"graph {name!r} not found; graphs: {', '.join(d.name for d in docs)}"))
    if len(docs) > 1:
        raise SpecError(Problem("", f"the file holds several graphs ({', '.join(d.name for d in docs)}): "
                                         "choose one with --graph"))
    return docs[0]


def parse_services(items: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    problems = []
    for item in items:
        name, sep, url = item.partition("=")
        if not sep or not name or not url:
            problems.append(Problem("", f"--service {item!r}: expected NAME=URL, "
                                             "e.g. classifier=http://127.0.0.1:9000/v1/models/classifier:predict"))
            continue
        out[name] = url
    if problems:
        raise SpecError(problems)
    return out


def _read_data(value: str) -> bytes:
    if value.startswith("@"):
        try:
            return Path(value[1:]).read_bytes()
        except OSError as exc:
            raise SpecError(Problem("", f"--data {value}: cannot read file: {exc}")) from exc
    return value.encode()


def cmd_run(args: argparse.Namespace) -> int:
    from .api import GraphRouter

    doc = _pick(load_graphs([args.file]), args.graph)
    body = _read_data(args.data)
    headers = []
    for h in args.header:
        name, _, value = h.partition(":")
        headers.append((name.strip(), value.strip()))
    services = parse_services(args.service)
    notice = RetryNotice(doc, services, None if args.no_default_retry else args.default_retry_window,
                         attempts=args.log_level == "debug")
    retry_log = logging.getLogger("graph_router.retry")
    retry_log.addFilter(notice)

    async def go() -> Any:
        async with GraphRouter([doc], services=services, namespace=args.namespace,
                               protocol=args.protocol, propagate_headers=_propagate_env(),
                               default_retry=not args.no_default_retry,
                               default_retry_window=args.default_retry_window,
                               follow_redirects=args.follow_redirects) as router:
            return await router.infer(body, headers)

    try:
        result = asyncio.run(go())
    finally:
        retry_log.removeFilter(notice)
    print(f"status: {result.status}")
    print(f"route: {result.route or '-'}")
    try:
        print(orjson.dumps(orjson.loads(result.body), option=orjson.OPT_INDENT_2).decode())
    except orjson.JSONDecodeError:
        sys.stdout.buffer.write(result.body + b"\n")
    return 0 if 200 <= result.status <= 299 else 1


class RetryNotice(logging.Filter):
    """``run``: one line on stderr the first time a backend's call is retried (say, it refuses while it
    starts), so a one-shot request does not sit silent; the per-attempt log lines only at debug level."""

    def __init__(self, doc: GraphDocument, services: dict[str, str], window: float | None, *,
                 attempts: bool = False) -> None:
        super().__init__()
        self.names = {url: name for name, url in services.items()}
        steps = [s for n in doc.spec.nodes.values() for s in n.steps]
        self.own_policy = doc.spec.default_retry is not None or any(s.retry is not None for s in steps)
        self.window = window
        self.attempts = attempts
        self.told: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        target, outcome = getattr(record, "retry_target", None), getattr(record, "retry_outcome", None)
        if target is None or outcome is None:  # not a retry line
            return True
        if target not in self.told:
            self.told.add(target)
            who = f"{self.names[target]} ({target})" if target in self.names else target
            why = "connection refused" if outcome == "backend_connect" else f"answered {outcome}"
            if self.own_policy:
                how = "retrying as the graph's retry policy says"
            elif self.window is not None:
                how = f"retrying for up to {self.window:g} s while it starts (--default-retry-window)"
            else:
                how = "retrying"
            print(f"run: {who}: {why}; {how}...", file=sys.stderr, flush=True)
        return self.attempts


def cmd_graph(args: argparse.Namespace) -> int:
    from .mermaid import to_mermaid

    print(to_mermaid(_pick(load_graphs([args.file]), args.graph)), end="")
    return 0


def _propagate_env() -> list[str]:
    value = os.environ.get(ENV_PROPAGATE)
    return value.split(",") if value is not None else []


def serve_config(args: argparse.Namespace) -> Any:
    from .process import ServeConfig

    token = os.environ.get(ENV_AUTH_TOKEN)
    if args.auth_token_file:
        try:
            token = Path(args.auth_token_file).read_text().strip()
        except OSError as exc:
            raise SpecError(Problem("", f"--auth-token-file: cannot read: {exc}")) from exc
        if not token:
            raise SpecError(Problem("", "--auth-token-file: the file is empty"))
    if args.enable_auth:
        log.warning("--enable-auth (KServe's SubjectAccessReview auth) is not supported; "
                    "use --auth-token-file for bearer-token auth")
    if args.enable_tls:
        log.warning("--enable-tls is not supported; terminate TLS in the mesh or ingress")
    tracing = args.tracing
    if tracing == "auto":
        otlp = any(k.startswith("OTEL_EXPORTER_OTLP_") for k in os.environ)
        tracing = "otlp" if otlp else "off"
    try:  # the OTEL_* and PROMETHEUS_* variables, read once, before any worker starts
        settings = telemetry_settings(tracing, not args.no_metrics, os.environ)
    except ValueError as exc:  # ExportConfigError is one
        raise SpecError(Problem("", f"--tracing {tracing}: {exc}")) from None
    if not args.paths and args.graph_json is None:
        raise SpecError(Problem("", "serve needs graph files/directories or --graph-json"))
    if args.grpc_port is not None:
        missing = grpc_extra_missing()
        if missing:
            raise SpecError(Problem("", f"--grpc-port needs the grpc extra ({missing} is not installed): "
                                        "pip install 'graph-router[grpc]'"))
    cfg = ServeConfig(
        paths=list(args.paths), graph_json=args.graph_json, host=args.host, port=args.port,
        workers=max(1, args.workers), drain_seconds=args.drain_seconds, max_body_bytes=args.max_body_bytes,
        max_response_bytes=args.max_response_bytes, max_response_head_bytes=args.max_response_head_bytes,
        max_response_headers=args.max_response_headers, max_response_trailer_bytes=args.max_response_trailer_bytes,
        max_response_trailers=args.max_response_trailers, default_retry_window=args.default_retry_window,
        auth_token=token, watch=args.watch,
        access_log=not args.no_access_log, metrics=not args.no_metrics, tracing=tracing,
        namespace=args.namespace, protocol=args.protocol, services=parse_services(args.service),
        propagate_headers=_propagate_env(), default_retry=not args.no_default_retry,
        follow_redirects=args.follow_redirects, max_header_bytes=args.max_header_bytes,
        max_headers=args.max_headers, max_trailer_bytes=args.max_trailer_bytes, max_trailers=args.max_trailers,
        max_chunk_ext_bytes=args.max_chunk_ext_bytes, max_inflight_bytes=args.max_inflight_bytes,
        route_urls=args.route_header_urls,
        prewarm=parse_prewarm(args.prewarm, args.prewarm_idle, args.prewarm_timeout),
        grpc_port=args.grpc_port,
    )
    cfg.telemetry_factory = functools.partial(build_worker_telemetry, settings)
    return cfg


# --- telemetry: the environment is read here, and telemetry takes plain settings -----------------


def telemetry_settings(tracing: str, metrics: bool, env: Mapping[str, str]) -> TelemetrySettings:
    """``serve``'s telemetry from its flags and the standard variables (``OTEL_*``, ``PROMETHEUS_*``)."""
    from .telemetry import ExportConfig, Sampler, TelemetrySettings

    resource: dict[str, Any] = {}
    if tracing != "off":
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource

        resource = dict(Resource.create().attributes)  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
        if str(resource.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource[SERVICE_NAME] = "graph-router"
    return TelemetrySettings(
        tracing=tracing, metrics=metrics, resource=resource,
        export=ExportConfig.from_env(env) if tracing == "otlp" else ExportConfig(),
        sampler=Sampler.from_env(env) if tracing != "off" else Sampler(),
        multiprocess=bool(env.get(ENV_MULTIPROC)),
        created=env.get("PROMETHEUS_DISABLE_CREATED_SERIES", "").lower() not in ("true", "1", "t"))


def build_worker_telemetry(settings: TelemetrySettings) -> Telemetry | None:
    """What a ``serve`` worker records, after the fork: the supervisor sets ``PROMETHEUS_MULTIPROC_DIR``
    (when several workers sum their metrics) after the settings were read, and prometheus_client's mode
    is chosen at its first import, in the worker."""
    from .telemetry import build_telemetry

    return build_telemetry(dataclasses.replace(settings, multiprocess=bool(os.environ.get(ENV_MULTIPROC))))


def _limit_flags(s: argparse.ArgumentParser) -> None:
    """The request-side limits of ``serve`` (docs/security.md lists what a client sees at each)."""
    from .process import DEFAULT_INFLIGHT_BYTES

    s.add_argument("--max-header-bytes", type=_positive, default=64 * 1024,
                   help="request line and headers, in bytes (431 above)")
    s.add_argument("--max-headers", type=_positive, default=200, help="header fields per request (431 above)")
    s.add_argument("--max-trailer-bytes", type=_positive, default=16 * 1024,
                   help="trailer fields of a chunked request, in bytes (431 above)")
    s.add_argument("--max-trailers", type=_positive, default=64, help="trailer fields per request (431 above)")
    s.add_argument("--max-chunk-ext-bytes", type=_positive, default=16 * 1024,
                   help="chunk extensions and other non-data bytes of a chunked body (400 above)")
    s.add_argument("--max-inflight-bytes", type=_non_negative, default=DEFAULT_INFLIGHT_BYTES,
                   help="bytes of bodies held per worker process; new requests get 503 and Retry-After "
                        "when spent (0: no limit)")
    s.add_argument("--route-header-urls", action="store_true",
                   help="X-Graph-Route names backend URLs too (default: nodes, steps and services only)")


def _positive(text: str) -> int:
    value = _non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text!r}")
    return value


def grpc_extra_missing() -> str | None:
    """The first module of the grpc extra that is not installed, else None (nothing is imported: the
    supervisor forks workers afterwards, and grpc must start in them)."""
    import importlib.util

    for module in ("grpc", "grpc_health", "grpc_reflection", "google.protobuf"):
        try:
            if importlib.util.find_spec(module) is None:
                return module
        except ModuleNotFoundError:
            return module
    return None


def cmd_serve(args: argparse.Namespace) -> int:
    from .process import load, run

    cfg = serve_config(args)
    docs = load(cfg)
    if cfg.graph_json is not None and args.inferencegraph_name:
        docs = [load_graph_json(cfg.graph_json, name=args.inferencegraph_name)]
    with metrics_dir(cfg.metrics, cfg.workers):
        return run(cfg, docs)


@contextlib.contextmanager
def metrics_dir(metrics: bool, workers: int) -> Iterator[None]:
    """prometheus-client multiprocess mode for ``--workers >= 2``, so /metrics sums every worker.

    prometheus-client reads the variable when first imported, in each worker after the fork.
    A directory the user set is reused (its stale ``*.db`` files removed); else a temporary one.
    """
    given = os.environ.get(ENV_MULTIPROC)
    if not metrics or (workers < 2 and given is None):
        yield
        return
    if given is not None:
        for f in Path(given).glob("*.db"):
            f.unlink(missing_ok=True)
        yield
        return
    tmp = tempfile.mkdtemp(prefix="graph-router-metrics-")
    os.environ[ENV_MULTIPROC] = tmp
    try:
        yield
    finally:
        os.environ.pop(ENV_MULTIPROC, None)
        shutil.rmtree(tmp, ignore_errors=True)


# --- logging -------------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line; carries the trace id when a span is current."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        trace_id = getattr(record, "trace_id", None)
        if trace_id:
            out["trace_id"] = trace_id
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out).decode()


def setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    from .telemetry import TraceIdFilter

    handler.addFilter(TraceIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
