"""HTTP backends: the engine's :class:`~graph_router.backend.Backend` over the shared keep-alive pool.

Client exceptions become :mod:`graph_router.errors` here and only here, with causes worded as Go's
``net/http`` errors that KServe's router puts in its envelope (``Post "<url>": EOF``).
"""

from __future__ import annotations

import logging
import re

from .backend import USERINFO as _USERINFO
from .backend import BackendRequest, BackendResponse, Headers
from .backend import redact_url as redact
from .errors import (
    BackendConnectError,
    BackendDisconnected,
    BackendError,
    BackendProtocolError,
    BackendResponseTooLarge,
    BackendTimeout,
    GraphRouterError,
    Overloaded,
)
from .http.client import (
    BudgetExhausted,
    ClientError,
    ClientLimits,
    ClientResponse,
    ConnectFailed,
    Disconnected,
    HttpClient,
    ProtocolViolation,
    ReadTimeout,
    ResponseLimitExceeded,
    ResponseTooLarge,
    Url,
)

log = logging.getLogger("graph_router.transport")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10
_TIMEOUT_IN_HEADERS = "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
_TIMEOUT_IN_BODY = "context deadline exceeded (Client.Timeout or context cancellation while reading body)"


class HttpBackend:
    """``POST <url>`` with the step's body and headers.

    The headers are the engine's, already decided by the header policy (propagation rules and the
    ``Content-Type`` default, as KServe's ``callService``); the client drops hop-by-hop ones while
    encoding, so nothing is filtered twice per call.
    """

    __slots__ = ("_client", "_follow", "_url", "target")

    def __init__(self, url: str, client: HttpClient, *, follow_redirects: bool = False) -> None:
        self._url = Url.parse(url)  # ValueError at load time for a malformed URL
        self._client = client
        self._follow = follow_redirects
        self.target = url

    async def call(self, request: BackendRequest) -> BackendResponse:
        headers = request.headers
        resp = await self._send("POST", self._url, headers, request.body, request.timeout)
        if self._follow and resp.status in _REDIRECTS:
            resp = await self._follow_redirects(resp, headers, request)
        # The one conversion on the way in: the HTTP package sits below the backend seam and knows
        # nothing of it, so its ClientResponse becomes the BackendResponse every backend answers.
        return BackendResponse(status=resp.status, body=resp.body, headers=resp.headers)

    async def _send(
        self, method: str, url: Url, headers: Headers, body: bytes, budget: float | None
    ) -> ClientResponse:
        try:
            return await self._client.request(method, url, headers, body, timeout=budget)
        except ClientError as exc:
            raise translate(exc, method, url.raw) from exc

    async def _follow_redirects(
        self, resp: ClientResponse, headers: Headers, request: BackendRequest
    ) -> ClientResponse:
        """Go's rules, same host:port only: 307/308 re-send method and body; 301/302/303 turn
        a POST into a body-less GET. A redirect elsewhere is returned as the answer. As Go's
        default CheckRedirect: at most 10 requests, then ``Post "<Location>": stopped after 10 redirects``."""
        url, method, body = self._url, "POST", request.body
        sent = 1
        while True:
            location = resp.header("location")
            if resp.status not in _REDIRECTS or location is None:
                return resp
            try:
                nxt = url.join(location)
            except ValueError:
                return resp  # not somewhere we would go (other scheme, malformed)
            if nxt.key != url.key:
                return resp
            if sent >= MAX_REDIRECTS:
                raise BackendError(f'{_op("POST")} "{redact(location)}": stopped after {MAX_REDIRECTS} redirects')
            if resp.status in (301, 302, 303) and method not in ("GET", "HEAD"):
                method, body = "GET", b""
                headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
            url = nxt
            resp = await self._send(method, url, headers, body, request.timeout)
            sent += 1

    async def aclose(self) -> None:
        return None  # the client is shared: its owner closes it


def _op(method: str) -> str:
    return method[:1] + method[1:].lower()  # as Go's url.Error: "Post", "Get"


def translate(exc: ClientError, method: str, url: str) -> GraphRouterError:
    """A client exception as our error, with Go's wording."""
    prefix = f'{_op(method)} "{url}": '
    if isinstance(exc, BudgetExhausted):
        return Overloaded(prefix + exc.detail)
    if isinstance(exc, ConnectFailed):
        return BackendConnectError(prefix + exc.detail, refused=exc.detail.endswith("connection refused"))
    if isinstance(exc, Disconnected):
        # Once the headers are in, Go's client has returned; KServe reads the body with
        # io.ReadAll, whose error carries no URL.
        cause = exc.detail if exc.in_body else prefix + exc.detail
        # The client already re-sent where Go's transport would (a replayable request on a pooled
        # connection closed before any byte). Otherwise the backend may have processed the
        # request: only the graph's retry policy may send it again.
        return BackendDisconnected(cause, nothing_received=False)
    if isinstance(exc, ReadTimeout):
        if exc.headers_received:
            return BackendTimeout(_TIMEOUT_IN_BODY)
        return BackendTimeout(prefix + _TIMEOUT_IN_HEADERS)
    if isinstance(exc, ResponseTooLarge | ResponseLimitExceeded):
        return BackendResponseTooLarge(prefix + exc.detail)
    if isinstance(exc, ProtocolViolation):
        return BackendProtocolError(prefix + exc.detail)
    return BackendError(prefix + exc.detail)


class UnusableUrlBackend:
    """A ``serviceUrl`` the HTTP client cannot call: KServe accepts the graph and answers every
    request through this step with 500, so do we (and log the problem at load time)."""

    __slots__ = ("cause", "target")

    def __init__(self, url: str) -> None:
        self.target = redact(url)
        self.cause = go_url_error(url)

    async def call(self, request: BackendRequest) -> BackendResponse:
        raise BackendError(self.cause)

    async def aclose(self) -> None:
        return None


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
def go_url_error(url: str) -> str:
    """What Go's ``url.Parse`` / ``http.Client`` says about a URL it cannot call (as KServe reports)."""
    url = redact(url)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return f'parse "{url}": net/url: invalid control character in URL'
    m = _SCHEME.match(url)
    if m is None:
        first = url.split("/", 1)[0]
        if ":" in first:
            return f'parse "{url}": first path segment in URL cannot contain colon'
        return f'Post "{url}": unsupported protocol scheme ""'
    scheme = m.group(1).lower()
    if scheme not in ("http", "https"):
        return f'Post "{url}": unsupported protocol scheme "{m.group(1)}"'
    if _USERINFO.match(url):
        return f'Post "{url}": credentials in backend URLs are not supported (use PROPAGATE_HEADERS for auth)'
    return f'Post "{url}": http: no Host in request URL'


class HttpBackendFactory:
    """Builds :class:`HttpBackend` objects sharing one client; one backend per (URL, redirect mode)."""

    def __init__(self, client: HttpClient | None = None, limits: ClientLimits | None = None) -> None:
        self._owns_client = client is None
        self.client = client if client is not None else HttpClient(limits or ClientLimits())
        self._cache: dict[tuple[str, bool], HttpBackend | UnusableUrlBackend] = {}

    def get(self, url: str, *, follow_redirects: bool = False) -> HttpBackend | UnusableUrlBackend:
        """The backend for ``url``; one that answers 500 (as KServe) for a URL that cannot be called."""
        key = (url, follow_redirects)
        backend = self._cache.get(key)
        if backend is None:
            try:
                backend = HttpBackend(url, self.client, follow_redirects=follow_redirects)
            except ValueError:
                backend = UnusableUrlBackend(url)
                log.warning("backend URL %s cannot be called; requests through it will fail with 500: %s",
                            redact(url), backend.cause)
            self._cache[key] = backend
        return backend

    __call__ = get

    async def aclose(self) -> None:
        if self._owns_client:
            await self.client.aclose()
