"""The SDK-free OTLP exporter: OTEL_* configuration, samplers and W3C parsing against the SDK, batching and
retries against a fake collector, and `graph-router serve` exporting to it as a real process."""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import random
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import sampling as sdk_sampling
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.trace.span import NonRecordingSpan, SpanContext, TraceFlags

from graph_router.http.messages import HttpRequest
from graph_router.telemetry import Telemetry, otlp
from graph_router.telemetry.export import BatchExporter, ExportConfig, ExportConfigError, HttpSink
from graph_router.telemetry.sampling import Sampler, parse_traceparent
from graph_router.telemetry.spans import OtlpTracer, TraceState

from ..conftest import ONE_STEP_GRAPH as GRAPH
from ..conftest import ROOT, Backend, RouterProcess
from ..support.backends import serve_handler
from ..support.ports import refused_port
from .otlp_decode import DecodedSpan, Ids, decode

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
LOW64 = (1 << 64) - 1
LOGGER = "graph_router.telemetry"


# --- ExportConfig.from_env --------------------------------------------------------------------------------


def config_error(env: dict[str, str]) -> str:
    with pytest.raises(ExportConfigError) as info:
        ExportConfig.from_env(env)
    return str(info.value)


def test_config_defaults_match_the_sdk() -> None:
    cfg = ExportConfig.from_env({})
    assert cfg == ExportConfig("http://localhost:4318/v1/traces", (), 10.0, False, None, 5.0, 2048, 512)
    assert cfg.ssl_context is None


@pytest.mark.parametrize(("env", "endpoint"), [
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, "http://c:4318/v1/traces"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}, "http://c:4318/v1/traces"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://c/base/"}, "https://c/base/v1/traces"),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:9/custom"}, "http://c:9/custom"),  # as is
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t/x/", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://b"},
     "http://t/x/"),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": " ", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://b"},
     "http://b/v1/traces"),
])
def test_config_endpoint(env: dict[str, str], endpoint: str) -> None:
    assert ExportConfig.from_env(env).endpoint == endpoint


def test_config_invalid_endpoint_names_the_variable() -> None:
    assert config_error({"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4318"}) == (
        "OTEL_EXPORTER_OTLP_ENDPOINT: invalid URL 'localhost:4318/v1/traces': scheme must be http or https, "
        "got 'localhost'")
    assert config_error({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://b"}
                        ) == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: invalid URL 'http://': missing host"


def test_config_headers() -> None:
    raw = "api-key=s%3Dcr%2Ct, x-tenant = a%20b ,,Authorization=Basic abc==,x%2Dy=1"
    assert ExportConfig.from_env({"OTEL_EXPORTER_OTLP_HEADERS": raw}).headers == (
        ("api-key", "s=cr,t"), ("x-tenant", "a b"), ("Authorization", "Basic abc=="), ("x-y", "1"))
    both = {"OTEL_EXPORTER_OTLP_HEADERS": "a=1", "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "b=2"}
    assert ExportConfig.from_env(both).headers == (("b", "2"),)
    assert config_error({"OTEL_EXPORTER_OTLP_HEADERS": "a=1,oops"}) == (
        "OTEL_EXPORTER_OTLP_HEADERS: 'oops' is not name=value (a comma-separated list, values URL-encoded)")
    assert config_error({"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "=v"}) == (
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS: '=v' is not name=value (a comma-separated list, values URL-encoded)")
    assert config_error({"OTEL_EXPORTER_OTLP_HEADERS": "bad name=v"}).startswith(
        "OTEL_EXPORTER_OTLP_HEADERS: 'bad name=v' is not name=value")


def test_config_timeout() -> None:
    assert ExportConfig.from_env({"OTEL_EXPORTER_OTLP_TIMEOUT": "2.5"}).timeout == 2.5  # seconds, as the SDK
    both = {"OTEL_EXPORTER_OTLP_TIMEOUT": "2", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "3"}
    assert ExportConfig.from_env(both).timeout == 3.0
    assert config_error({"OTEL_EXPORTER_OTLP_TIMEOUT": "soon"}) == (
        "OTEL_EXPORTER_OTLP_TIMEOUT='soon': expected a number")
    assert config_error({"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "0"}) == (
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT='0': expected a number >= 0.001")
    assert config_error({"OTEL_EXPORTER_OTLP_TIMEOUT": "nan"}) == (
        "OTEL_EXPORTER_OTLP_TIMEOUT='nan': expected a finite number")


def test_config_compression() -> None:
    assert ExportConfig.from_env({"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"}).gzip is True
    assert ExportConfig.from_env({"OTEL_EXPORTER_OTLP_COMPRESSION": "GZIP"}).gzip is True  # the SDK lower-cases
    assert ExportConfig.from_env({"OTEL_EXPORTER_OTLP_COMPRESSION": "none"}).gzip is False
    both = {"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "none"}
    assert ExportConfig.from_env(both).gzip is False
    assert config_error({"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "zstd"}) == (
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION='zstd': expected gzip or none")


def test_config_protocol() -> None:
    assert ExportConfig.from_env({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}).endpoint.endswith("/v1/traces")
    tail = ": graph-router exports OTLP over HTTP with protobuf; set it to http/protobuf (the collector's port 4318)"
    assert config_error({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}) == "OTEL_EXPORTER_OTLP_PROTOCOL='grpc'" + tail
    assert config_error({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"}) == (
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL='http/json'" + tail)
    ok = {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}
    assert ExportConfig.from_env(ok).gzip is False  # the traces-specific variable wins


def test_config_batch_processor_variables() -> None:
    env = {"OTEL_BSP_SCHEDULE_DELAY": "250", "OTEL_BSP_MAX_QUEUE_SIZE": "100", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "10"}
    cfg = ExportConfig.from_env(env)
    assert (cfg.schedule_delay, cfg.max_queue, cfg.max_batch) == (0.25, 100, 10)
    assert ExportConfig.from_env({"OTEL_BSP_SCHEDULE_DELAY": "0"}).schedule_delay == 0.0
    assert config_error({"OTEL_BSP_SCHEDULE_DELAY": "-1"}) == "OTEL_BSP_SCHEDULE_DELAY='-1': expected a number >= 0"
    assert config_error({"OTEL_BSP_MAX_QUEUE_SIZE": "0"}) == "OTEL_BSP_MAX_QUEUE_SIZE='0': expected a number >= 1"
    assert config_error({"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "ten"}) == (
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE='ten': expected a number")
    # nan/inf used to escape as a bare ValueError from int() (a traceback from `serve`) or arm an endless timer
    assert config_error({"OTEL_BSP_MAX_QUEUE_SIZE": "nan"}) == "OTEL_BSP_MAX_QUEUE_SIZE='nan': expected a finite number"
    assert config_error({"OTEL_BSP_SCHEDULE_DELAY": "1e400"}) == (
        "OTEL_BSP_SCHEDULE_DELAY='1e400': expected a finite number")


def test_config_certificates(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.pem")
    msg = config_error({"OTEL_EXPORTER_OTLP_CERTIFICATE": missing})
    assert msg.startswith("OTEL_EXPORTER_OTLP_CERTIFICATE: cannot load: ") and "No such file" in msg
    msg = config_error({"OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE": missing,
                        "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY": missing})
    assert msg.startswith("OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE / OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY: "
                          "cannot load: ")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    assert config_error({"OTEL_EXPORTER_OTLP_CERTIFICATE": str(garbage)}).startswith(
        "OTEL_EXPORTER_OTLP_CERTIFICATE: cannot load: ")
    cafile = ssl.get_default_verify_paths().cafile
    if cafile is None or not os.path.exists(cafile):
        pytest.skip("no system CA bundle to load")
    cfg = ExportConfig.from_env({"OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": cafile})
    assert isinstance(cfg.ssl_context, ssl.SSLContext) and cfg.ssl_context.cert_store_stats()["x509_ca"] > 0


# --- Sampler ----------------------------------------------------------------------------------------------


def remote_parent(trace_id: int, sampled: bool) -> Any:
    sc = SpanContext(trace_id, int(PARENT, 16), is_remote=True, trace_flags=TraceFlags(1 if sampled else 0))
    return otel_trace.set_span_in_context(NonRecordingSpan(sc))


def sdk_decision(sampler: sdk_sampling.Sampler, trace_id: int, parent: bool | None) -> bool:
    ctx = None if parent is None else remote_parent(trace_id, parent)
    return sampler.should_sample(ctx, trace_id, "s").decision == sdk_sampling.Decision.RECORD_AND_SAMPLE


def test_ratio_sampler_decides_as_the_sdk_on_random_and_boundary_ids() -> None:
    ours, sdk = Sampler("traceidratio", 0.25), sdk_sampling.TraceIdRatioBased(0.25)
    assert ours.bound == sdk.bound
    rng = random.Random(20261129)
    ids = [rng.getrandbits(128) for _ in range(200)]
    ids += [sdk.bound - 1, sdk.bound, (7 << 64) | (sdk.bound - 1), (7 << 64) | sdk.bound, 1, LOW64]
    decisions = [ours.sample(None, t & LOW64) for t in ids]
    assert decisions == [sdk_decision(sdk, t, None) for t in ids]
    assert 20 < sum(decisions[:200]) < 80  # both outcomes occur: the comparison means something
    assert decisions[-6:] == [True, False, True, False, True, False]
    for ratio in (0.0, 1e-9, 0.5, 0.999, 1.0):
        assert Sampler("traceidratio", ratio).bound == sdk_sampling.TraceIdRatioBased(ratio).bound


class NullExporter:
    def __init__(self) -> None:
        self.queue: list[bytes] = []
        self.poke_at = 1 << 30

    def poke(self) -> None:
        pass

    async def flush(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def test_tracer_start_samples_new_traces_as_the_sdk_and_sampled_out_ones_still_propagate() -> None:
    """``OtlpTracer.start`` draws ids and decides inline; the decision must be the SDK's on the id it sends."""
    tracer = OtlpTracer(NullExporter(), Sampler("parentbased_traceidratio", 0.25))
    sdk = sdk_sampling.ParentBasedTraceIdRatio(0.25)
    req = HttpRequest("POST", "/", [("content-type", "application/json")], b"{}", "1.1", "127.0.0.1")
    kept = 0
    for _ in range(2000):
        got = tracer.start("g", req)
        if isinstance(got, TraceState):
            kept += 1
            trace_id = int(got.hex, 16)
            assert sdk_decision(sdk, trace_id, None)
        else:
            traceparent, tracestate = got
            version, trace, span, flags = traceparent.split("-")
            assert (version, len(trace), len(span), flags, tracestate) == ("00", 32, 16, "00", None)
            assert int(span, 16) != 0 and not sdk_decision(sdk, int(trace, 16), None)
    assert 400 < kept < 600  # a quarter, give or take
    # a caller's sampled-out context: its trace id and tracestate go on, under a new parent span id
    req = HttpRequest("POST", "/", [("traceparent", f"00-{T}-{P}-00"), ("tracestate", "a=1")], b"{}", "1.1", "x")
    traceparent, tracestate = tracer.start("g", req)  # type: ignore[misc]
    assert traceparent.startswith(f"00-{T}-") and traceparent.endswith("-00") and P not in traceparent
    assert tracestate == "a=1"
    req.headers[0] = ("traceparent", f"00-{T}-{P}-01")
    st = tracer.start("g", req)
    assert isinstance(st, TraceState) and st.hex == T and st.parent == bytes.fromhex(P)


def test_a_sampled_out_request_still_has_its_trace_id_for_the_access_log() -> None:
    tel = Telemetry(OtlpTracer(NullExporter(), Sampler("always_off")), metrics=False)
    req = HttpRequest("POST", "/", [("traceparent", f"00-{T}-{P}-01")], b"{}", "1.1", "127.0.0.1")
    got = tel.start("g", req)  # always_off is not parent-based: the caller's sampled flag is overruled
    assert type(got) is tuple and tel.trace_id(got) == T
    tel.finish(got, "g", 200, 0.001)  # records nothing, raises nothing
    assert tel.tracer is not None and tel.tracer.queue == []


@pytest.mark.parametrize(("kind", "sdk"), [
    ("always_on", sdk_sampling.ALWAYS_ON),
    ("always_off", sdk_sampling.ALWAYS_OFF),
    ("traceidratio", sdk_sampling.TraceIdRatioBased(0.25)),
    ("parentbased_always_on", sdk_sampling.ParentBased(sdk_sampling.ALWAYS_ON)),
    ("parentbased_always_off", sdk_sampling.ParentBased(sdk_sampling.ALWAYS_OFF)),
    ("parentbased_traceidratio", sdk_sampling.ParentBasedTraceIdRatio(0.25)),
])
def test_each_sampler_kind_matches_the_sdk_with_and_without_a_parent(kind: str, sdk: sdk_sampling.Sampler) -> None:
    ours = Sampler.from_env({"OTEL_TRACES_SAMPLER": kind, "OTEL_TRACES_SAMPLER_ARG": "0.25"})
    assert ours.kind == kind
    rng = random.Random(kind)
    for _ in range(60):
        tid = rng.getrandbits(128)
        for parent in (None, True, False):
            assert ours.sample(parent, tid & LOW64) == sdk_decision(sdk, tid, parent), (tid, parent)


def test_parent_based_follows_the_parent_flag() -> None:
    s = Sampler.from_env({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"})
    assert s.sample(True, 0) is True and s.sample(False, 0) is False and s.sample(None, 0) is False
    s = Sampler.from_env({})
    assert s.kind == "parentbased_always_on" and s.sample(False, 0) is False and s.sample(None, LOW64) is True


def test_sampler_from_env_values_and_errors() -> None:
    assert Sampler.from_env({"OTEL_TRACES_SAMPLER": " Always_Off "}).kind == "always_off"
    assert Sampler.from_env({"OTEL_TRACES_SAMPLER": "traceidratio"}).ratio == 1.0  # no arg: the SDK's 1.0
    assert Sampler.from_env({"OTEL_TRACES_SAMPLER": "always_on", "OTEL_TRACES_SAMPLER_ARG": "x"}).ratio == 1.0
    for arg in ("x", "1.5", "-0.1", "nan"):
        with pytest.raises(ValueError) as info:
            Sampler.from_env({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": arg})
        assert str(info.value) == f"OTEL_TRACES_SAMPLER_ARG={arg!r}: expected a ratio between 0 and 1"
    with pytest.raises(ValueError) as info:
        Sampler.from_env({"OTEL_TRACES_SAMPLER": "sometimes"})
    assert str(info.value) == ("OTEL_TRACES_SAMPLER='sometimes': expected one of always_on, always_off, "
                               "traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio")


# --- parse_traceparent vs the SDK's propagator ------------------------------------------------------------

T, P = TRACE, PARENT
BIG_MEMBERS = ",".join(f"k{i:02d}{'a' * 145}={'v' * 256}" for i in range(21))  # 405 chars a member
TRACEPARENTS: list[tuple[str, list[str], list[str]]] = [
    # (case, traceparent values in order, tracestate values in order)
    ("valid sampled", [f"00-{T}-{P}-01"], []),
    ("valid unsampled", [f"00-{T}-{P}-00"], []),
    ("flags 03", [f"00-{T}-{P}-03"], []),
    ("uppercase hex", [f"00-{T.upper()}-{P}-01"], []),
    ("version ff", [f"ff-{T}-{P}-01"], []),
    ("version 00 with extra field", [f"00-{T}-{P}-01-extra"], []),
    ("future version with extra field", [f"01-{T}-{P}-01-what-the-future-holds"], []),
    ("future version", [f"cc-{T}-{P}-00"], []),
    ("all-zero trace id", [f"00-{'0' * 32}-{P}-01"], []),
    ("all-zero span id", [f"00-{T}-{'0' * 16}-01"], []),
    ("short trace id", [f"00-{T[:-1]}-{P}-01"], []),
    ("too long", [f"01-{T}-{P}-01-" + "x" * 500], []),
    ("just short enough", [f"01-{T}-{P}-01-" + "x" * 457], []),
    ("whitespace around", [f" \t00-{T}-{P}-01 \t"], []),
    ("trailing garbage", [f"00-{T}-{P}-01 x"], []),
    ("empty", [""], []),
    ("two headers, first wins", [f"00-{T}-{P}-01", f"00-{'1' * 32}-{'2' * 16}-00"], []),
    ("two headers, first invalid", ["garbage", f"00-{T}-{P}-01"], []),
    ("tracestate joined", [f"00-{T}-{P}-01"], ["a=1", "b=2,c=3"]),
    ("tracestate blanks and empty members", [f"00-{T}-{P}-01"], [" a=1 ,, b=x y\t", ",c@v=3,"]),
    ("tracestate value over 256 chars", [f"00-{T}-{P}-01"], ["a=" + "x" * 257]),
    ("tracestate of 600 chars", [f"00-{T}-{P}-01"], ["a=" + "x" * 250, "b=" + "y" * 250, "c=" + "z" * 95]),
    ("tracestate of 20 big members", [f"00-{T}-{P}-01"], [BIG_MEMBERS[:20 * 406 - 1]]),
    ("tracestate over 8192 chars", [f"00-{T}-{P}-01"], [BIG_MEMBERS]),
    ("tracestate malformed member", [f"00-{T}-{P}-01"], ["a=1", "@@bad"]),
    ("tracestate upper-case key", [f"00-{T}-{P}-01"], ["A=1"]),
    ("tracestate repeated key", [f"00-{T}-{P}-01"], ["a=1", "a=2"]),
    ("tracestate of 32 members", [f"00-{T}-{P}-01"], [",".join(f"k{i}=v" for i in range(32))]),
    ("tracestate of 33 members", [f"00-{T}-{P}-01"], [",".join(f"k{i}=v" for i in range(33))]),
    ("tracestate without traceparent", [], ["a=1"]),
]


@pytest.mark.parametrize(("traceparents", "tracestates"), [(tp, ts) for _, tp, ts in TRACEPARENTS],
                         ids=[case for case, _, _ in TRACEPARENTS])
def test_parse_traceparent_agrees_with_the_sdk_propagator(traceparents: list[str], tracestates: list[str]) -> None:
    headers = [("content-type", "application/json")] + [("traceparent", v) for v in traceparents]
    headers += [("tracestate", v) for v in tracestates]
    ours = parse_traceparent(HttpRequest("POST", "/", headers, b"{}", "1.1", "127.0.0.1"))
    carrier: dict[str, list[str]] = {}
    for k, v in headers:
        carrier.setdefault(k, []).append(v)
    sc = otel_trace.get_current_span(TraceContextTextMapPropagator().extract(carrier)).get_span_context()
    if not sc.is_valid:
        assert ours is None
        return
    assert ours is not None
    tid, parent, sampled, tracestate = ours
    assert (int.from_bytes(tid, "big"), int.from_bytes(parent, "big"), sampled) == (
        sc.trace_id, sc.span_id, sc.trace_flags.sampled)
    assert (tracestate or "") == sc.trace_state.to_header()


def test_parse_traceparent_exact_values() -> None:
    headers = [("traceparent", f"00-{T}-{P}-01"), ("tracestate", "a=1"), ("tracestate", "b=2")]
    got = parse_traceparent(HttpRequest("GET", "/", headers, b"", "1.1", "127.0.0.1"))
    assert got == (bytes.fromhex(T), bytes.fromhex(P), True, "a=1,b=2")
    headers[1:] = [("tracestate", " a=1 ,, b=2\t"), ("tracestate", "@@bad")]  # one bad member drops it all
    assert parse_traceparent(HttpRequest("GET", "/", headers, b"", "1.1", "127.0.0.1")) == (
        bytes.fromhex(T), bytes.fromhex(P), True, None)
    headers[2:] = []
    assert parse_traceparent(HttpRequest("GET", "/", headers, b"", "1.1", "127.0.0.1")) == (
        bytes.fromhex(T), bytes.fromhex(P), True, "a=1,b=2")
    assert parse_traceparent(HttpRequest("GET", "/", [("traceparent", f"00-{T}-{P}-00")], b"", "1.1", "x")) == (
        bytes.fromhex(T), bytes.fromhex(P), False, None)


# --- HttpSink + BatchExporter against a fake collector ----------------------------------------------------


@dataclass
class Got:
    path: str
    headers: CIMultiDict[str]
    body: bytes  # as sent: still gzipped when Content-Encoding says so

    def spans(self) -> list[DecodedSpan]:
        gz = self.headers.get("Content-Encoding") == "gzip"
        return decode(gzip.decompress(self.body) if gz else self.body)

    def names(self) -> list[str]:
        return [s.name for s in self.spans()]


@dataclass
class Collector:
    """An OTLP/HTTP collector that records each request and answers as scripted: (status, delay) each."""

    url: str = ""
    got: list[Got] = field(default_factory=list)
    script: list[tuple[int, float]] = field(default_factory=list)
    peers: set[int] = field(default_factory=set)  # the exporters' source ports (one pool per process)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.got.append(Got(request.path_qs, CIMultiDict(request.headers), body))
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        self.peers.add(peer[1] if peer else 0)
        status, delay = self.script.pop(0) if self.script else (200, 0.0)
        if delay:
            await asyncio.sleep(delay)
        return web.Response(status=status, body=b"", content_type="application/x-protobuf")

    def spans(self) -> list[DecodedSpan]:
        return [s for g in self.got for s in g.spans()]


@pytest.fixture
async def collector(aiohttp_server: Any) -> Collector:
    c = Collector()
    # keep gzip bodies as they came
    c.url = await serve_handler(aiohttp_server, c.handle, handler_args={"auto_decompress": False})
    return c


RESOURCE = {"service.name": "test-svc", "host.name": "h1"}
SCOPE = ("graph_router", "9.9.9")
MakeExporter = Callable[..., BatchExporter]


@pytest.fixture
async def make_exporter() -> AsyncIterator[MakeExporter]:
    made: list[BatchExporter] = []

    def make(endpoint: str, *, timeout: float = 5.0, gzip: bool = False, headers: tuple[tuple[str, str], ...] = (),
             max_batch: int = 512, max_queue: int = 2048, schedule_delay: float = 60.0) -> BatchExporter:
        cfg = ExportConfig(endpoint=endpoint, headers=headers, timeout=timeout, gzip=gzip)
        sink = HttpSink(cfg, otlp.resource(RESOURCE), otlp.scope(*SCOPE))
        exp = BatchExporter(sink, max_batch=max_batch, max_queue=max_queue, schedule_delay=schedule_delay,
                            on_close=sink.aclose)
        made.append(exp)
        return exp

    yield make
    for exp in made:
        await exp.aclose(wait=2.0)


def span(i: int) -> bytes:
    tid, sid = (0xABC0 + i).to_bytes(16, "big"), (0x50 + i).to_bytes(8, "big")
    # b"\x0a\x10": the Span.trace_id field's tag and length
    return otlp.span(b"\x0a\x10" + tid, sid, None, 1_000_000 + i, 2_000_000 + i, otlp.FLAGS_LOCAL,
                     otlp.static_part(f"s{i}", otlp.INTERNAL, {"i": i}))


def add(exp: BatchExporter, *indexes: int) -> None:
    """Queue spans as OtlpTracer does: append, and poke once the queue holds ``poke_at`` spans."""
    for i in indexes:
        exp.queue.append(span(i))
        if len(exp.queue) >= exp.poke_at:
            exp.poke()


def sink_of(exp: BatchExporter) -> HttpSink:
    sink = exp._send
    assert isinstance(sink, HttpSink)
    return sink


async def until(cond: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


async def test_export_posts_protobuf_with_headers_resource_and_scope(collector: Collector,
                                                                     make_exporter: MakeExporter) -> None:
    exp = make_exporter(collector.url + "/v1/traces", headers=(("api-key", "s=cr,t"), ("x-tenant", "a b")))
    add(exp, 0, 1, 2)
    assert collector.got == []  # waits for the schedule delay (60 s) or a flush
    await exp.flush()
    [got] = collector.got
    assert got.path == "/v1/traces"
    assert got.headers["Content-Type"] == "application/x-protobuf"
    assert got.headers["api-key"] == "s=cr,t" and got.headers["x-tenant"] == "a b"
    assert "Content-Encoding" not in got.headers
    spans = got.spans()
    assert [(s.name, s.context.trace_id, s.context.span_id, s.attributes, s.start_time, s.end_time)
            for s in spans] == [(f"s{i}", 0xABC0 + i, 0x50 + i, {"i": i}, 1_000_000 + i, 2_000_000 + i)
                                for i in range(3)]
    assert all(s.resource == RESOURCE and s.scope == SCOPE for s in spans)
    assert exp.queue == [] and exp.poke_at == 1


async def test_gzip_compression(collector: Collector, make_exporter: MakeExporter) -> None:
    exp = make_exporter(collector.url + "/v1/traces", gzip=True)
    add(exp, 0, 1)
    await exp.flush()
    [got] = collector.got
    assert got.headers["Content-Encoding"] == "gzip" and got.body[:2] == b"\x1f\x8b"
    assert got.names() == ["s0", "s1"]


@pytest.mark.parametrize("status", [503, 429])
async def test_retries_a_busy_collector_then_succeeds(collector: Collector, make_exporter: MakeExporter,
                                                      caplog: pytest.LogCaptureFixture, status: int) -> None:
    collector.script = [(status, 0.0)]
    exp = make_exporter(collector.url + "/v1/traces", timeout=3.0)
    add(exp, 0, 1)
    await exp.flush()
    assert [g.names() for g in collector.got] == [["s0", "s1"], ["s0", "s1"]]
    assert collector.got[0].body == collector.got[1].body and warnings_of(caplog) == []


async def test_400_drops_the_batch_without_retrying(collector: Collector, make_exporter: MakeExporter,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    collector.script = [(400, 0.0)]
    exp = make_exporter(collector.url + "/v1/traces", timeout=3.0)
    add(exp, 0, 1)
    await exp.flush()  # awaits the sink, retries included
    assert [g.names() for g in collector.got] == [["s0", "s1"]]
    assert warnings_of(caplog) == [
        f"tracing: dropped 2 spans: export to {collector.url}/v1/traces failed: the collector answered 400"]
    add(exp, 2)
    await exp.flush()  # the exporter keeps working
    assert [g.names() for g in collector.got] == [["s0", "s1"], ["s2"]]


@pytest.mark.serial  # 0.5 s of slack: timing bounds that need the cores to itself
async def test_collector_down_is_bounded_by_the_timeout(make_exporter: MakeExporter,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{refused_port()}/v1/traces"
    exp = make_exporter(url, timeout=1.2)
    add(exp, 0)
    t0 = time.monotonic()
    await exp.flush()
    assert time.monotonic() - t0 < 1.2 + 0.5
    assert sink_of(exp).client.connects == 2  # now, then after the 0.5 s back-off; 1 s more would pass 1.2 s
    [warning] = warnings_of(caplog)
    assert warning.startswith(f"tracing: dropped 1 spans: export to {url} failed: ")
    assert "connection refused" in warning


@pytest.mark.serial  # 0.5 s of slack: timing bounds that need the cores to itself
async def test_a_collector_slower_than_the_timeout(collector: Collector, make_exporter: MakeExporter,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    collector.script = [(200, 1.0)]
    exp = make_exporter(collector.url + "/v1/traces", timeout=0.4)
    add(exp, 0)
    t0 = time.monotonic()
    await exp.flush()
    assert time.monotonic() - t0 < 0.9 and len(collector.got) == 1  # no time left for a retry
    assert warnings_of(caplog) == [
        f"tracing: dropped 1 spans: export to {collector.url}/v1/traces failed: timeout awaiting headers"]


@pytest.mark.serial  # 0.7 s of slack: timing bounds that need the cores to itself
async def test_shutdown_bounded_by_its_wait_counts_the_batch_in_flight(collector: Collector,
                                                                       make_exporter: MakeExporter,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    collector.script = [(200, 3.0)]  # hangs past the close's wait
    exp = make_exporter(collector.url + "/v1/traces", timeout=10.0, max_batch=2)
    add(exp, 0, 1)  # a full batch: in flight at once
    add(exp, 2)
    t0 = time.monotonic()
    await exp.aclose(wait=0.3)
    assert time.monotonic() - t0 < 1.0
    assert warnings_of(caplog) == [
        "tracing: 3 spans not exported at shutdown (the collector did not answer in 0.3s)"]


async def test_batches_are_split_at_max_batch(collector: Collector, make_exporter: MakeExporter) -> None:
    exp = make_exporter(collector.url + "/v1/traces", max_batch=3)
    add(exp, *range(7))
    await exp.flush()
    assert [g.names() for g in collector.got] == [["s0", "s1", "s2"], ["s3", "s4", "s5"], ["s6"]]


async def test_queue_overflow_while_exporting_drops_and_warns(collector: Collector, make_exporter: MakeExporter,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    collector.script = [(200, 0.3)]
    exp = make_exporter(collector.url + "/v1/traces", max_batch=2, max_queue=4)
    add(exp, 0, 1)  # a full batch: sent at once, and the collector takes 0.3 s
    await until(lambda: len(collector.got) == 1)
    assert exp.poke_at == 4 + 2  # while it is in flight the tracer pokes once per batch, not per request
    add(exp, *range(2, 12))  # 10 more while it is in flight: 4 fit in the queue
    assert exp.dropped == 6 and len(exp.queue) == 4
    await exp.flush()
    assert [g.names() for g in collector.got] == [["s0", "s1"], ["s2", "s3"], ["s4", "s5"]]
    assert warnings_of(caplog) == [
        "tracing: dropped 6 spans: the collector is slower than the traffic (queue of 4)"]
    assert exp.dropped == 0  # reset once reported


async def test_timer_exports_after_the_schedule_delay(collector: Collector, make_exporter: MakeExporter) -> None:
    exp = make_exporter(collector.url + "/v1/traces", schedule_delay=0.05)
    add(exp, 0, 1)
    assert exp.poke_at == exp.max_batch and collector.got == []  # a timer is set
    await until(lambda: len(collector.got) == 1, within=3.0)
    assert collector.got[0].names() == ["s0", "s1"]
    await until(lambda: exp.poke_at == 1, within=2.0)
    add(exp, 2)  # the next span arms the timer again
    await until(lambda: len(collector.got) == 2, within=3.0)
    assert collector.got[1].names() == ["s2"]


async def test_aclose_flushes_then_later_spans_are_dropped(collector: Collector,
                                                           make_exporter: MakeExporter) -> None:
    exp = make_exporter(collector.url + "/v1/traces", max_batch=2)
    add(exp, 0, 1, 2)
    await exp.aclose()
    assert [g.names() for g in collector.got] == [["s0", "s1"], ["s2"]]
    with pytest.raises(RuntimeError, match="HttpClient is closed"):  # on_close closed the sink's client
        await sink_of(exp).client.request("GET", sink_of(exp).url, [], b"", timeout=1)
    exp.queue.extend([span(3), span(4), span(5)])
    exp.poke()
    assert exp.dropped == 3 and exp.queue == []
    assert exp.poke_at == 1  # so the tracer pokes after every request and nothing piles up
    exp.queue.append(span(6))
    await exp.flush()  # after aclose: dropped, never sent through the closed client
    assert exp.dropped == 4 and exp.queue == []
    await asyncio.sleep(0.05)
    assert len(collector.got) == 2


@pytest.fixture
async def tls_collector(cert: tuple[str, str]) -> AsyncIterator[Collector]:
    """The collector behind https, with the self-signed certificate of ``cert``."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*cert)
    c = Collector()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", c.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    c.url = f"https://127.0.0.1:{port}"
    yield c
    await runner.cleanup()


async def test_https_collector_trusted_through_otel_certificate(tls_collector: Collector, cert: tuple[str, str],
                                                                caplog: pytest.LogCaptureFixture) -> None:
    env = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": tls_collector.url + "/v1/traces",
           "OTEL_EXPORTER_OTLP_CERTIFICATE": cert[0]}
    for trusted in (True, False):
        cfg = ExportConfig.from_env(env if trusted else {k: v for k, v in env.items() if "CERTIFICATE" not in k})
        sink = HttpSink(cfg, otlp.resource(RESOURCE), otlp.scope(*SCOPE))
        exp = BatchExporter(sink, on_close=sink.aclose)
        add(exp, 7)
        await exp.aclose()
        if trusted:
            assert [s.name for s in tls_collector.spans()] == ["s7"]
    # without the CA the system trust store refuses the self-signed certificate: dropped, and said why
    assert len(tls_collector.got) == 1
    (warning,) = warnings_of(caplog)
    assert warning.startswith(f"tracing: dropped 1 spans: export to {tls_collector.url}/v1/traces failed: ")
    assert "certificate" in warning


# --- `graph-router serve` exporting to the collector ----------------------------------------------------



async def post(url: str, headers: dict[str, str] | None = None) -> int:
    async with aiohttp.ClientSession() as s, s.post(url, json={"instances": [1]}, headers=headers) as r:
        await r.read()
        return r.status


def server_spans(spans: list[DecodedSpan]) -> list[DecodedSpan]:
    return [s for s in spans if s.kind == otel_trace.SpanKind.SERVER]


async def wait_exit(rp: RouterProcess, within: float = 15.0) -> int:
    """Wait for the process without blocking the loop (the collector must keep answering)."""
    deadline = time.monotonic() + within
    while rp.proc.poll() is None:
        assert time.monotonic() < deadline, f"router still running:\n{rp.log()}"
        await asyncio.sleep(0.05)
    return rp.proc.returncode


async def test_serve_exports_spans_to_the_collector(
        tmp_path: Path, collector: Collector, backend_factory: Callable[[], Awaitable[Backend]],
        router_process: Callable[..., RouterProcess]) -> None:
    b = await backend_factory()
    f = tmp_path / "g.yaml"
    f.write_text(GRAPH)
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    rp = router_process(str(f), "--service", f"a={b.predict_url('a')}", "--drain-seconds", "0", env=env)
    assert await post(rp.url) == 200
    assert await post(rp.url, {"traceparent": f"00-{TRACE}-{PARENT}-01"}) == 200
    assert await post(rp.url) == 200
    await until(lambda: len(server_spans(collector.spans())) >= 3, within=10.0)
    await asyncio.sleep(0.3)  # nothing more should come
    spans = collector.spans()
    assert all(g.path == "/v1/traces" and g.headers["Content-Type"] == "application/x-protobuf"
               for g in collector.got)
    servers = server_spans(spans)
    assert [s.name for s in servers] == ["graph g"] * 3
    continued = [s for s in servers if s.parent is not None]
    assert len(continued) == 1
    assert continued[0].parent == Ids(int(TRACE, 16), int(PARENT, 16))
    assert continued[0].context.trace_id == int(TRACE, 16) and continued[0].flags & 0x300 == 0x300  # remote
    assert len({s.context.trace_id for s in servers}) == 3
    clients = [s for s in spans if s.kind == otel_trace.SpanKind.CLIENT]
    assert len(clients) == 3 and all(s.resource["service.name"] == "graph-router" for s in spans)
    # the backend saw one traceparent per call, naming the CLIENT span of that call as the parent
    seen = [(int(tp.split("-")[1], 16), int(tp.split("-")[2], 16))
            for tp in (req.headers.getone("traceparent") for req in b.seen)]
    assert sorted(seen) == sorted((c.context.trace_id, c.context.span_id) for c in clients)
    assert rp.proc.poll() is None
    rp.signal(signal.SIGTERM)
    assert await wait_exit(rp) == 0


async def test_two_workers_export_distinct_ids(
        tmp_path: Path, collector: Collector, backend_factory: Callable[[], Awaitable[Backend]],
        router_process: Callable[..., RouterProcess]) -> None:
    """Forked workers must not share the id generator's state: every trace and span id is unique."""
    b = await backend_factory()
    f = tmp_path / "g.yaml"
    f.write_text(GRAPH)
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "60000"}
    rp = router_process(str(f), "--workers", "2", "--service", f"a={b.predict_url('a')}", "--drain-seconds", "0",
                        env=env)
    await rp.logged("serving 1 graph", 2)
    n = 40
    assert [await post(rp.url) for _ in range(n)] == [200] * n  # a new connection each: both workers serve
    rp.signal(signal.SIGTERM)
    assert await wait_exit(rp) == 0
    spans = collector.spans()
    assert len(server_spans(spans)) == n and len(spans) == 4 * n
    assert len({s.context.trace_id for s in spans}) == n
    assert len({s.context.span_id for s in spans}) == 4 * n
    assert len(collector.peers) == 2  # both workers exported (each from its own connection)


async def test_spans_queued_at_sigterm_are_exported_before_exit(
        tmp_path: Path, collector: Collector, backend_factory: Callable[[], Awaitable[Backend]],
        router_process: Callable[..., RouterProcess]) -> None:
    b = await backend_factory()
    f = tmp_path / "g.yaml"
    f.write_text(GRAPH)
    env = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": collector.url + "/custom/traces", "OTEL_BSP_SCHEDULE_DELAY": "60000",
           "OTEL_SERVICE_NAME": "svc-e2e"}
    rp = router_process(str(f), "--service", f"a={b.predict_url('a')}", "--drain-seconds", "0", env=env)
    assert [await post(rp.url) for _ in range(2)] == [200, 200]
    await asyncio.sleep(0.3)
    assert collector.got == []  # held for the 60 s schedule delay
    rp.signal(signal.SIGTERM)
    assert await wait_exit(rp) == 0
    assert [g.path for g in collector.got] == ["/custom/traces"]
    spans = collector.spans()
    assert sorted(s.name for s in spans) == sorted(["graph g", "node root", "step 0", "call a"] * 2)
    assert {s.resource["service.name"] for s in spans} == {"svc-e2e"}


@pytest.mark.parametrize(("var", "value", "message"), [
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc",
     "OTEL_EXPORTER_OTLP_PROTOCOL='grpc': graph-router exports OTLP over HTTP with protobuf; set it to "
     "http/protobuf (the collector's port 4318)"),
    ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=1,oops",
     "OTEL_EXPORTER_OTLP_HEADERS: 'oops' is not name=value (a comma-separated list, values URL-encoded)"),
])
def test_serve_refuses_bad_otlp_env_with_exit_2(tmp_path: Path, var: str, value: str, message: str) -> None:
    f = tmp_path / "g.yaml"
    f.write_text(GRAPH)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env[var] = value  # --tracing auto: any OTEL_EXPORTER_OTLP_* variable turns OTLP on
    out = subprocess.run([sys.executable, "-m", "graph_router", "serve", str(f), "--service", "a=http://127.0.0.1:9",
                          "--port", "0"], capture_output=True, text=True, timeout=30, cwd=ROOT, env=env)
    assert out.returncode == 2
    assert out.stderr.splitlines() == [f"error: --tracing otlp: {message}"]
    assert out.stdout == ""


# --- the SDK as a destination: spans read back from their OTLP bytes ---------------------------------


def test_sdk_destination_reads_back_every_value_kind_the_writer_writes() -> None:
    """What ``read_span`` gives an SDK processor equals what the official protobuf classes decode."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from graph_router.telemetry.sdk import read_span

    attrs = {"s": "é\u2028x", "t": True, "f": False, "i": 7, "neg": -3, "big": 1 << 62, "x": 0.25,
             "arr": ["a", "b"], "ints": [1, -2]}
    rest = (otlp.static_part("step é", otlp.CLIENT, attrs) + otlp.error_status("it broke")
            + otlp.trace_state("a=1,b=2") + otlp.event(1_700_000_000_000_000_123, "retry", {"n": 2, "why": "503"}))
    tid = bytes.fromhex(TRACE)
    for parent, flags in ((bytes.fromhex(PARENT), otlp.FLAGS_REMOTE), (None, otlp.FLAGS_LOCAL)):
        field = otlp.span(b"\x0a\x10" + tid, b"\x01" * 8, parent, 5, 1 << 63, flags, rest)
        (want,) = decode(otlp.export_request(otlp.resource({}), otlp.scope("s", "1"), [field]))
        got = read_span(field, Resource.get_empty(), InstrumentationScope("s", "1"))
        assert got.name == want.name == "step é"
        assert got.kind.name == want.kind.name == "CLIENT"
        assert got.context is not None and got.context.trace_id == want.context.trace_id
        assert got.context.span_id == want.context.span_id
        assert dict(got.attributes or {}) == want.attributes
        assert (got.status.status_code.name, got.status.description) == ("ERROR", "it broke")
        assert [(e.name, e.timestamp, dict(e.attributes or {})) for e in got.events] == \
            [(e.name, e.timestamp, e.attributes) for e in want.events]
        assert (got.start_time, got.end_time) == (want.start_time, want.end_time) == (5, 1 << 63)
        assert got.context.trace_state.to_header() == want.trace_state == "a=1,b=2"
        if parent is None:
            assert got.parent is None and want.parent is None
        else:
            assert got.parent is not None and want.parent is not None
            assert got.parent.span_id == want.parent.span_id and got.parent.is_remote


def test_cli_builds_the_telemetry_settings_from_the_environment() -> None:
    """The environment is read by the CLI only; telemetry gets plain settings."""
    from graph_router.cli import telemetry_settings

    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_SAMPLER": "traceidratio",
           "OTEL_TRACES_SAMPLER_ARG": "0.5", "PROMETHEUS_MULTIPROC_DIR": "/nowhere",
           "PROMETHEUS_DISABLE_CREATED_SERIES": "True"}
    got = telemetry_settings("otlp", True, env)
    assert got.export.endpoint == "http://127.0.0.1:4318/v1/traces"
    assert (got.sampler.kind, got.sampler.ratio) == ("traceidratio", 0.5)
    assert (got.tracing, got.metrics, got.multiprocess, got.created) == ("otlp", True, True, False)
    assert got.resource["service.name"] == "graph-router"
    off = telemetry_settings("off", False, {})
    assert (off.tracing, off.multiprocess, off.created, off.sampler.kind) == ("off", False, True,
                                                                              "parentbased_always_on")


def test_telemetry_reads_no_environment() -> None:
    """Only the CLI reads the environment: telemetry takes settings. (That telemetry imports neither the CLI
    nor ``process``, where ``ServeConfig`` lives, is CONTRIBUTING.md's layout table, checked by
    tests/test_layering.py.)"""
    import ast

    package = ROOT / "graph_router" / "telemetry"
    for path in sorted(package.glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                assert node.attr not in ("environ", "getenv"), f"{path.name}:{node.lineno} reads the environment"
