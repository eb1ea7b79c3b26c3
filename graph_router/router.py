"""The library API: load graphs, bind their services, run requests in-process or over HTTP.

    async with GraphRouter.from_file("graph.yaml", services={"classifier": my_fn}) as router:
        result = await router.infer({"instances": [[1, 2]]})
        result.status, result.json(), result.route
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from .backend import DEFAULT_RETRY_WINDOW, Backend
from .compiler import CompiledGraph, Resolver, ServiceTarget, compile_graph
from .engine import Result, error_result, execute
from .errors import GraphNotFound
from .headers import HeaderPolicy, compile_patterns
from .hooks import Hooks
from .loader import load_graph_json, load_graph_text, load_graphs
from .mirror import Shadows
from .prewarm import PrewarmSettings
from .spec import GraphDocument, Prewarm
from .waker import Prewarmer, PrewarmObserver

if TYPE_CHECKING:
    from .http.client import ClientLimits

ROUTE_HEADER = "X-Graph-Route"


def answer_margin(write_timeout: float) -> float:
    """How long before the server's write timeout a request is answered at the latest."""
    return min(0.5, write_timeout / 20)


class GraphRouter:
    """Runs one or more graphs. Use as an async context manager (closes pooled connections)."""

    def __init__(
        self,
        graphs: Sequence[GraphDocument],
        *,
        services: Mapping[str, ServiceTarget] | None = None,
        namespace: str = "default",
        protocol: str = "v1",
        propagate_headers: Iterable[str] | None = None,
        default_retry: bool = True,
        hooks: Hooks | None = None,
        http: Callable[[str], Backend] | None = None,
        follow_redirects: bool = False,
        max_response_bytes: int | None = None,
        route_urls: bool = True,
        client_limits: ClientLimits | None = None,
        default_retry_window: float = DEFAULT_RETRY_WINDOW,
        write_timeout: float | None = None,
        prewarm: PrewarmSettings | None = None,
        prewarm_observer: PrewarmObserver | None = None,
        shadows: Shadows | None = None,
    ) -> None:
        """``client_limits`` bound backend answers (``max_response_bytes`` overrides its body bound);
        ``default_retry_window`` is how long the default retry retries a refused connection;
        ``write_timeout`` is the serving HTTP server's (every request is answered before it, even
        while the default retry or a ``retry`` policy is waiting)."""
        self._owned_http: Any = None
        self._owned_grpc: Any = None
        self._warm_client: Any = None
        #: None: no prewarming (library default); ``serve`` passes its settings
        self.prewarmer = Prewarmer(prewarm, self._warm_send, observer=prewarm_observer) \
            if prewarm is not None else None
        if http is None:
            http = self._default_http(follow_redirects, max_response_bytes, client_limits)
        self.resolver = Resolver(namespace=namespace, protocol=protocol, services=dict(services or {}), http=http,
                                 grpc=self._default_grpc(max_response_bytes))
        self.hooks = hooks
        #: Steps' mirrors (shadow traffic): lanes, running copies, where they are counted.
        self.shadows = shadows or Shadows()
        self.default_retry = default_retry
        #: X-Graph-Route shows backend URLs (the server turns this off unless the operator opts in).
        self.route_urls = route_urls
        if default_retry_window < 0:
            raise ValueError(f"default_retry_window must be >= 0 seconds, got {default_retry_window:g}")
        self.default_retry_window = default_retry_window
        #: Seconds within which every request is answered (None: no bound beyond the graph's).
        self.answer_within = (None if not write_timeout or write_timeout == float("inf")
                              else write_timeout - answer_margin(write_timeout))
        self.base_policy = HeaderPolicy(compile_patterns(propagate_headers or ()))
        self.graphs: dict[str, CompiledGraph] = {}
        self.policies: dict[str, HeaderPolicy] = {}
        self._install(graphs)

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def from_file(cls, *paths: str | Path, **kw: Any) -> GraphRouter:
        """Graphs from files or directories (YAML or JSON, several documents allowed)."""
        return cls(load_graphs(paths), **kw)

    @classmethod
    def from_text(cls, text: str, **kw: Any) -> GraphRouter:
        return cls(load_graph_text(text), **kw)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], **kw: Any) -> GraphRouter:
        """A spec (or whole InferenceGraph resource) given as a Python mapping."""
        return cls([load_graph_json(orjson.dumps(spec).decode())], **kw)

    def _default_http(self, follow_redirects: bool, max_response_bytes: int | None,
                      client_limits: ClientLimits | None) -> Callable[[str], Backend]:
        def factory(url: str) -> Backend:
            if self._owned_http is None:
                import dataclasses

                from .http.client import ClientLimits
                from .transport import HttpBackendFactory

                limits = client_limits or ClientLimits()
                if max_response_bytes:
                    limits = dataclasses.replace(limits, max_response_bytes=max_response_bytes)
                self._owned_http = HttpBackendFactory(limits=limits)
            backend: Backend = self._owned_http.get(url, follow_redirects=follow_redirects)
            return backend

        return factory

    def _default_grpc(self, max_message_bytes: int | None) -> Callable[[str], Backend]:
        def factory(url: str) -> Backend:
            if self._owned_grpc is None:
                try:
                    from .grpc.backend import GrpcBackendFactory
                except ImportError as exc:
                    raise ValueError(f"{url}: gRPC steps need the grpc extra: pip install 'graph-router[grpc]' "
                                     f"({exc})") from None
                self._owned_grpc = GrpcBackendFactory(max_message_bytes=max_message_bytes or 64 * 1024 * 1024)
            backend: Backend = self._owned_grpc.get(url)
            return backend

        return factory

    def _install(self, docs: Sequence[GraphDocument]) -> None:
        pw = self.prewarmer
        mode = pw.settings.mode if pw is not None else Prewarm.OFF
        compiled = {d.name: compile_graph(d, self.resolver, default_retry=self.default_retry,
                                          route_urls=self.route_urls, retry_window=self.default_retry_window,
                                          prewarm=mode, shadows=self.shadows)
                    for d in docs}
        if pw is not None:
            pw.bind(compiled.values())
        policies = {n: self.base_policy.with_graph(g.doc.spec.propagate_headers) for n, g in compiled.items()}
        # one assignment each: a request in flight keeps the graph object it started with
        self.graphs, self.policies = compiled, policies

    def replace(self, docs: Sequence[GraphDocument]) -> None:
        """Atomically swap in new graphs (reload). Raises SpecError and keeps the old ones on failure."""
        self._install(docs)

    # --- running ------------------------------------------------------------------------------

    @property
    def default_graph(self) -> str | None:
        return next(iter(self.graphs)) if len(self.graphs) == 1 else None

    async def infer(
        self,
        body: Any,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        *,
        graph: str | None = None,
        span: Any = None,
    ) -> Result:
        """Run a graph once. ``body``: bytes/str sent as is, anything else JSON-encoded."""
        name = graph or self.default_graph
        g = self.graphs.get(name) if name is not None else None
        if g is None:
            res = error_result(GraphNotFound(self.unknown_graph_message(name)))
            return res
        raw = body if isinstance(body, bytes) else body.encode() if isinstance(body, str) else orjson.dumps(body)
        incoming = list(headers.items()) if isinstance(headers, Mapping) else list(headers or ())
        return await self.run(g, raw, incoming, span=span)

    async def run(self, g: CompiledGraph, raw: bytes, incoming: list[tuple[str, str]], *,
                  span: Any = None, deadline: float | None = None) -> Result:
        """``deadline``: the caller's own (loop time), e.g. a gRPC deadline; the graph's timeout still applies."""
        backend_headers = self.policies[g.name].select(incoming)
        if g.wake and self.prewarmer is not None:
            self.prewarmer.fire(g.wake, span)
        result = await execute(g, raw, incoming, backend_headers, hooks=self.hooks, span=span,
                               answer_within=self.answer_within, deadline=deadline)
        if result.route:
            result.headers.append((ROUTE_HEADER, result.route))
        return result

    def unknown_graph_message(self, name: str | None) -> str:
        known = ", ".join(sorted(self.graphs)) or "none"
        if name is None:
            return f"several graphs are loaded; POST /graphs/<name> with one of: {known}"
        return f"graph {name!r} not found; known graphs: {known}"

    async def _warm_send(self, url: str, timeout: float) -> int:  # noqa: ASYNC109 - the client's own budget
        """A warm-up ``GET`` through the router's own connection pool (its connection is then reused)."""
        from .http.client import HttpClient
        from .http.url import Url

        client = self._owned_http.client if self._owned_http is not None else self._warm_client
        if client is None:
            client = self._warm_client = HttpClient()
        resp = await client.request("GET", Url.parse(url), [], b"", timeout=timeout)
        return int(resp.status)

    async def aclose(self) -> None:
        await self.shadows.aclose()  # copies still running would use the pool closed below
        if self.prewarmer is not None:
            await self.prewarmer.aclose()
        if self._warm_client is not None:
            await self._warm_client.aclose()
            self._warm_client = None
        if self._owned_http is not None:
            await self._owned_http.aclose()
            self._owned_http = None
        if self._owned_grpc is not None:
            await self._owned_grpc.aclose()
            self._owned_grpc = None
        closed: set[int] = set()
        for g in self.graphs.values():
            for b in g.backends:  # shared between graphs through the resolver's cache: close once
                if id(b) not in closed:
                    closed.add(id(b))
                    await b.aclose()

    async def __aenter__(self) -> GraphRouter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

