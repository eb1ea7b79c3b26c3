"""One server connection answering its requests: keep-alive, pipelining, refusals, deadlines.

A connection answers one request at a time, in order. A request is handed to the handler only once
its body is complete; requests that arrive meanwhile (pipelining) wait in a queue with reading
paused. Deadlines are plain floats swept by the server's coarse timer, so the hot path arms no timer.
Every buffer that grows with input has a limit (``ServerLimits``); the bytes of request bodies held
are charged to the process's ``ByteBudget``. A refused request is answered, then the connection
lingers (write side shut, input discarded for a bounded time) so the client reads its status.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import cast

from . import server_guard as guard
from .messages import HttpRequest, Response
from .server_guard import Reject
from .server_reader import PAUSE_PIPELINE, PAUSE_WRITE, RequestReader
from .wire import CONTINUE, STATUS_LINES, header_block

log = logging.getLogger("graph_router.http")

#: Framing headers the server owns; a handler's copies are dropped.
_RESERVED = frozenset({"content-length", "transfer-encoding", "connection", "date"})
_NO_BODY = frozenset({204, 304})
_SPLIT_WRITE = 256 * 1024


class ServerConnection(RequestReader):
    """asyncio protocol for one client connection (httptools calls the ``on_*`` methods)."""

    __slots__ = ()

    # --- asyncio.Protocol -----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._client = guard.format_peer(transport.get_extra_info("peername"))
        self._s.conns.add(self)
        self.deadline = self._loop.time() + self._s.read_timeout
        if not self._s.accepting:
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._s.conns.discard(self)
        self.deadline = math.inf
        self._release()
        self._req = None
        if self._task is not None:
            self._task.cancel()

    def eof_received(self) -> bool | None:
        # A client that half-closes after a whole request still gets its answer (keep the write
        # side open); with nothing to answer, or half a request, the connection closes.
        if self._linger >= 0 or not (self._busy or self._queue):
            return None
        self._stop_parsing = True  # a request still half read never completes: answer the others
        self._reading = False
        return True

    def pause_writing(self) -> None:
        self._write_paused = True
        self._pause(PAUSE_WRITE)

    def resume_writing(self) -> None:
        self._write_paused = False
        self._resume(PAUSE_WRITE)
        if self._busy and self._task is None and not self._transport.is_closing() and self._linger < 0:
            self._busy = False
            self._next()

    def on_message_complete(self) -> None:
        self._in_head = True
        self._reading = False
        self._continue = False
        self._chunk_fed = -1
        req = cast(HttpRequest, self._req)
        self._req = None
        body = self._body
        self._body = b""
        req.body = body if type(body) is bytes else bytes(body)
        charge = self._charge
        self._charge = 0
        keep_alive = self._req_keep_alive
        if not keep_alive:
            self._stop_parsing = True
        if self._busy or self._queue:
            self._queue.append((req, keep_alive, charge))
            self._pause(PAUSE_PIPELINE)
        else:
            self._start(req, keep_alive, charge)

    # --- request cycle --------------------------------------------------------------------------------

    def _start(self, req: HttpRequest, keep_alive: bool, charge: int) -> None:
        self._busy = True
        self._held = charge
        self._keep_alive = keep_alive
        self._http10 = req.http_version == "1.0"
        self._head_only = req.method == "HEAD"
        s = self._s
        s.inflight += 1
        self.deadline = self._loop.time() + s.write_timeout
        task: asyncio.Future[Response]
        try:
            pending = s.handler(req)
            # create_task directly for the usual coroutine: ensure_future costs more per request.
            if asyncio.iscoroutine(pending):  # noqa: SIM108 - mypy narrows only in an if statement
                task = self._loop.create_task(pending)
            else:
                task = asyncio.ensure_future(pending)
        except Exception as exc:  # a handler that fails before returning an awaitable
            task = self._loop.create_future()
            task.set_exception(exc)
        self._task = task
        task.add_done_callback(self._handler_done)

    def _handler_done(self, task: asyncio.Future[Response]) -> None:
        self._task = None
        self._s.request_done()
        if self._lost:
            return
        if task.cancelled():
            self._transport.close()
            return
        exc = task.exception()
        if exc is None:
            resp = task.result()
        else:
            log.error("request handler failed", exc_info=exc)
            resp = self._s.error_response(500, "internal server error")
        self._respond(resp)

    def _respond(self, resp: Response) -> None:
        keep_alive = self._keep_alive and not self._closing
        try:
            head, body = self._encode(resp, keep_alive)
        except Exception:
            log.exception("invalid response from handler (status %r)", resp.status)
            head, body = self._encode(self._s.error_response(500, "invalid response"), keep_alive)
        transport = self._transport
        if len(body) > _SPLIT_WRITE:
            transport.write(head)
            transport.write(body)
        else:
            transport.write(head + body)
        held = self._held
        budget = self._budget
        if held and budget is not None:  # the request's body is no longer held
            self._held = 0
            budget.give_back(held)
        if not keep_alive:
            self._stop_parsing = True
            transport.close()
        elif not self._write_paused:
            self._busy = False
            self._next()
        # else: resume_writing() continues once the client has read enough.

    def _encode(self, resp: Response, keep_alive: bool) -> tuple[bytes, bytes]:
        status = resp.status
        body = resp.body
        conn = ("connection: keep-alive\r\n" if self._http10 else "") if keep_alive else "connection: close\r\n"
        if status in _NO_BODY or status < 200:
            length = ""
            body = b""
        else:
            length = f"content-length: {len(body)}\r\n"
            if self._head_only:
                body = b""
        block = header_block(resp.headers, _RESERVED)
        head = f"{self._s.date.line()}{length}{conn}{block}\r\n".encode("latin-1")
        return STATUS_LINES[status] + head, body

    def _next(self) -> None:
        """The previous response is out: answer the next queued request, or wait for one."""
        queue = self._queue
        if queue:
            item = queue.popleft()
            if isinstance(item, Reject):
                self._send_reject(item)
            elif self._closing:
                self._transport.close()
            else:
                self._start(*item)
            return
        self._resume(PAUSE_PIPELINE)
        if self._stop_parsing or (self._closing and not self._reading):
            self._transport.close()
        elif self._reading:
            self.deadline = self._loop.time() + self._s.read_timeout
            if self._continue:
                self._continue = False
                self._transport.write(CONTINUE)
        else:
            self.deadline = self._loop.time() + self._s.idle_timeout

    # --- refusals: answer, report, linger -------------------------------------------------------------

    def _send_reject(self, reject: Reject) -> None:
        """Answer a refusal, report it, then close lingering: the client reads its status even when
        it is still sending (an unread byte at close would make the kernel reset the connection)."""
        self._release()
        self._busy = True
        self._keep_alive = False
        self._http10 = False
        self._head_only = False
        req = self._req
        method, target = (req.method, req.target) if req is not None else (self._method(), _short(self._url))
        self._s.refused(reject.status, reject.reason, method, target, self._client)
        head, body = self._encode(self._s.error_response(reject.status, reject.cause), False)
        transport = self._transport
        transport.write(head + body)
        self._stop_parsing = True
        if self._lost or transport.is_closing():
            return
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()  # sent once the answer is flushed
        self._linger = guard.LINGER_BYTES
        self._paused = 0
        transport.resume_reading()
        self.deadline = self._loop.time() + guard.LINGER_SECONDS

    def _method(self) -> str:
        # llhttp reports a method only once it has read one (else its enum's 0, DELETE): the target
        # follows the method, so a target seen means a valid method.
        if not self._url:
            return ""
        return self._parser.get_method().decode("latin-1")

    def _release(self) -> None:
        """Return every byte this connection holds (the request being read, answered and queued) and
        forget the queue: it is closing, or refusing with nothing more to answer.

        The partial body is dropped now: the connection and its parser form a reference cycle, which
        only the cyclic collector would free, at some later allocation.
        """
        total = self._charge + self._held + sum(item[2] for item in self._queue if type(item) is tuple)
        self._queue.clear()
        self._body = b""
        self._held = self._charge = 0
        if total and self._budget is not None:
            self._budget.give_back(total)

    # --- deadlines, shutdown --------------------------------------------------------------------------

    def deadline_passed(self) -> None:
        """Called by the server's sweeper once ``deadline`` is past."""
        self.deadline = math.inf
        if self._linger >= 0:
            self._transport.close()  # lingered long enough: the answer had its chance
        elif self._busy or self._reading:
            # Read timeout (slowloris) or write timeout: drop without an answer, as Go does.
            self._transport.abort()
        else:
            self._transport.close()

    def shutdown(self) -> None:
        """Stop keep-alive: close now when idle, else after the current response."""
        self._closing = True
        if self._linger >= 0 or (not self._busy and not self._reading and not self._queue):
            self._transport.close()

    def abort(self) -> asyncio.Future[Response] | None:
        """Close now; cancel a running handler and return its task."""
        task = self._task
        if task is not None:
            task.cancel()
        self._transport.close()
        return task


def _short(url: bytes) -> str:
    """A target for the log of a refusal: at most 200 characters."""
    text = url[:200].decode("latin-1")
    return text + "..." if len(url) > 200 else text
