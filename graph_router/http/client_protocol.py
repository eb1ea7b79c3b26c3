"""One backend connection: an asyncio protocol reading responses with llhttp; the client's errors.

Error ``detail`` strings read like the tail of Go's ``net/http`` errors, so ``transport`` can build
the causes KServe's router reports (``Post "<url>": <detail>``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import cast

import httptools


class ClientError(Exception):
    """Base of the client's errors; ``detail`` reads like Go's (``EOF``, ``dial tcp ...``)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ConnectFailed(ClientError):
    """No connection (refused, unreachable, DNS, connect timeout): nothing was sent."""


class Disconnected(ClientError):
    """The connection broke before the response was complete."""

    def __init__(self, detail: str, *, nothing_received: bool, in_body: bool = False) -> None:
        super().__init__(detail)
        #: No byte of a response arrived: the backend may not have processed the request.
        self.nothing_received = nothing_received
        #: The headers had arrived; the body was cut (Go reports this without the URL prefix).
        self.in_body = in_body


class ReadTimeout(ClientError):
    """The timeout (connect + send + whole response) passed."""

    def __init__(self, *, headers_received: bool) -> None:
        super().__init__("timeout reading body" if headers_received else "timeout awaiting headers")
        self.headers_received = headers_received


class ProtocolViolation(ClientError):
    """The backend's answer is not valid HTTP/1.x."""


class ResponseTooLarge(ClientError):
    """The response body is larger than ``ClientLimits.max_response_bytes``."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"response body larger than {limit} bytes")
        self.limit = limit


@dataclass(slots=True)
class ClientResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """First value of header ``name`` (lower-case), or None."""
        for k, v in self.headers:
            if k == name:
                return v
        return None


class _Stop(Exception):
    """Raised in a parser callback to stop parsing; the error to report is in ``_error``."""


class ClientConnection(asyncio.Protocol):
    """One keep-alive connection to a backend; one exchange at a time."""

    __slots__ = (
        "_body",
        "_body_len",
        "_chunked",
        "_cl",
        "_error",
        "_fut",
        "_headers",
        "_headers_done",
        "_informational",
        "_keep_alive",
        "_loop",
        "_max",
        "_parser",
        "_received",
        "_status",
        "_transport",
        "dead",
        "local",
        "remote",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, max_response_bytes: int) -> None:
        self._loop = loop
        self._max = max_response_bytes
        self._transport: asyncio.Transport = cast(asyncio.Transport, None)
        self._parser = httptools.HttpResponseParser(self)
        self._fut: asyncio.Future[ClientResponse] | None = None
        #: True once the connection cannot carry another exchange.
        self.dead = False
        self.local = ""
        self.remote = ""
        self._reset()

    def _reset(self) -> None:
        self._received = False
        self._headers_done = False
        self._informational = False
        self._keep_alive = False
        self._status = 0
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self._body_len = 0
        self._cl = -1
        self._chunked = False
        self._error: ClientError | None = None

    def exchange(self, head: bytes, body: bytes) -> asyncio.Future[ClientResponse]:
        """Send one request; the future resolves with the whole response or a ClientError."""
        self._reset()
        fut = self._fut = self._loop.create_future()
        if len(body) > 256 * 1024:
            self._transport.write(head)
            self._transport.write(body)
        else:
            self._transport.write(head + body)
        return fut

    def timed_out(self) -> None:
        if self._fut is not None:  # else the response won the race: nothing to do
            self._finish_error(ReadTimeout(headers_received=self._headers_done))

    def kill(self) -> None:
        """Drop the connection now (after an error, a timeout or a cancelled exchange)."""
        self.dead = True
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        self.dead = True
        if self._transport is not None:
            self._transport.close()

    # --- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self.local = _addr(transport.get_extra_info("sockname"))
        self.remote = _addr(transport.get_extra_info("peername"))

    def data_received(self, data: bytes) -> None:
        fut = self._fut
        if fut is None or fut.done():
            self.kill()  # bytes on an idle connection: the stream is out of sync
            return
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._finish_error(ProtocolViolation("unexpected protocol upgrade (101 Switching Protocols)"))
        except httptools.HttpParserError as exc:
            err = self._error or ProtocolViolation(
                f"net/http: HTTP/1.x transport connection broken: malformed HTTP response ({exc})"
            )
            self._finish_error(err)

    def eof_received(self) -> bool | None:
        self._ended(None)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended(exc)

    def _ended(self, exc: Exception | None) -> None:
        self.dead = True
        fut = self._fut
        if fut is None or fut.done():
            return
        if exc is None and self._headers_done and self._cl < 0 and not self._chunked:
            self._complete()  # a body delimited by the end of the connection
        elif not self._received:
            self._finish_error(Disconnected(self._read_error(exc, "EOF"), nothing_received=True))
        else:
            detail = self._read_error(exc, "unexpected EOF")
            self._finish_error(Disconnected(detail, nothing_received=False, in_body=self._headers_done))

    def _read_error(self, exc: Exception | None, eof: str) -> str:
        if isinstance(exc, ConnectionResetError):
            return f"read tcp {self.local}->{self.remote}: read: connection reset by peer"
        if isinstance(exc, BrokenPipeError):
            return f"write tcp {self.local}->{self.remote}: write: broken pipe"
        if isinstance(exc, OSError) and exc.strerror:
            return f"read tcp {self.local}->{self.remote}: read: {exc.strerror.lower()}"
        return eof

    # --- llhttp callbacks ----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        fut = self._fut
        if fut is None or fut.done():
            self.dead = True
            raise _Stop  # a second response to one request
        self._headers = []
        self._body = []
        self._body_len = 0
        self._cl = -1
        self._chunked = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._headers_done:
            return  # trailers are dropped (as Go's client does unless asked)
        key = name.decode("latin-1").lower()
        val = value.decode("latin-1")
        self._headers.append((key, val))
        if key == "content-length":
            self._cl = int(val)
            if self._cl > self._max:
                self._error = ResponseTooLarge(self._max)
                raise _Stop
        elif key == "transfer-encoding":
            self._chunked = True

    def on_headers_complete(self) -> None:
        parser = self._parser
        status: int = parser.get_status_code()
        self._status = status
        if status < 200:
            self._informational = True  # 100 Continue, 103 Early Hints: skipped
            return
        self._headers_done = True
        self._keep_alive = parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self._body_len += len(body)
        if self._body_len > self._max:
            self._error = ResponseTooLarge(self._max)
            raise _Stop
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        self._complete()

    # --- outcome -------------------------------------------------------------------------------

    def _complete(self) -> None:
        fut = cast(asyncio.Future[ClientResponse], self._fut)
        self._fut = None
        if not self._keep_alive:
            self.dead = True
        if not fut.done():
            fut.set_result(ClientResponse(self._status, self._headers, b"".join(self._body)))

    def _finish_error(self, err: ClientError) -> None:
        fut = self._fut
        self._fut = None
        self.kill()
        if fut is not None and not fut.done():
            fut.set_exception(err)


def _addr(addr: object) -> str:
    if isinstance(addr, tuple) and len(addr) >= 2:
        host = str(addr[0])
        return f"[{host}]:{addr[1]}" if ":" in host else f"{host}:{addr[1]}"
    return "" if addr is None else str(addr)
