"""One backend connection: an asyncio protocol reading responses with llhttp.

The errors it reports are in :mod:`.client_errors` (re-exported here and by :mod:`.client`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

import httptools

from .client_errors import (
    BudgetExhausted,
    ClientError,
    ClientResponse,
    ConnectFailed,
    Disconnected,
    ProtocolViolation,
    ReadTimeout,
    ResponseLimitExceeded,
    ResponseTooLarge,
)

if TYPE_CHECKING:
    from .budget import ByteBudget
    from .client_limits import ClientLimits

#: Chunk framing every chunk may use for free (its size line and CRLFs, as Go's chunked reader
#: allows 16 bytes per chunk); only the rest counts towards ``max_trailer_bytes``.
CHUNK_FRAMING_ALLOWANCE = 16
#: While a head is arriving its bytes and field count are checked every this many bytes, so a head
#: of tiny fields never holds more than this many bytes' worth of them past the count limit.
HEAD_CHECK_STEP = 64 * 1024

__all__ = [
    "BudgetExhausted", "ClientConnection", "ClientError", "ClientResponse", "ConnectFailed", "Disconnected",
    "ProtocolViolation", "ReadTimeout", "ResponseLimitExceeded", "ResponseTooLarge",
]


class _Stop(Exception):
    """Raised in a parser callback to stop parsing; the error to report is in ``_error``."""


class ClientConnection(asyncio.Protocol):
    """One keep-alive connection to a backend; one exchange at a time.

    Every buffer that grows with the backend's bytes is bounded: the head (bytes and fields, 1xx
    answers included), the body (``max_response_bytes``, and the shared ``budget``), and the rest
    of a chunked answer (chunk extensions and trailers). The byte bounds are checked once per read,
    against what was received, so a header or trailer that never ends costs at most its limit
    plus one read.
    """

    __slots__ = (
        "_body",
        "_body_len",
        "_budget",
        "_buf",
        "_charged",
        "_chunked",
        "_chunks",
        "_cl",
        "_error",
        "_fut",
        "_head_step",
        "_headers",
        "_headers_done",
        "_informational",
        "_keep_alive",
        "_lim",
        "_loop",
        "_mark",
        "_max",
        "_max_head",
        "_max_headers",
        "_parser",
        "_received",
        "_status",
        "_trailer_bytes",
        "_trailers",
        "_transport",
        "_wire",
        "_wire_limit",
        "dead",
        "local",
        "remote",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, limits: ClientLimits) -> None:
        self._loop = loop
        self._lim = limits
        self._max = limits.max_response_bytes
        self._max_head = limits.max_head_bytes
        self._max_headers = limits.max_headers
        self._head_step = min(self._max_head, HEAD_CHECK_STEP)
        self._budget = limits.budget
        self._transport: asyncio.Transport = cast(asyncio.Transport, None)
        self._parser = httptools.HttpResponseParser(self)
        self._fut: asyncio.Future[ClientResponse] | None = None
        self._charged = 0
        #: True once the connection cannot carry another exchange.
        self.dead = False
        self.local = ""
        self.remote = ""
        # per message (set again by on_message_begin / on_headers_complete before they are read)
        self._headers: list[tuple[str, str]] = []
        self._cl = -1
        self._chunked = False
        self._keep_alive = False
        self._status = 0
        self._mark = 0
        self._chunks = self._trailers = self._trailer_bytes = 0
        # the body so far: one read's bytes as they came, or a buffer once there are more
        self._body = b""
        self._buf: bytearray | None = None
        self._reset()

    def _reset(self) -> None:
        self._received = False
        self._headers_done = False
        self._informational = False
        self._body_len = 0
        self._error: ClientError | None = None
        self._wire = 0  # bytes read in this exchange
        self._wire_limit = self._head_step  # past it, _check_wire looks closer

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
        self._give_back()
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
        self._wire += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._finish_error(ProtocolViolation("unexpected protocol upgrade (101 Switching Protocols)"))
            return
        except httptools.HttpParserError as exc:
            err = self._error or ProtocolViolation(
                f"net/http: HTTP/1.x transport connection broken: malformed HTTP response ({exc})"
            )
            self._finish_error(err)
            return
        if self._wire > self._wire_limit and self._fut is not None:
            self._check_wire()

    def _check_wire(self) -> None:
        """The bytes read so far against the head bound, or the chunk framing and trailer bound."""
        if not self._headers_done:
            if len(self._headers) > self._max_headers:
                self._finish_error(self._too_many_headers())
            elif self._wire > self._max_head:
                self._finish_error(ResponseLimitExceeded(
                    f"net/http: server response headers exceeded {self._max_head} bytes; aborted"))
            else:
                self._wire_limit = min(self._max_head, self._wire + HEAD_CHECK_STEP)
            return
        limit = self._lim.max_trailer_bytes
        # _mark is where the head ended at the latest, so body bytes of that read count here too
        # (an underestimate by at most one read, never a false refusal)
        chunks = self._chunks if self._chunked else 0
        framing = self._wire - self._mark - self._body_len - CHUNK_FRAMING_ALLOWANCE * chunks
        if framing > limit:
            self._finish_error(ResponseLimitExceeded(
                f"net/http: server response chunk extensions and trailers exceeded {limit} bytes; aborted"))
        else:
            self._wire_limit = self._wire + limit - max(framing, 0)

    def eof_received(self) -> bool | None:
        self._ended(None)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended(exc)

    def _ended(self, exc: Exception | None) -> None:
        self.dead = True
        fut = self._fut
        if fut is None or fut.done():
            self._give_back()
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
        self._cl = -1
        self._chunked = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._headers_done:
            self._on_trailer(name, value)
            return
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

    def _on_trailer(self, name: bytes, value: bytes) -> None:
        """Trailers are counted and dropped (as Go's client does unless asked)."""
        lim = self._lim
        self._trailers += 1
        self._trailer_bytes += len(name) + len(value) + 4
        if self._trailers > lim.max_trailers:
            self._error = ResponseLimitExceeded(
                f"net/http: server response has more than {lim.max_trailers} trailer fields; aborted")
            raise _Stop
        if self._trailer_bytes > lim.max_trailer_bytes:
            self._error = ResponseLimitExceeded(
                f"net/http: server response chunk extensions and trailers exceeded {lim.max_trailer_bytes} "
                "bytes; aborted")
            raise _Stop

    def on_headers_complete(self) -> None:
        parser = self._parser
        status: int = parser.get_status_code()
        self._status = status
        if status < 200 or status > 599:
            if not 100 <= status <= 599:
                # Go's client reads any three digits; its server cannot answer them (KServe: no answer)
                self._error = ProtocolViolation(
                    f'net/http: HTTP/1.x transport connection broken: malformed HTTP status code "{status:03d}"')
                raise _Stop
            self._informational = True  # 100 Continue, 103 Early Hints: skipped
            return
        if len(self._headers) > self._max_headers:
            self._error = self._too_many_headers()
            raise _Stop
        if self._wire > self._max_head and self._head_too_large():
            self._error = ResponseLimitExceeded(
                f"net/http: server response headers exceeded {self._max_head} bytes; aborted")
            raise _Stop
        self._headers_done = True
        self._keep_alive = parser.should_keep_alive()
        self._mark = self._wire
        self._wire_limit = self._wire + self._lim.max_trailer_bytes
        if self._chunked:
            self._chunks = self._trailers = self._trailer_bytes = 0

    def _too_many_headers(self) -> ResponseLimitExceeded:
        return ResponseLimitExceeded(
            f"net/http: server response has more than {self._max_headers} header fields; aborted")

    def _head_too_large(self) -> bool:
        """The head ended in the read that crossed the bound: count it (the shortest status line,
        each field with its ``: `` and CRLF, the blank line)."""
        return 15 + sum(len(k) + len(v) + 4 for k, v in self._headers) + 2 > self._max_head

    def on_chunk_header(self) -> None:
        self._chunks += 1

    def on_body(self, body: bytes) -> None:
        n = len(body)
        self._body_len += n
        if self._body_len > self._max:
            self._error = ResponseTooLarge(self._max)
            raise _Stop
        budget = self._budget
        if budget is not None:
            if not budget.take(n):
                self._error = BudgetExhausted(cast(int, budget.limit))
                raise _Stop
            self._charged += n
        # One read's body is kept as is (the usual answer: no copy); more go into one growing
        # buffer, so the cost is the body's size whatever the chunking.
        buf = self._buf
        if buf is not None:
            buf += body
        elif self._body:
            buf = self._buf = bytearray(self._body)
            buf += body
            self._body = b""
        else:
            self._body = body

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
        buf = self._buf
        if buf is None:
            body = self._body
        else:
            body = bytes(buf)
            self._buf = None
        self._body = b""
        if self._charged:
            self._give_back()
        if not fut.done():
            fut.set_result(ClientResponse(self._status, self._headers, body))

    def _finish_error(self, err: ClientError) -> None:
        fut = self._fut
        self._fut = None
        self.kill()
        self._buf = None
        self._body = b""
        if fut is not None and not fut.done():
            fut.set_exception(err)

    def _give_back(self) -> None:
        """Return this exchange's body bytes to the budget (once the body is handed over or dropped)."""
        if self._charged:
            cast("ByteBudget", self._budget).give_back(self._charged)
            self._charged = 0


def _addr(addr: object) -> str:
    if isinstance(addr, tuple) and len(addr) >= 2:
        host = str(addr[0])
        return f"[{host}]:{addr[1]}" if ":" in host else f"{host}:{addr[1]}"
    return "" if addr is None else str(addr)
