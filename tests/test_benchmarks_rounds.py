"""run.py's row sets without wrk, nginx or KServe's binary: rounds, medians, ratios, payload bodies,
the KServe command line, and the aiohttp proxy (started for real against a real aiohttp backend)."""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import run
from benchmarks.benchkit import payload, procs, report, router, wrk
from benchmarks.benchkit.bench import Backends, Job
from benchmarks.benchkit.measure import Settings
from benchmarks.benchkit.rounds import Series, render_series, spread
from benchmarks.benchkit.table import Load, Row, fmt_cpu

ROOT = Path(__file__).resolve().parent.parent


def _row(cpu64: float, cpu1: float | None = None, rps: float = 1000.0, rss: tuple[int, int] = (1024, 2048),
         c: int = 64) -> Row:
    loads = [Load(c, wrk.WrkResult(int(rps * 2), 2.0, 100.0, 150.0, 900.0, 1000.0, 0, 0), cpu64)]
    if cpu1 is not None:
        loads.append(Load(1, wrk.WrkResult(200, 2.0, 50.0, 60.0, 70.0, 80.0, 0, 0), cpu1))
    return Row("r", "p", "v", loads, rss_idle_kb=rss[0], rss_load_kb=rss[1])


def _series(router_name: str, pattern: str, variant: str, *rows: Row) -> Series:
    return Series(f"{router_name}/{pattern}/{variant}", router_name, pattern, variant, list(rows))


def test_cells_are_the_median_and_the_range_over_rounds() -> None:
    assert spread([], fmt_cpu) == "-"
    assert spread([40.0], fmt_cpu) == "40.0 us"
    assert spread([41.0, 39.0, 60.0], fmt_cpu) == "41.0 us (39.0 us-60.0 us)"
    s = _series("graph-router", "1 hop", "w1", _row(40.0, 70.0), _row(39.0, 72.0), _row(60.0, 71.0))
    table = render_series([s], (64, 1)).splitlines()
    assert table[2] == ("| graph-router | 1 hop | w1 | 3 | 1,000 (1,000-1,000) | 100 us (100 us-100 us) "
                        "| 900 us (900 us-900 us) | 40.0 us (39.0 us-60.0 us) | 100 (100-100) | 50 us (50 us-50 us) "
                        "| 70 us (70 us-70 us) | 71.0 us (70.0 us-72.0 us) | 1.0 MB | 2.0 MB | 0 | 0% |  |")


def test_a_skipped_round_is_a_note_not_a_figure() -> None:
    skipped = Row("r", "p", "v", note="skipped: time budget")
    s = _series("graph-router", "1 hop", "w1", _row(40.0), skipped)
    assert s.cpu_median(64) == 40.0
    assert render_series([s], (64,)).splitlines()[2].endswith("| skipped: time budget |")


def test_jobs_run_interleaved_round_after_round() -> None:
    seen: list[str] = []
    bench = SimpleNamespace(run_job=lambda job: seen.append(job.series.router))
    the_run = run.Run.__new__(run.Run)
    the_run.bench = bench  # type: ignore[assignment]
    b = Backends(1, [1], {}, b"")
    jobs = [Job(_series(n, "1 hop", "v"), None, _settings(), b, b"") for n in ("KServe router", "graph-router")]
    the_run.jobs_in_rounds(jobs, 3)
    assert seen == ["KServe router", "graph-router"] * 3


def _settings() -> Settings:
    return Settings(1, 0, (64,), None, Path("post.lua"))


def _fake_run(tables: dict[str, list[Series]], other: router.OtherRouter | None, rounds: int = 3) -> Any:
    args = argparse.Namespace(payload_rounds=1, kserve=Path("router"))
    return SimpleNamespace(tables=tables, other=other, rounds=rounds, args=args, small=_settings(), cpu=1,
                           bench=SimpleNamespace(event_loop="uvloop"), notes=[], jobs_of=lambda rows: [])


def test_tracing_medians_of_three_rounds_and_their_ratios() -> None:
    titles = [router.VARIANTS[v].title for v in run.TRACING_VARIANTS]
    rows = [
        _series("graph-router", "1 hop", titles[0], _row(34.0), _row(30.0), _row(36.0)),
        _series("graph-router", "1 hop", titles[1], _row(38.0), _row(39.1), _row(99.0)),
        _series("graph-router", "1 hop", titles[2], _row(45.0), _row(40.0), _row(43.0)),
    ]
    text = report.tracing_section(_fake_run({"tracing": rows}, None))
    assert "| 1 hop | 34.0 us | 39.1 us | 43.0 us | 1.15x | 1.26x |" in text.splitlines()
    assert "Medians over 3 interleaved round(s); targets: 10% traced <= 1.15x, every request traced <= 1.35x." in text


def test_compare_ratios_come_from_the_same_run() -> None:
    kserve = router.kserve_router(Path("/x/router"))
    rows = [
        _series("nginx proxy_pass", "1 hop", "keepalive upstream", _row(12.0, 30.0)),
        _series("aiohttp server + client", "1 hop", "a", _row(100.0, 200.0)),
        _series("KServe router", "1 hop", "as shipped", _row(120.0, 180.0), _row(130.0, 170.0)),
        _series("graph-router", "1 hop", "w1", _row(36.0, 90.0), _row(39.0, 100.0)),
    ]
    lines = report.compare_section(_fake_run({"compare": rows}, kserve)).splitlines()
    assert "| 1 hop: graph-router / KServe router | 37.5 us | 125.0 us | 0.30x | 95.0 us | 175.0 us | 0.54x |" in lines
    assert "| 1 hop: graph-router / nginx proxy_pass | 37.5 us | 12.0 us | 3.12x | 95.0 us | 30.0 us | 3.17x |" in lines
    assert "| 1 hop: aiohttp server + client / graph-router | 100.0 us | 37.5 us | 2.67x | 200.0 us | 95.0 us " \
           "| 2.11x |" in lines


def test_payload_summary_against_nginx_kserve_and_the_bytes_in_flight() -> None:
    kserve = router.kserve_router(Path("/x/router"))
    mb = 1024
    table = [
        _series("nginx proxy_pass", "1 hop", "8MB", _row(20000.0, rss=(17 * mb, 18 * mb), c=8)),
        _series("KServe router", "1 hop", "8MB", _row(50000.0, c=8)),
        _series("graph-router", "1 hop", "8MB", _row(30000.0, rss=(58 * mb, 58 * mb + 128 * mb), c=8)),
    ]
    text = report.payload_section(_fake_run({"payload 8MB": table}, kserve))
    assert ("| 8MB | 30.00 ms | 20.00 ms | 1.50x | 50.00 ms | 0.60x | 128.0 MB | 64.0 MB | 2.00x |"
            in text.splitlines())
    assert "three times the size" in text


def test_payload_bodies_are_json_of_the_exact_size(tmp_path: Path) -> None:
    for size in payload.SIZES.values():
        for body in (payload.request_body(size), payload.response_body(size)):
            assert len(body) == size
            json.loads(body)
    assert payload.request_body(1024).startswith(b'{"instances":[0.000000,0.007919,')
    with pytest.raises(ValueError, match="needs more than 8 bytes"):
        payload.json_body(8, "instances")
    config = payload.backend_config(tmp_path, tmp_path / "html", [(9001, "a.json"), (9002, "a.json")])
    assert "{{" not in config and "listen 127.0.0.1:9002 backlog=4096;" in config
    assert "try_files /a.json =404;" in config and "error_page 405 =200 $uri;" in config
    assert "client_max_body_size 64m;" in config


def test_kserve_runs_by_default_when_its_binary_exists(tmp_path: Path) -> None:
    assert run.other_router(run.parse_args(["--kserve", str(tmp_path / "absent")])) is None
    binary = tmp_path / "router"
    binary.write_text("")
    other = run.other_router(run.parse_args(["--kserve", str(binary)]))
    assert other is not None and other.kill and other.name == "KServe router"
    spec = '{"nodes":{"root":{"routerType":"Sequence","steps":[{"serviceUrl":"http://127.0.0.1:9/x"}]}}}'
    assert other.argv(8123, spec) == [str(binary), "--graph-json", spec]
    assert other.env(8123) == {"ORACLE_LISTEN_ADDR": "127.0.0.1:8123"}
    assert other.fixed_port is None
    assert run.other_router(run.parse_args(["--kserve", str(binary), "--no-kserve"])) is None
    template = "/opt/r --graph-json {graph_json}"
    cmd = run.other_router(run.parse_args(["--kserve", str(binary), "--compare-with", template]))
    assert cmd is not None and (cmd.name, cmd.fixed_port, cmd.kill) == ("r", 8080, False)
    assert router.KSERVE_ROUTER.parts[-3:] == ("shared", "kserve-router", "router")


def test_sets_and_modes(tmp_path: Path) -> None:
    quick = run.parse_args(["--quick"])
    assert [p.key for p in run.patterns(quick)] == ["1hop"] and run.sizes(quick) == ["1KB", "1MB"]
    full = run.parse_args(["--sets", "tracing", "--rounds", "3"])
    assert [p.key for p in run.patterns(full)] == ["1hop", "seq3", "ens3"]
    assert run.sizes(full) == ["1KB", "100KB", "1MB", "8MB"] and full.rounds == 3 and full.sets == ["tracing"]
    assert run.MODES["full"]["rounds"] == 3 and run.MODES["quick"]["rounds"] == 1
    variants_only = run.Run(run.parse_args(["--variants", "tel-on", "--no-kserve"]), PlanOnly(tmp_path),
                            None)  # type: ignore[arg-type]
    assert variants_only.sets == ["variants"]


async def test_the_aiohttp_proxy_passes_status_and_body_and_marks_json() -> None:
    got: list[bytes] = []

    async def model(request: web.Request) -> web.Response:
        got.append(await request.read())
        answer = b'{"predictions":[1]}'
        return web.Response(status=201, body=answer)

    app = web.Application()
    app.router.add_post("/{name}", model)
    async with TestServer(app, host="127.0.0.1") as backend:
        port = procs.free_port()
        argv = [sys.executable, str(ROOT / "benchmarks" / "aiohttp_proxy.py"), "--port", str(port),
                "--backend", str(backend.make_url("/json"))]
        proc = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            async with ClientSession() as client:
                deadline = time.monotonic() + 20
                while True:
                    try:
                        async with client.get(f"http://127.0.0.1:{port}/readyz") as r:
                            if r.status == 200:
                                break
                    except OSError:
                        pass
                    assert time.monotonic() < deadline and proc.returncode is None, "aiohttp proxy did not start"
                    await asyncio.sleep(0.1)
                async with client.post(f"http://127.0.0.1:{port}/", data=b'{"instances":[1]}') as r:
                    assert (r.status, await r.read()) == (201, b'{"predictions":[1]}')
                    assert r.headers["Content-Type"] == "application/json"
            assert got == [b'{"instances":[1]}']
        finally:
            proc.kill()
            await asyncio.wait_for(proc.wait(), 10)


def test_profile_samples_go_to_the_deepest_part_of_ours() -> None:
    from benchmarks import profile_router as prof

    gr = "/srv/app/graph_router"
    raw = "\n".join([
        f"run (/x/runners.py:118);run ({gr}/process.py:203);epoll_pwait (libc.so) 5",
        f"run ({gr}/process.py:203);data_received ({gr}/http/server_protocol.py:113);"
        f"on_message_complete ({gr}/http/server_protocol.py:223) 3",
        f"_run ({gr}/server.py:141);execute ({gr}/engine.py:91);request ({gr}/http/client.py:85);"
        f"exchange ({gr}/http/client_protocol.py:135);write (libc.so) 7",
        f"_run ({gr}/server.py:141);execute ({gr}/engine.py:91);is_json ({gr}/conditions/document.py:90) 4",
        f"_handler_done ({gr}/http/server_protocol.py:271);_respond ({gr}/http/server_protocol.py:285) 2",
        f"_run ({gr}/server.py:150);record ({gr}/accesslog.py:27) 1",
        "not a sample line",
    ])
    counts = prof.summarise(raw)
    assert counts == {prof.LOOP: 5, "server: read + parse": 3, "client (pool, request, response)": 7,
                      "route: app, engine, headers": 4, "server: write": 2, "telemetry and access log": 1}
    assert prof.top_lines(raw, 2) == [("exchange (http/client_protocol.py:135)", 7),
                                      ("is_json (conditions/document.py:90)", 4)]
    table = prof.render(counts, 44.0).splitlines()
    assert table[2] == "| client (pool, request, response) | 7 | 31.8% | 14.0 |"
    assert table[-1] == "| total | 22 | 100% | 44.0 |"


FAKE_KSERVE = """\
import json, os, signal, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as KServe's router: SIGTERM alone does not stop it soon
assert sys.argv[1] == "--graph-json"
spec = json.loads(sys.argv[2])
host, port = os.environ["ORACLE_LISTEN_ADDR"].rsplit(":", 1)
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/readyz" else 404); self.send_header("Content-Length", "0")
        self.end_headers()
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps(sorted(spec["nodes"])).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
HTTPServer((host, int(port)), H).serve_forever()
"""


def test_kserve_is_started_on_its_env_port_and_stopped_with_sigkill(tmp_path: Path) -> None:
    """A stand-in binary with KServe's interface: the port from ORACLE_LISTEN_ADDR, the spec as --graph-json."""
    from benchmarks.benchkit.bench import Bench

    fake = tmp_path / "router"
    fake.write_text(f"#!{sys.executable}\n{FAKE_KSERVE}")
    fake.chmod(0o755)
    sup = procs.Supervisor(install=False)
    bench = Bench(sup, tmp_path, "nginx", ["graph-router"], 60.0, procs.free_port())
    backends = Backends(0, [1, 2, 3], {n: router.service_url(n, 9) for n in router.SERVICES}, b"")
    try:
        started = time.monotonic()
        proc, port, kill = bench.other(router.kserve_router(fake), router.PATTERNS["ens3"], backends, None)()
        assert kill is True and proc.poll() is None
        assert procs.post_once(port, "/", b"{}") == (200, b'["root"]')
        argv = shlex.split((tmp_path / "other-ens3.cmd").read_text())
        assert argv[:2] == [str(fake), "--graph-json"] and "ensemble" in argv[2].lower()
        sup.stop(proc, kill=kill)
        assert proc.poll() is not None and time.monotonic() - started < 20
    finally:
        sup.stop_all()


class PlanOnly:
    """A Bench that records the rows a run measures, round by round, and starts nothing."""

    def __init__(self, workdir: Path) -> None:
        self.workdir, self.router_cmd, self.event_loop = workdir, [sys.executable, "-m", "graph_router"], "-"
        self.seen: list[str] = []

    def run_job(self, job: Job) -> None:
        s, loads = job.series, ",".join(map(str, job.settings.concurrencies))
        self.seen.append(f"{s.router} | {s.pattern} | {s.variant} | c{loads}")

    def small_backends(self, name: str, cpu: int | None) -> Backends:
        return Backends(1, [1, 2, 3], {n: router.service_url(n, 9) for n in router.SERVICES}, b"x")

    def payload_backends(self, size: int, cpu: int | None) -> Backends:
        return self.small_backends("payload", cpu)

    def stop_backends(self, b: Backends) -> None:
        return None

    def _never(self, *args: object) -> Any:
        return lambda: None

    graph_router = other = nginx_proxy = aiohttp_proxy = _never


def test_a_run_interleaves_kserve_and_ours_and_runs_each_set(tmp_path: Path) -> None:
    binary = tmp_path / "router"
    binary.write_text("")
    args = run.parse_args(["--kserve", str(binary), "--patterns", "1hop", "seq3", "--sizes", "1MB", "--rounds", "2"])
    bench = PlanOnly(tmp_path)
    the_run = run.Run(args, bench, run.other_router(args))  # type: ignore[arg-type]
    the_run.all()
    small = ["backend direct | - | nginx fixed response | c64,1",
             "nginx proxy_pass | 1 hop | keepalive upstream | c64,1",
             "aiohttp server + client | 1 hop | benchmarks/aiohttp_proxy.py | c64,1",
             "KServe router | 1 hop | as shipped | c64,1", "graph-router | 1 hop | 1 worker, defaults | c64,1",
             "KServe router | Sequence of 3 | as shipped | c64,1",
             "graph-router | Sequence of 3 | 1 worker, defaults | c64,1"]
    tracing = [f"graph-router | {p} | 1 worker, {t} | c64" for p in ("1 hop", "Sequence of 3") for t in (
        "metrics off, tracing off", "metrics on, 10% of requests traced, OTLP to a local sink",
        "metrics on, every request traced, OTLP to a local sink")]
    both = ["graph-router | 1 hop | 1 worker, defaults, unpinned | c64",
            "graph-router | 1 hop | 2 workers, defaults, unpinned | c64",
            "KServe router | 1 hop | as shipped, unpinned | c64"]
    payload_rows = ["nginx proxy_pass | 1 hop | 1MB | c8", "KServe router | 1 hop | 1MB | c8",
                    "graph-router | 1 hop | 1MB | c8", "KServe router | Sequence of 3 | 1MB | c8",
                    "graph-router | Sequence of 3 | 1MB | c8"]
    assert bench.seen == small * 2 + tracing * 2 + both * 2 + payload_rows
    assert list(the_run.tables) == ["compare", "tracing", "both-cores", "payload 1MB"]
    assert all(len(s.runs) == 0 for t in the_run.tables.values() for s in t)  # PlanOnly measured nothing
