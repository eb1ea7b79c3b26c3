"""The router pod's HTTP application: graph endpoints, health, metrics, auth, access log.

Endpoints: with one graph, any path and method runs it (as KServe). With several graphs,
``POST /graphs/<name>`` runs one. Always: ``GET /readyz``, ``GET /healthz``, ``GET /metrics``
(when metrics are on), ``GET /graphs``, ``GET /graphs/<name>``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from .accesslog import AccessLog
from .api import GraphRouter
from .backend import redact_url
from .engine import Result, error_result
from .errors import GraphNotFound, Overloaded, Unauthorized, envelope
from .http.budget import ByteBudget
from .http.messages import HttpRequest, HttpResponse, Response

log = logging.getLogger("graph_router.server")
JSON = ("Content-Type", "application/json")
TEXT = ("Content-Type", "text/plain; charset=utf-8")
NOSNIFF = ("X-Content-Type-Options", "nosniff")
#: Recorded (metrics, access log, span) for a request whose caller went away before the answer (nginx's 499).
CLIENT_CLOSED = 499


class RequestTelemetry(Protocol):
    """What the server needs from telemetry (``graph_router.telemetry`` implements it)."""

    def start(self, graph: str, req: HttpRequest) -> Any:
        """Open the request's SERVER span (continuing incoming W3C context); returns it."""

    def finish(self, span: Any, graph: str, status: int, duration: float) -> None:
        """Close the span and count the request."""

    def metrics_body(self) -> tuple[bytes, str]:
        """The /metrics exposition and its content type."""
        ...

    def trace_id(self, span: Any) -> str | None:
        """Hex trace id of the span, for logs."""

    def refused(self, status: int, reason: str) -> None:
        """Count a request refused before any graph ran."""


@dataclass
class Health:
    ready: bool = False
    draining: bool = False


class RouterApp:
    """Turns HTTP requests into graph runs. One per worker process."""

    def __init__(self, router: GraphRouter, *, auth_token: str | None = None,
                 telemetry: RequestTelemetry | None = None, access_log: AccessLog | None = None,
                 metrics: bool = True) -> None:
        self.router = router
        self.health = Health()
        self._token = auth_token.encode() if auth_token else None
        self.telemetry = telemetry
        self.access_log = access_log
        self.metrics = metrics and telemetry is not None
        #: The worker's byte budget, set by the process wiring (the HTTP server and client charge it).
        self.budget: ByteBudget | None = None
        self._clock: Callable[[], float] = time.perf_counter

    # --- routing ------------------------------------------------------------------------------

    async def handle(self, req: HttpRequest) -> Response:
        target = req.target
        if req.method == "GET":
            path = target.split("?", 1)[0]
            if path == "/readyz":
                return self._readyz()
            if path == "/healthz":
                return HttpResponse(200, [TEXT], b"ok")
            if path == "/metrics" and self.metrics:
                assert self.telemetry is not None
                body, ctype = self.telemetry.metrics_body()
                return HttpResponse(200, [("Content-Type", ctype)], body)
            if path == "/graphs" or path.startswith("/graphs/"):
                denied = self.check_auth(req)
                return denied or self._describe(req, path)
        name = self.router.default_graph
        if name is None:
            path = target.split("?", 1)[0]
            name = path[len("/graphs/"):] if path.startswith("/graphs/") and req.method == "POST" else ""
        return await self.run_graph(req, name)

    def _readyz(self) -> HttpResponse:
        # exactly KServe's answers (Go's http.Error for the 503)
        if self.health.draining:
            return HttpResponse(503, [TEXT, NOSNIFF], b"shutting down\n")
        if not self.health.ready:
            return HttpResponse(503, [TEXT, NOSNIFF], b"not ready: graphs not loaded\n")
        return HttpResponse(200, [], b"")

    def check_auth(self, req: HttpRequest) -> Result | None:
        if self._token is None:
            return None
        got = req.header("authorization") or ""
        scheme, _, token = got.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self._token):
            return None
        cause = "missing bearer token" if not got else "invalid bearer token"
        self.refused(401, "unauthorized", req.method, req.target, req.client)
        res = error_result(Unauthorized(cause))
        res.headers.append(("WWW-Authenticate", 'Bearer realm="graph-router"'))
        return res

    def _describe(self, req: HttpRequest, path: str) -> Response:
        graphs = self.router.graphs
        if path == "/graphs":
            body = {"graphs": [{"name": n, "source": g.doc.source} for n, g in graphs.items()]}
            return HttpResponse(200, [JSON], orjson.dumps(body))
        name = path[len("/graphs/"):]
        g = graphs.get(name)
        if g is None:
            self.refused(404, "unknown_graph", req.method, req.target, req.client)
            return error_result(GraphNotFound(self.router.unknown_graph_message(name)))
        spec = g.doc.wire()
        for node in spec["nodes"].values():
            for step in node.get("steps", ()):
                for target in (step, step.get("mirror") or {}):  # a step's shadow (mirror) too
                    if "serviceUrl" in target:
                        target["serviceUrl"] = redact_url(target["serviceUrl"])
        return HttpResponse(200, [JSON], orjson.dumps({"name": name, "spec": spec}))

    # --- graph runs ---------------------------------------------------------------------------

    async def run_graph(self, req: HttpRequest, name: str, *, deadline: float | None = None) -> Result:
        """Run graph ``name`` with auth, telemetry and the access log (the gRPC front comes in here too).

        ``deadline``: the caller's (loop time). Answers the graph's :class:`Result`, or the error's when auth
        refused the request or the graph is unknown.
        """
        denied = self.check_auth(req)
        if denied is not None:
            return denied
        g = self.router.graphs.get(name)
        if g is None:
            self.refused(404, "unknown_graph", req.method, req.target, req.client, graph=name)
            result = error_result(GraphNotFound(self.router.unknown_graph_message(name or None)))
        else:
            start = self._clock()
            tel = self.telemetry
            span = tel.start(name, req) if tel is not None else None
            try:
                result = await self.router.run(g, req.body, req.headers, span=span, deadline=deadline)
            except asyncio.CancelledError:  # the caller went away (gRPC cancel or deadline, a dropped connection)
                self._record(req, name, span, Result(CLIENT_CLOSED, b""), self._clock() - start)
                raise
            self._record(req, name, span, result, self._clock() - start)
        # Served as it is: a Result has the status, headers and body the HTTP server writes.
        return result

    def _record(self, req: HttpRequest, name: str, span: Any, result: Result, duration: float) -> None:
        """Close the request's span, count it, and write its access-log line."""
        tel = self.telemetry
        if tel is not None and span is not None:
            tel.finish(span, name, result.status, duration)
        if self.access_log is not None:
            trace = tel.trace_id(span) if tel is not None and span is not None else None
            if trace is None:  # tracing off: still correlate by the caller's W3C trace id
                tp = req.header("traceparent")
                trace = tp[3:35] if tp is not None and len(tp) >= 55 and tp[2] == "-" else None
            self.access_log.record(name, req.method, req.target, result.status, duration, result.route, trace)

    def refused(self, status: int, reason: str, method: str, target: str, client: str, *,
                graph: str = "") -> None:
        """A request answered without running a graph: one access-log line and the refused-requests
        metric (the HTTP layer calls this for what it refuses itself, as ``on_refused``)."""
        if self.telemetry is not None and self.metrics:
            self.telemetry.refused(status, reason)
        if self.access_log is not None:
            self.access_log.record(graph, method, target, status, 0.0, "", None, reason)


def error_response(status: int, cause: str) -> HttpResponse:
    """The HTTP layer's own failures (400, 413, 431, 503, 505, 500), in KServe's envelope."""
    if status == 503:  # only the byte budget refuses with 503 here
        return HttpResponse(status, [JSON, ("Retry-After", str(Overloaded.retry_after))], envelope(cause))
    return HttpResponse(status, [JSON], envelope(cause))
