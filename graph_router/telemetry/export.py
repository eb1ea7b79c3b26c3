"""Batching and sending encoded spans: OTLP/HTTP (protobuf) on the router's own HTTP client, on the event loop.

Configured by the standard variables, read as the OpenTelemetry Python SDK reads them:
``OTEL_EXPORTER_OTLP_[TRACES_]{ENDPOINT,HEADERS,TIMEOUT,COMPRESSION,CERTIFICATE,CLIENT_KEY,CLIENT_CERTIFICATE}``
and ``OTEL_BSP_{SCHEDULE_DELAY,MAX_QUEUE_SIZE,MAX_EXPORT_BATCH_SIZE}`` (each export request is bounded by
``OTEL_EXPORTER_OTLP_TIMEOUT``; ``OTEL_BSP_EXPORT_TIMEOUT`` is not read).
No thread: spans wait in a list and are sent by a task when a batch is full or the schedule delay
passes. When the collector falls behind, the queue is capped and the excess is dropped and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import math
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

from ..http.client import ClientError, ClientLimits, HttpClient
from ..http.url import Url
from . import otlp
from .spans import anchor

log = logging.getLogger("graph_router.telemetry")

Send = Callable[[list[bytes]], Awaitable[None]]
_RETRY_STATUS = frozenset({429, 502, 503, 504})
_WARN_EVERY = 10.0  # seconds between two warnings about the same export problem


class ExportConfigError(ValueError):
    """An OTEL_* variable has a value the exporter cannot use; the message names it and says what is valid."""


def _env(env: Mapping[str, str], name: str) -> tuple[str, str] | None:
    """(variable, value) of OTEL_EXPORTER_OTLP_TRACES_<name>, else OTEL_EXPORTER_OTLP_<name>, if set."""
    for var in (f"OTEL_EXPORTER_OTLP_TRACES_{name}", f"OTEL_EXPORTER_OTLP_{name}"):
        value = env.get(var, "").strip()
        if value:
            return var, value
    return None


def _number(env: Mapping[str, str], var: str, default: float, *, minimum: float = 0) -> float:
    raw = env.get(var, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ExportConfigError(f"{var}={raw!r}: expected a number") from None
    if not math.isfinite(value):  # nan/inf would pass the bound check and break int() or the timers
        raise ExportConfigError(f"{var}={raw!r}: expected a finite number")
    if value < minimum:
        raise ExportConfigError(f"{var}={raw!r}: expected a number >= {minimum:g}")
    return value


@dataclass(frozen=True)
class ExportConfig:
    """Where and how spans go; :meth:`from_env` reads the OpenTelemetry variables."""

    endpoint: str = "http://localhost:4318/v1/traces"
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = 10.0  # seconds, per export request (the Python SDK's unit for OTEL_EXPORTER_OTLP_TIMEOUT)
    gzip: bool = False
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False)
    schedule_delay: float = 5.0  # seconds
    max_queue: int = 2048
    max_batch: int = 512

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ExportConfig:
        specific = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
        base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        var = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" if specific else "OTEL_EXPORTER_OTLP_ENDPOINT"
        endpoint = specific or (base.rstrip("/") + "/v1/traces" if base else cls.endpoint)
        try:
            Url.parse(endpoint)
        except ValueError as exc:
            raise ExportConfigError(f"{var}: {exc}") from None
        protocol = _env(env, "PROTOCOL")
        if protocol is not None and protocol[1] != "http/protobuf":
            raise ExportConfigError(f"{protocol[0]}={protocol[1]!r}: graph-router exports OTLP over "
                                    "HTTP with protobuf; set it to http/protobuf (the collector's port 4318)")
        return cls(
            endpoint=endpoint,
            headers=_headers(env),
            timeout=_timeout(env),
            gzip=_compression(env),
            ssl_context=_tls(env),
            schedule_delay=_number(env, "OTEL_BSP_SCHEDULE_DELAY", 5000) / 1000,
            max_queue=int(_number(env, "OTEL_BSP_MAX_QUEUE_SIZE", 2048, minimum=1)),
            max_batch=int(_number(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512, minimum=1)),
        )


def _headers(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    got = _env(env, "HEADERS")
    if got is None:
        return ()
    var, raw = got
    out = []
    for item in raw.split(","):
        if not item.strip():
            continue
        name, eq, value = item.partition("=")
        name = unquote(name).strip()
        if not eq or not name or any(c in name for c in " \t\r\n:"):
            raise ExportConfigError(f"{var}: {item.strip()!r} is not name=value (a comma-separated list, "
                                    "values URL-encoded)")
        out.append((name, unquote(value).strip()))
    return tuple(out)


def _timeout(env: Mapping[str, str]) -> float:
    got = _env(env, "TIMEOUT")
    return 10.0 if got is None else _number({got[0]: got[1]}, got[0], 10.0, minimum=0.001)


def _compression(env: Mapping[str, str]) -> bool:
    got = _env(env, "COMPRESSION")
    if got is None:
        return False
    value = got[1].lower()  # as the SDK: GZIP works too
    if value in ("gzip", "none"):
        return value == "gzip"
    raise ExportConfigError(f"{got[0]}={got[1]!r}: expected gzip or none")


def _tls(env: Mapping[str, str]) -> ssl.SSLContext | None:
    ca, cert, key = _env(env, "CERTIFICATE"), _env(env, "CLIENT_CERTIFICATE"), _env(env, "CLIENT_KEY")
    if ca is None and cert is None:
        return None
    try:
        ctx = ssl.create_default_context(cafile=ca[1] if ca else None)
        if cert is not None:
            ctx.load_cert_chain(cert[1], key[1] if key else None)
    except (OSError, ssl.SSLError) as exc:
        names = " / ".join(var for var, _ in (x for x in (ca, cert, key) if x is not None))
        raise ExportConfigError(f"{names}: cannot load: {exc}") from None
    return ctx


class HttpSink:
    """POSTs batches to the collector; retries 429/502/503/504 and connection failures within the timeout."""

    def __init__(self, cfg: ExportConfig, resource_field: bytes, scope_field: bytes) -> None:
        self._resource, self._scope = resource_field, scope_field
        self.cfg = cfg
        self.url = Url.parse(cfg.endpoint)
        self.client = HttpClient(ClientLimits(max_idle_per_host=2, ssl_context=cfg.ssl_context))
        self.headers = [("Content-Type", "application/x-protobuf"), ("User-Agent", "graph-router"),
                        *cfg.headers] + ([("Content-Encoding", "gzip")] if cfg.gzip else [])
        self._warned = -math.inf  # the first problem is always logged

    async def __call__(self, spans: list[bytes]) -> None:
        body = otlp.export_request(self._resource, self._scope, spans)
        if self.cfg.gzip:
            body = gzip.compress(body, 6)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.timeout
        delay = 0.5
        while True:
            try:
                resp = await self.client.request("POST", self.url, self.headers, body,
                                                 timeout=max(deadline - loop.time(), 0.001))
                problem = None if 200 <= resp.status < 300 else f"the collector answered {resp.status}"
                retry = resp.status in _RETRY_STATUS
            except ClientError as exc:  # refused, reset, timed out: worth another try; a TLS failure is not
                problem, retry = exc.detail, not isinstance(exc.__cause__, ssl.SSLError)
            if problem is None:
                return
            if not retry or loop.time() + delay >= deadline:
                self._warn(f"dropped {len(spans)} spans: export to {self.url} failed: {problem}")
                return
            await asyncio.sleep(delay)
            delay *= 2

    def _warn(self, msg: str) -> None:
        now = time.monotonic()
        if now - self._warned >= _WARN_EVERY:
            self._warned = now
            log.warning("tracing: %s", msg)

    async def aclose(self) -> None:
        await self.client.aclose()


class BatchExporter:
    """Holds encoded spans in ``queue`` and hands them to ``send`` in batches, from tasks on the running loop.

    The tracer appends to ``queue`` itself and calls :meth:`poke` once the queue holds ``poke_at``
    spans: 1 when nothing is scheduled, a batch when a timer is, and ``max_queue`` plus a batch while
    an export is in flight. One batch is sent at a time; while it is, spans beyond ``max_queue`` are
    dropped (and counted, and logged once per export), a batch at a time, so a slow or absent
    collector adds no work per request.
    """

    def __init__(self, send: Send, *, max_batch: int = 512, max_queue: int = 2048,
                 schedule_delay: float = 5.0, on_close: Callable[[], Awaitable[None]] | None = None) -> None:
        self._send = send
        self._on_close = on_close
        self.max_batch = max_batch
        self.max_queue = max(max_queue, max_batch)
        self.schedule_delay = schedule_delay
        #: Encoded spans waiting; appended to by the tracer, never replaced (the tracer holds it).
        self.queue: list[bytes] = []
        #: The queue length at which the tracer calls poke() (see the class docstring).
        self.poke_at = 1
        self.dropped = 0
        self._task: asyncio.Task[None] | None = None
        self._sending = 0  # spans in the batch being sent
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    def poke(self) -> None:
        q = self.queue
        if self._closed:
            self.dropped += len(q)
            q.clear()
            self._state()
            return
        if len(q) >= self.max_batch:
            if self._task is None:
                self._start()
            elif len(q) > self.max_queue:  # still sending the last batch: the collector is behind
                self.dropped += len(q) - self.max_queue
                del q[self.max_queue:]
        elif self._timer is None and self._task is None and q:
            self._timer = asyncio.get_running_loop().call_later(self.schedule_delay, self._on_timer)
        self._state()

    def _state(self) -> None:
        if self._closed or (self._task is None and self._timer is None):
            self.poke_at = 1
        elif self._task is not None:
            self.poke_at = self.max_queue + self.max_batch
        else:
            self.poke_at = self.max_batch

    def _on_timer(self) -> None:
        self._timer = None
        if self.queue and self._task is None:
            self._start()
        self._state()

    def _start(self) -> None:
        anchor()  # span times: re-anchor the monotonic clock to the wall clock once per batch
        q = self.queue
        batch = q[:self.max_batch]
        del q[:self.max_batch]
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._sending = len(batch)
        self._task = asyncio.get_running_loop().create_task(self._run(batch))

    async def _run(self, batch: list[bytes]) -> None:
        try:
            await self._send(batch)
        except Exception:  # a bug in a sink must not stop tracing
            log.exception("tracing: exporting %d spans failed", len(batch))
        finally:
            self._task = None
        if self.dropped:
            log.warning("tracing: dropped %d spans: the collector is slower than the traffic (queue of %d)",
                        self.dropped, self.max_queue)
            self.dropped = 0
        if len(self.queue) >= self.max_batch or (self._closed and self.queue):
            self._start()
        elif self.queue and not self._closed:
            self._timer = asyncio.get_running_loop().call_later(self.schedule_delay, self._on_timer)
        self._state()

    async def flush(self) -> None:
        """Send everything queued now (waits for the batch being sent)."""
        if self._closed:
            self.poke()  # drops (and counts) what was queued after aclose
            return
        while self._task is not None or self.queue:
            if self._task is None:
                self._start()
            task = self._task
            assert task is not None
            await asyncio.shield(task)
        self._state()

    async def aclose(self, wait: float = 5.0) -> None:
        """Flush (waiting at most ``wait`` seconds) and stop; spans queued later are dropped."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            await asyncio.wait_for(self.flush(), wait)
        except TimeoutError:
            log.warning("tracing: %d spans not exported at shutdown (the collector did not answer in %gs)",
                        len(self.queue) + (self._sending if self._task is not None else 0), wait)
            task = self._task
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._closed = True
        self._state()  # every later request pokes, and poke() drops what it finds
        if self._on_close is not None:
            await self._on_close()
