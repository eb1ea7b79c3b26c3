"""A keep-alive HTTP/1.1 client pool on asyncio protocols and httptools (llhttp).

One pool of idle connections per (scheme, host, port). A connection goes back to the pool only
after a complete response that allows keep-alive. An idle connection the backend closed is never
reused: its end (``eof_received`` / ``connection_lost``, delivered by the loop while it waited)
marks it dead. A reused connection that the backend closed before answering a single byte (it
timed out the idle connection as we sent) is re-sent once on a fresh connection only when the
request is replayable as Go's transport judges it: an idempotent method, or an
``Idempotency-Key`` / ``X-Idempotency-Key`` header. A POST the backend may have read is never
sent twice by the client.
"""

from __future__ import annotations

import asyncio
import errno
import math
import re
import socket
import ssl

from ..headers import HOP_BY_HOP
from .budget import ByteBudget
from .client_limits import ClientLimits
from .client_protocol import (
    BudgetExhausted,
    ClientConnection,
    ClientError,
    ClientResponse,
    ConnectFailed,
    Disconnected,
    ProtocolViolation,
    ReadTimeout,
    ResponseLimitExceeded,
    ResponseTooLarge,
)
from .url import Url
from .wire import header_block

__all__ = [
    "BudgetExhausted", "ByteBudget", "ClientError", "ClientLimits", "ClientResponse", "ConnectFailed",
    "Disconnected", "HttpClient", "ProtocolViolation", "ReadTimeout", "ResponseLimitExceeded",
    "ResponseTooLarge", "Url",
]

_NO_LENGTH_METHODS = frozenset({"GET", "HEAD"})
#: Go's ``Request.isReplayable``: methods that may be sent again after a broken connection.
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_IDEMPOTENCY_HEADERS = frozenset({"idempotency-key", "x-idempotency-key"})
#: Go's texts for the connect() errors a backend call meets.
_ERRNO_TEXT = {
    errno.ECONNREFUSED: "connection refused",
    errno.ENETUNREACH: "network is unreachable",
    errno.EHOSTUNREACH: "no route to host",
    errno.ETIMEDOUT: "connection timed out",
    errno.ECONNRESET: "connection reset by peer",
    errno.EADDRNOTAVAIL: "cannot assign requested address",
}
_ERRNO_IN_TEXT = re.compile(r"\[Errno (\d+)\]")


#: ``ClientLimits()``, immutable: one default for every client.
DEFAULT_LIMITS = ClientLimits()


class HttpClient:
    """Keep-alive connection pool; share one per process (or per worker)."""

    def __init__(self, limits: ClientLimits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        self._idle: dict[tuple[str, str, int], list[ClientConnection]] = {}
        self._closed = False
        self._ssl = limits.ssl_context
        #: Connection attempts so far (tests and metrics).
        self.connects = 0

    async def request(
        self,
        method: str,
        url: Url,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        timeout: float | None,  # noqa: ASYNC109 - one budget for connect + send + whole response
    ) -> ClientResponse:
        """Send one request and read the whole response; raises a :class:`ClientError`.

        ``timeout`` covers connect, send and the whole response. 3xx answers are returned as is.
        """
        if self._closed:
            raise RuntimeError("HttpClient is closed")
        loop = asyncio.get_running_loop()
        deadline = math.inf if timeout is None else loop.time() + timeout
        length = "" if not body and method in _NO_LENGTH_METHODS else f"content-length: {len(body)}\r\n"
        head = f"{url.head_prefix(method)}{header_block(headers, HOP_BY_HOP)}{length}\r\n".encode("latin-1")
        conn = self._pop_idle(url.key)
        if conn is None:
            conn = await self._connect(loop, url, deadline)
            return await self._exchange(loop, conn, url, head, body, deadline)
        try:
            return await self._exchange(loop, conn, url, head, body, deadline)
        except Disconnected as exc:
            if not exc.nothing_received or not _replayable(method, headers):
                raise
        # The backend closed the pooled connection without answering; the request may be sent again.
        conn = await self._connect(loop, url, deadline)
        return await self._exchange(loop, conn, url, head, body, deadline)

    async def _exchange(
        self,
        loop: asyncio.AbstractEventLoop,
        conn: ClientConnection,
        url: Url,
        head: bytes,
        body: bytes,
        deadline: float,
    ) -> ClientResponse:
        fut = conn.exchange(head, body)
        timer = None if deadline == math.inf else loop.call_at(deadline, conn.timed_out)
        try:
            resp = await fut
        except BaseException:
            conn.kill()  # mid-exchange (error, timeout or cancelled): the stream is unusable
            raise
        finally:
            if timer is not None:
                timer.cancel()
        self._release(url.key, conn)
        return resp

    def _pop_idle(self, key: tuple[str, str, int]) -> ClientConnection | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.dead:
                return conn
        return None

    def _release(self, key: tuple[str, str, int], conn: ClientConnection) -> None:
        if conn.dead or self._closed:
            conn.close()
            return
        idle = self._idle.get(key)
        if idle is None:
            idle = self._idle[key] = []
        if len(idle) >= self._limits.max_idle_per_host:
            conn.close()
        else:
            idle.append(conn)

    async def _connect(self, loop: asyncio.AbstractEventLoop, url: Url, deadline: float) -> ClientConnection:
        connect_timeout = self._limits.connect_timeout
        limit = deadline if connect_timeout is None else min(deadline, loop.time() + connect_timeout)
        limits = self._limits
        tls: ssl.SSLContext | None = None
        if url.tls:
            tls = self._ssl = self._ssl or ssl.create_default_context()
        self.connects += 1
        try:
            async with asyncio.timeout_at(None if limit == math.inf else limit):
                _, conn = await loop.create_connection(
                    lambda: ClientConnection(loop, limits),
                    url.host,
                    url.port,
                    ssl=tls,
                    server_hostname=url.host if tls else None,
                )
        except TimeoutError as exc:
            if exc.errno is None:  # our timer, not the kernel's ETIMEDOUT
                if limit >= deadline:
                    raise ReadTimeout(headers_received=False) from exc
                raise ConnectFailed(f"dial tcp {url.dial_address}: i/o timeout") from exc
            raise ConnectFailed(_dial_error(url, exc)) from exc
        except socket.gaierror as exc:
            raise ConnectFailed(_lookup_error(url, exc)) from exc
        except ssl.SSLCertVerificationError as exc:
            raise ConnectFailed(f"tls: failed to verify certificate: x509: {exc.verify_message}") from exc
        except ssl.SSLError as exc:
            raise ConnectFailed(f"remote error: tls: {exc.reason or exc}") from exc
        except OSError as exc:
            raise ConnectFailed(_dial_error(url, exc)) from exc
        return conn

    def idle_connections(self) -> int:
        """Connections waiting in the pool (tests and metrics)."""
        return sum(1 for conns in self._idle.values() for c in conns if not c.dead)

    async def aclose(self) -> None:
        """Close idle connections; connections in use close when their exchange ends."""
        self._closed = True
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()


def _replayable(method: str, headers: list[tuple[str, str]]) -> bool:
    """Go's ``Request.isReplayable``: an idempotent method or an idempotency key."""
    return method in _IDEMPOTENT or any(k.lower() in _IDEMPOTENCY_HEADERS for k, _ in headers)


def _dial_error(url: Url, exc: OSError) -> str:
    code = exc.errno
    if code is None:  # asyncio's "Multiple exceptions: [Errno 111] ..." across addresses
        found = _ERRNO_IN_TEXT.search(str(exc))
        code = int(found.group(1)) if found else None
    if code is None:
        text = str(exc) or type(exc).__name__
    else:
        text = _ERRNO_TEXT.get(code) or (exc.strerror or str(exc)).lower()
    return f"dial tcp {url.dial_address}: connect: {text}"


def _lookup_error(url: Url, exc: socket.gaierror) -> str:
    if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)):
        return f"dial tcp: lookup {url.host}: no such host"
    return f"dial tcp: lookup {url.host}: {exc.strerror or exc}"
