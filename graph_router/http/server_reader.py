"""Reading one server connection's requests: feeding llhttp, and every limit a request's bytes meet.

Holds all of a connection's state (the subclass :class:`~.server_protocol.ServerConnection` answers
the requests). Every buffer that grows with input has a limit here: the head, trailers, chunk
extensions, the body (held as one buffer, charged to the process's ``ByteBudget``), and the bytes
parsed per event-loop turn.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from typing import cast

import httptools

from . import server_guard as guard
from .messages import HttpRequest, Response
from .server_guard import Reject
from .server_state import ServerState
from .wire import CONTINUE

log = logging.getLogger("graph_router.http")

PAUSE_PIPELINE = 1
PAUSE_WRITE = 2
PAUSE_TURN = 4
#: Fairness: at most this many bytes of one connection are parsed per event-loop turn; a larger read
#: is parsed a slice per turn with reading paused meanwhile (libuv would otherwise read a busy socket
#: up to 32 times in a row, and 256 KiB of 1-byte chunks is tens of milliseconds of callbacks).
TURN_BYTES = 16 * 1024


class RequestReader(asyncio.Protocol):
    """The reading half of a server connection: state, llhttp callbacks and limits."""

    __slots__ = (
        "_began", "_body", "_body_len", "_budget", "_busy", "_charge", "_chunk_fed", "_chunk_hdr",
        "_chunks", "_cl", "_client", "_closing", "_continue", "_expect", "_head_bytes", "_head_only",
        "_headers", "_held", "_hosts", "_http10", "_in_head", "_keep_alive", "_limits", "_linger", "_loop",
        "_lost", "_parser", "_paused", "_queue", "_raw_head", "_reading", "_reject", "_req",
        "_req_keep_alive", "_s", "_stall", "_stop_parsing", "_task", "_te", "_trailer_bytes", "_trailers",
        "_transport", "_url", "_write_paused", "deadline",
    )

    def __init__(self, state: ServerState) -> None:
        self._s = state
        self._loop = state.loop
        self._limits = state.limits
        self._budget = state.budget
        self._transport: asyncio.Transport = cast(asyncio.Transport, None)
        self._parser = httptools.HttpRequestParser(self)
        self._client = ""
        #: Loop time at which the current phase (read, write, idle or linger) times out.
        self.deadline = math.inf
        #: Complete requests waiting for their turn: (request, keep-alive, bytes charged) or a refusal.
        self._queue: deque[tuple[HttpRequest, bool, int] | Reject] = deque()
        self._task: asyncio.Future[Response] | None = None
        self._busy = False  # a request is being answered: handler running or response draining
        self._keep_alive = True
        self._http10 = False
        self._head_only = False  # answering HEAD: headers, no body
        self._paused = 0
        self._write_paused = False
        self._stop_parsing = False  # we are closing: further input is ignored
        self._closing = False  # server shutdown: close after the current response
        self._lost = False
        self._linger = -1  # >= 0 while lingering after a refusal: input bytes still to discard
        # Budget: bytes charged for the body of the request being answered (returned once its
        # response is written); ``_charge``, below, for the one being read.
        self._held = 0
        # Per-message parse state.
        self._reading = False
        self._in_head = True
        self._began = False
        self._raw_head = 0
        self._head_bytes = 0
        self._url = b""
        self._headers: list[tuple[str, str]] = []
        self._hosts = 0
        #: The body so far: the first piece as is, a bytearray once a second arrives (a list of
        #: tiny chunks would cost ~50 bytes of objects per byte of body).
        self._body: bytes | bytearray = b""
        self._body_len = 0
        self._charge = 0
        self._cl = -1
        self._te: str | None = None
        self._expect: str | None = None
        self._continue = False
        self._req: HttpRequest | None = None
        self._req_keep_alive = True
        self._reject: Reject | None = None
        # Chunked bodies: bytes fed, chunks seen, bytes fed without progress, inside a chunk/trailers.
        self._chunk_fed = -1  # -1: not reading a chunked body
        self._chunks = 0
        self._stall = 0
        self._chunk_hdr = False
        self._trailers = 0
        self._trailer_bytes = 0

    # --- reading: feeding llhttp, bounded per turn and per message ------------------------------------

    def _feed_later(self, data: bytes, start: int) -> None:
        """The next slice of a large read, one event-loop turn later."""
        if self._lost:
            return
        end = start + TURN_BYTES
        if end < len(data):
            self._loop.call_soon(self._feed_later, data, end)
        else:
            self._resume(PAUSE_TURN)  # new data arrives no earlier than the next turn
        self.data_received(data[start:end])  # a slice: never sliced again

    def data_received(self, data: bytes) -> None:
        if self._stop_parsing:
            if self._linger >= 0:
                self._discard(len(data))
            return
        if len(data) > TURN_BYTES:
            self._pause(PAUSE_TURN)
            self._loop.call_soon(self._feed_later, data, TURN_BYTES)
            data = data[:TURN_BYTES]
        was_in_head = self._in_head
        chunked = self._chunk_fed >= 0
        if chunked:
            mark = self._body_len + self._chunks + self._trailers
        self._began = False
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # The upgrade request itself was queued (answered, then the connection closes).
            self._stop_parsing = True
        except httptools.HttpParserError as exc:
            self._parse_failed(exc)
        else:
            # llhttp buffers a header it has not finished without limit: bound the raw bytes of
            # chunks that were all head (a chunk where a message began is covered by the exact
            # count in the callbacks once its headers complete).
            if was_in_head and self._in_head and not self._began:
                self._raw_head += len(data)
                if self._raw_head > self._limits.max_header_bytes:
                    self._fail(guard.head_too_large())
            elif chunked and self._chunk_fed >= 0:
                self._chunk_guard(len(data), mark)

    def _chunk_guard(self, n: int, mark: int) -> None:
        """Bound a chunked body's non-data bytes (Go's rule) and any chunk line or trailer that does
        not end (llhttp hands those to Python piece by piece, each piece copied again)."""
        limits = self._limits
        self._chunk_fed += n
        if mark != self._body_len + self._chunks + self._trailers:
            self._stall = 0
        else:
            self._stall += n
            if self._chunk_hdr and self._stall > limits.max_trailer_bytes:
                self._fail(guard.trailers_too_large())
                return
        limit = limits.max_chunk_ext_bytes
        excess = self._chunk_fed - 3 * self._body_len - guard.CHUNK_FREE_BYTES * self._chunks
        if excess > limit or (not self._chunk_hdr and self._stall > limit):
            self._fail(guard.chunk_overhead(limit))

    def _discard(self, n: int) -> None:
        self._linger -= n
        if self._linger < 0:
            self._transport.close()

    def _pause(self, bit: int) -> None:
        if not self._paused and not self._lost:
            self._transport.pause_reading()
        self._paused |= bit

    def _resume(self, bit: int) -> None:
        if self._paused & bit:
            self._paused &= ~bit
            if not self._paused and not self._transport.is_closing():
                self._transport.resume_reading()

    # --- llhttp callbacks -----------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._began = True
        self._reading = True
        self._url = b""
        self._headers = []
        self._head_bytes = 0
        self._hosts = 0
        self._body = b""
        self._body_len = 0
        self._cl = -1
        self._te = None
        self._expect = None
        if not self._busy:
            self.deadline = self._loop.time() + self._s.read_timeout

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_bytes += len(url)
        if self._head_bytes > self._limits.max_header_bytes:
            raise self._rejecting(guard.head_too_large())

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head:
            self._on_trailer(name, value)
            return
        self._head_bytes += len(name) + len(value) + 4
        limits = self._limits
        if self._head_bytes > limits.max_header_bytes or len(self._headers) >= limits.max_headers:
            raise self._rejecting(guard.head_too_large())
        key = name.decode("latin-1").lower()
        val = value.decode("latin-1")
        self._headers.append((key, val))
        if key == "host":
            self._hosts += 1
        elif key == "content-length":
            self._cl = int(val)  # llhttp has validated it (digits only, no duplicates)
        elif key == "transfer-encoding":
            self._te = val
        elif key == "expect":
            self._expect = val

    def _on_trailer(self, name: bytes, value: bytes) -> None:
        # A trailer of a chunked body: counted against its own limits, not kept.
        self._trailers += 1
        self._trailer_bytes += len(name) + len(value) + 4
        limits = self._limits
        if self._trailer_bytes > limits.max_trailer_bytes or self._trailers > limits.max_trailers:
            raise self._rejecting(guard.trailers_too_large())

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._raw_head = 0
        parser = self._parser
        version: str = parser.get_http_version()
        keep_alive: bool = parser.should_keep_alive()
        if version != "1.1" and version != "1.0":
            raise self._rejecting(guard.bad_version())
        if self._hosts != 1 and (self._hosts or version == "1.1"):
            raise self._rejecting(guard.bad_host(self._hosts))
        chunked = self._te is not None
        if chunked:
            if cast(str, self._te).strip().lower() != "chunked":
                raise self._rejecting(Reject(501, f'unsupported transfer encoding: "{self._te}"',
                                             "transfer_encoding"))
            self._chunk_fed, self._chunks, self._stall, self._chunk_hdr = 0, 0, 0, False
            self._trailers = self._trailer_bytes = 0
        if self._cl > self._limits.max_body_bytes:
            raise self._rejecting(guard.body_too_large(self._limits.max_body_bytes))
        budget = self._budget
        if budget is not None and (self._cl > 0 or chunked):
            limit = budget.limit  # refuse before reading a body that cannot fit
            if limit is not None and limit - budget.used < (self._cl if self._cl > 0 else 1):
                budget.refused += 1
                raise self._rejecting(guard.overloaded())
        if parser.should_upgrade():
            # No upgrades (as Go's server, minus hijacking): answer the request, then close.
            if self._cl > 0 or chunked:
                raise self._rejecting(Reject(400, "upgrade requests with a body are not supported", "upgrade"))
            keep_alive = False
        if self._expect is not None and version == "1.1":
            if self._expect.lower() != "100-continue":
                raise self._rejecting(Reject(417, f"unsupported Expect header: {self._expect}", "expect"))
            if self._cl > 0 or chunked:
                if self._busy:
                    self._continue = True  # sent once the previous response is out
                else:
                    self._transport.write(CONTINUE)
        method = parser.get_method().decode("ascii")
        url = self._url
        target = (url if url.startswith(b"/") else guard.origin_form(url)).decode("latin-1")
        self._req = HttpRequest(method, target, self._headers, b"", version, self._client)
        self._req_keep_alive = keep_alive

    def on_chunk_header(self) -> None:
        self._chunks += 1
        self._chunk_hdr = True

    def on_body(self, body: bytes) -> None:
        self._chunk_hdr = False  # a chunk with data: not the last one, whose trailers may follow
        n = len(body)
        self._body_len += n
        if self._body_len > self._limits.max_body_bytes:
            raise self._rejecting(guard.body_too_large(self._limits.max_body_bytes))
        budget = self._budget
        if budget is not None:
            if not budget.take(n):
                raise self._rejecting(guard.overloaded())
            self._charge += n
        held = self._body
        if not held:
            self._body = body  # the usual case: one piece, kept without a copy
        elif type(held) is bytes:
            self._body = bytearray(held) + body
        else:
            held += body

    # --- refusals while reading -----------------------------------------------------------------------

    def _rejecting(self, reject: Reject) -> Reject:
        self._reject = reject
        return reject

    def _parse_failed(self, exc: httptools.HttpParserError) -> None:
        if self._stop_parsing:
            return  # bytes after a `Connection: close` request: ignored, not an error
        reject = self._reject
        if reject is None:
            if isinstance(exc, httptools.HttpParserCallbackError):
                log.error("HTTP parser callback failed", exc_info=exc)
                reject = Reject(500, "internal server error", "internal")
            else:
                reject = Reject(400, f"malformed HTTP request: {exc}", "malformed")
        self._fail(reject)

    def _fail(self, reject: Reject) -> None:
        self._stop_parsing = True
        self._reading = False
        self._pause(PAUSE_PIPELINE)
        if self._busy:
            self._queue.append(reject)
        else:
            self._send_reject(reject)

    def _send_reject(self, reject: Reject) -> None:
        raise NotImplementedError  # ServerConnection answers

    def _start(self, req: HttpRequest, keep_alive: bool, charge: int) -> None:
        raise NotImplementedError  # ServerConnection answers
