"""The benchmark harness's pure parts: wrk output, /proc accounting, tables, configs, commands."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from graph_router.loader import load_graph_json, load_graphs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import run
from benchmarks.benchkit import install, nginx, procs, procstat, router, wrk
from benchmarks.benchkit.soakreport import (
    Sample,
    fmt_pct,
    growth_pct,
    render_samples,
    render_summary,
    sample_line,
    summarise,
)
from benchmarks.benchkit.table import Load, Row, cpu_model, fmt_cpu, fmt_mb, fmt_us, render_table

WRK_OK = """\
Running 1s test @ http://127.0.0.1:47253/
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    37.49us  174.30us   4.46ms   99.21%
    Req/Sec   135.31k     9.52k  144.69k    81.82%
  Latency Distribution
     50%   25.00us
     75%   27.00us
     90%   33.00us
     99%   72.00us
  147357 requests in 1.10s, 24.87MB read
Requests/sec: 134038.90
Transfer/sec:     22.63MB
BENCHJSON {"requests":147357,"duration_us":1099360,"connect":0,"read":0,"write":0,"status":0,\
"timeout":0,"p50_us":25,"p90_us":33,"p99_us":72,"max_us":4457}
"""

WRK_ERRORS = """\
  2000 requests in 2.00s, 1.00MB read
  Socket errors: connect 3, read 4, write 0, timeout 5
  Non-2xx or 3xx responses: 7
Requests/sec:   1000.00
BENCHJSON {"requests":2000,"duration_us":2000000,"connect":3,"read":4,"write":0,"status":7,\
"timeout":5,"p50_us":900,"p90_us":1500,"p99_us":2500,"max_us":9000}
"""


def test_wrk_output_parsed_exactly() -> None:
    result = wrk.parse_output(WRK_OK)
    assert result == wrk.WrkResult(
        requests=147357,
        duration_s=1.09936,
        p50_us=25.0,
        p90_us=33.0,
        p99_us=72.0,
        max_us=4457.0,
        status_errors=0,
        socket_errors=0,
        socket_detail="connect 0, read 0, write 0, timeout 0",
    )
    assert result.rps == pytest.approx(134038.9, rel=1e-4)
    assert wrk.parse_rps_line(WRK_OK) == 134038.90


def test_wrk_errors_are_status_plus_socket_errors() -> None:
    result = wrk.parse_output(WRK_ERRORS)
    assert (result.status_errors, result.socket_errors, result.errors) == (7, 12, 19)
    assert result.socket_detail == "connect 3, read 4, write 0, timeout 5"
    assert result.rps == 1000.0


def test_wrk_without_result_line_is_an_error() -> None:
    with pytest.raises(wrk.WrkOutputError, match="unable to connect"):
        wrk.parse_output("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_lua_script_posts_the_body_and_rejects_a_terminator() -> None:
    script = wrk.lua_script('{"a":"]]"}')
    assert 'wrk.method = "POST"' in script
    assert 'wrk.body = [==[{"a":"]]"}]==]' in script
    assert "BENCHJSON " in script and "latency:percentile(99)" in script
    with pytest.raises(ValueError):
        wrk.lua_script("x]==]y")


def test_wrk_command_pins_one_thread() -> None:
    argv = wrk.command("http://127.0.0.1:1/", Path("/s.lua"), 64, 3, 0)
    assert argv[:3] == ["taskset", "-c", "0"]
    assert argv[3:] == [
        "wrk",
        "-t1",
        "-c64",
        "-d3s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        "/s.lua",
        "http://127.0.0.1:1/",
    ]
    assert wrk.command("u", Path("s"), 1, 1, None)[0] == "wrk"


def test_parse_stat_survives_spaces_and_parens_in_the_name() -> None:
    line = "4954 (my (odd) name) S 4952 4952 3365 0 -1 4194304 101 0 0 0 17 5 0 0 20 0 1 0 28145 3133440"
    assert procstat.parse_stat(line) == procstat.StatFields(pid=4954, ppid=4952, utime=17, stime=5)


def test_vmrss_from_status() -> None:
    assert procstat.parse_vmrss_kb("Name:\tx\nVmPeak:\t 9 kB\nVmRSS:\t    2012 kB\n") == 2012
    assert procstat.parse_vmrss_kb("Name:\tkthreadd\n") == 0


def test_descendants_walks_the_tree_only() -> None:
    parents = {1: 0, 10: 1, 11: 10, 12: 10, 13: 11, 20: 1, 21: 20}
    assert procstat.descendants(10, parents) == [10, 11, 12, 13]
    assert procstat.descendants(13, parents) == [13]
    assert procstat.descendants(5, {5: 6, 6: 5}) == [5, 6]  # a racy snapshot loop ends


def test_cpu_ticks_and_per_request() -> None:
    stats = {p: procstat.StatFields(p, 1, u, s) for p, u, s in ((1, 10, 5), (2, 100, 50), (3, 7, 0))}
    assert procstat.cpu_ticks(stats, [1, 3, 99]) == 22
    assert procstat.cpu_per_request_us(1.0, 1.5, 10_000) == pytest.approx(50.0)
    assert procstat.cpu_per_request_us(1.0, 1.5, 0) is None


def test_system_busy_ticks_exclude_idle_iowait_and_interrupts() -> None:
    text = "cpu  63474 7 15407 123601 336 2 5620 30 99 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"
    assert procstat.parse_system_busy_ticks(text) == 63474 + 7 + 15407 + 30
    with pytest.raises(ValueError):
        procstat.parse_system_busy_ticks("intr 1\n")
    assert procstat.system_busy_seconds() > 0


def test_tree_accounting_counts_a_busy_child() -> None:
    code = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\ntime.sleep(30)"
    parent = subprocess.Popen(
        [sys.executable, "-c", f"import subprocess, sys; subprocess.run([sys.executable, '-c', {code!r}])"]
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and procstat.tree_cpu_seconds(parent.pid) < 0.3:
            time.sleep(0.05)
        pids = procstat.tree_pids(parent.pid)
        assert len(pids) == 2 and pids[0] == parent.pid
        assert procstat.tree_cpu_seconds(parent.pid) >= 0.3
        assert procstat.tree_rss_kb(parent.pid) > sum(
            procstat.parse_vmrss_kb(Path(f"/proc/{p}/status").read_text()) for p in pids[:1]
        )
        assert procstat.tree_fds(parent.pid) >= 6  # stdin/out/err in each
    finally:
        for pid in reversed(procstat.tree_pids(parent.pid)):
            os.kill(pid, 9)
        parent.wait(timeout=10)
    assert procstat.tree_pids(parent.pid) == [] and procstat.tree_rss_kb(parent.pid) == 0


def _load(
    c: int, requests: int, p50: float, p99: float, cpu: float | None, errors: int = 0, outside: float = 0
) -> Load:
    result = wrk.WrkResult(requests, 2.0, p50, p50, p99, p99, errors, 0)
    return Load(c, result, cpu, outside)


def test_table_renders_every_cell() -> None:
    rows = [
        Row(
            "graph-router",
            "Sequence of 3",
            "1 worker",
            [_load(64, 20000, 900, 2500, 123.4, outside=3.2), _load(1, 4000, 240, 1250.5, None, 2, 11.6)],
            rss_idle_kb=40960,
            rss_load_kb=51200,
        ),
        Row("x", "1 hop", "v", note="failed: a | b\nc"),
    ]
    assert render_table(rows).splitlines() == [
        "| router | pattern | variant | c64 req/s | c64 p50 | c64 p99 | c64 CPU/req | c1 req/s | c1 p50 "
        "| c1 p99 | c1 CPU/req | RSS idle | RSS load | errors | other CPU | note |",
        "|" + "---|" * 16,
        "| graph-router | Sequence of 3 | 1 worker | 10,000 | 900 us | 2.50 ms | 123.4 us | 2,000 | 240 us "
        "| 1.25 ms | - | 40.0 MB | 50.0 MB | 2 | 12% |  |",
        "| x | 1 hop | v | - | - | - | - | - | - | - | - | - | - | 0 | - | failed: a \\| b c |",
    ]


def test_formatters_and_cpu_model() -> None:
    assert (fmt_us(None), fmt_us(999.4), fmt_us(1000), fmt_mb(None), fmt_mb(1536)) == (
        "-",
        "999 us",
        "1.00 ms",
        "-",
        "1.5 MB",
    )
    assert (fmt_cpu(None), fmt_cpu(34.46), fmt_cpu(999.94), fmt_cpu(1234)) == ("-", "34.5 us", "999.9 us", "1.23 ms")
    assert cpu_model("processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags: x\n") == "AMD EPYC 7B13"
    assert cpu_model("") == "unknown"


def test_nginx_configs_render_completely(tmp_path: Path) -> None:
    backend = nginx.backend_config(tmp_path, [9001, 9002])
    assert "listen 127.0.0.1:9001 backlog=4096;" in backend and "listen 127.0.0.1:9002 backlog=4096;" in backend
    assert "return 200 '{\"predictions\":[1,2,3]}';" in backend and "default_type application/json;" in backend
    proxy = nginx.proxy_config(tmp_path, 9100, 9001)
    assert "server 127.0.0.1:9001;" in proxy and "listen 127.0.0.1:9100 backlog=4096;" in proxy
    assert "keepalive 128;" in proxy and 'proxy_set_header Connection "";' in proxy
    for text in (backend, proxy):
        assert "{{" not in text and "0.0.0.0" not in text and f"pid {tmp_path}/nginx.pid;" in text
    with pytest.raises(KeyError):
        nginx.render("{{missing}}", {})


def test_payload_rows_run_with_the_memory_budget_off() -> None:
    # 8 x 8 MB each way would pass the default budget, which answers part of them 503 by design
    assert router.serve_argv(["gr"], Path("g"), 1, {}, router.PAYLOAD)[-2:] == ["--max-inflight-bytes", "0"]
    assert "--max-inflight-bytes" not in router.serve_argv(["gr"], Path("g"), 1, {}, router.VARIANTS["w1"])


def test_serve_argv_and_the_graphs_agree_on_services() -> None:
    services = {n: router.service_url(n, 9000 + i) for i, n in enumerate(router.SERVICES)}
    argv = router.serve_argv(["gr"], Path("g.yaml"), 8123, services, router.VARIANTS["w2"])
    assert argv[:6] == ["gr", "serve", "g.yaml", "--host", "127.0.0.1", "--port"]
    assert "--service" in argv and "model-b=http://127.0.0.1:9001/v1/models/model-b:predict" in argv
    assert argv[-4:] == ["--workers", "2", "--drain-seconds", "0"]
    assert router.serve_argv(["gr"], Path("g"), 1, {}, router.VARIANTS["tel-off"])[-3:] == [
        "--no-metrics",
        "--tracing",
        "off",
    ]
    for pattern in [*router.PATTERNS.values(), router.SOAK]:
        spec = yaml.safe_load(pattern.graph.read_text())["spec"]
        names = {s["serviceName"] for n in spec["nodes"].values() for s in n["steps"] if "serviceName" in s}
        assert names and names <= set(router.SERVICES), pattern.key


def test_router_env_sets_otlp_only_for_tracing_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x=1")
    default = router.router_env(router.VARIANTS["w1"], 4318)
    assert default["OTEL_EXPORTER_OTLP_HEADERS"] is None and "OTEL_EXPORTER_OTLP_ENDPOINT" not in default
    assert str(router.REPO) in (default["PYTHONPATH"] or "")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")  # inherited: must not leak into any row
    on = router.router_env(router.VARIANTS["tel-on"], 4318)
    assert on["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4318" and on["OTEL_TRACES_SAMPLER"] is None
    ten = router.router_env(router.VARIANTS["tel-10"], 4318)
    assert ten["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4318"
    assert (ten["OTEL_TRACES_SAMPLER"], ten["OTEL_TRACES_SAMPLER_ARG"]) == ("parentbased_traceidratio", "0.1")
    assert router.router_env(router.VARIANTS["tel-ctx"], 4318)["OTEL_TRACES_SAMPLER"] == "always_off"
    unsent = router.router_env(router.VARIANTS["tel-unsent"], 4318)
    assert unsent["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:1" and unsent["OTEL_TRACES_SAMPLER"] is None
    assert router.serve_argv(["gr"], Path("g"), 1, {}, router.VARIANTS["tel-on"])[-2:] == ["--tracing", "otlp"]


def test_benchmark_graphs_load_with_the_router_and_as_graph_json() -> None:
    docs = load_graphs([router.GRAPHS])
    assert sorted(d.name for d in docs) == [
        "bench-ensemble-3",
        "bench-one-hop",
        "bench-sequence-3",
        "bench-soak",
        "bench-splitter",
        "bench-switch",
    ]
    services = {n: router.service_url(n, 9000) for n in router.SERVICES}
    for pattern in [*router.PATTERNS.values(), router.SOAK]:
        load_graph_json(router.graph_json(pattern.graph, services))  # what --compare-with gets


def test_compare_command_fills_placeholders_without_quoting_trouble() -> None:
    services = {n: f"http://127.0.0.1:1/{n}" for n in router.SERVICES}
    graph = router.graph_json(router.PATTERNS["switch"].graph, services)
    cmd = router.CompareCommand("/opt/kserve/router --graph-json {graph_json}", 8080)
    assert not cmd.has_port and cmd.name == "router"
    assert router.CompareCommand("python3 -u /x/fake_router.py {graph_json}", 1).name == "fake_router.py"
    argv = cmd.argv(8080, graph)
    assert argv == ["/opt/kserve/router", "--graph-json", graph]
    step = yaml.safe_load(graph)["nodes"]["root"]["steps"][1]
    assert step == {
        "name": "b",
        "serviceUrl": "http://127.0.0.1:1/model-b",
        "condition": 'instances.#(modelId=="2")',
    }
    assert router.CompareCommand("r --port={port} -g {graph_json}", 0).argv(9, "{}") == [
        "r",
        "--port=9",
        "-g",
        "{}",
    ]


def test_plan_quick_and_full() -> None:
    quick = [(p.key, v.key) for p, v in run.plan(run.parse_args(["--quick"]))]
    assert quick == [
        ("1hop", "w1"),
        ("seq3", "w1"),
        ("ens3", "w1"),
        ("switch", "w1"),
        ("splitter", "w1"),
        ("1hop", "w2"),
        ("1hop", "tel-off"),
        ("1hop", "tel-on"),
        ("1hop", "tel-10"),
    ]
    full = run.plan(run.parse_args([]))
    assert len(full) == 5 + 4 * 3
    chosen = run.plan(run.parse_args(["--patterns", "seq3", "--variants", "tel-on", "w2"]))
    assert [(p.key, v.key) for p, v in chosen] == [("seq3", "tel-on"), ("seq3", "w2")]
    assert not {v.key for _, v in full} & router.ON_REQUEST  # the cost break-down runs only when asked
    named = run.plan(run.parse_args(["--patterns", "1hop", "--variants", "tel-ctx", "tel-unsent"]))
    assert [v.key for _, v in named] == ["tel-ctx", "tel-unsent"]


def _sample(phase: str, t: float, p99: float, errors: int, fds: int, rss: int) -> Sample:
    detail = "connect 0, read 0, write 0, timeout 1" if errors > 1 else ""
    return Sample(phase, t, 1000, 100.0, p99, errors, 1 if errors > 1 else 0, fds, rss, 7.4, detail, fds + int(t))


def test_soak_summary_start_end_and_growth() -> None:
    samples = [
        _sample("c64", 10, 900, 0, 40, 50_000),
        _sample("c64", 20, 1200, 1, 41, 51_000),
        _sample("c64", 30, 1000, 2, 40, 52_500),
        _sample("c512", 10, 9000, 0, 560, 60_000),
    ]
    c64, c512 = summarise(samples)
    assert (c64.phase, c64.samples, c64.seconds, c64.requests, c64.errors) == ("c64", 3, 30, 3000, 4)
    assert (c64.p99_first_us, c64.p99_last_us, c64.p99_max_us) == (900, 1000, 1200)
    assert (c64.rss_start_kb, c64.rss_end_kb, c64.rss_growth) == (50_000, 52_500, 5.0)
    assert (c64.fds_start, c64.fds_end, c64.fds_growth, c64.fds_peak) == (40, 40, 0.0, 70)
    assert (c512.samples, c512.rss_growth) == (1, 0.0)
    assert growth_pct(0, 5) is None and fmt_pct(4.96) == "+5.0%" and fmt_pct(-2.0) == "-2.0%"
    assert render_summary([c64]).splitlines()[2] == (
        "| c64 | 30 s | 3,000 | 4 | 900 us | 1.00 ms | 1.20 ms | 48.8 MB | 51.3 MB | +5.0% | 40 | 40 | +0.0% | 70 |"
    )
    assert render_samples(samples[:3:2]).splitlines()[2:] == [
        "| c64 | 10 s | 100 | 900 us | 0 | 0 | 40 | 50 | 48.8 MB | 7% |",
        "| c64 | 30 s | 100 | 1.00 ms | 2 | 1 (connect 0, read 0, write 0, timeout 1) | 40 | 70 | 51.3 MB | 7% |",
    ]
    assert sample_line(samples[2]) == (
        "c64 t=   30s req/s=      100 p99=  1.00 ms errors=2+1 fds=40 (peak 70) rss=51.3 MB other-cpu=7% "
        "(connect 0, read 0, write 0, timeout 1)"
    )


def _alive(pid: int) -> bool:
    try:
        return (
            procstat.parse_stat(Path(f"/proc/{pid}/stat").read_text()).pid == pid
            and " Z " not in Path(f"/proc/{pid}/stat").read_text()
        )
    except FileNotFoundError:
        return False


def test_supervisor_stops_the_whole_process_group(tmp_path: Path) -> None:
    sup = procs.Supervisor(install=False)
    proc = sup.start(["sh", "-c", "sleep 30 & echo started; sleep 30"], tmp_path / "log")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(procstat.tree_pids(proc.pid)) < 3:
        time.sleep(0.02)
    pids = procstat.tree_pids(proc.pid)
    assert len(pids) >= 2 and all(_alive(p) for p in pids)  # sh and its sleeps
    sup.stop(proc, grace=2.0)
    assert proc.returncode is not None
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.02)
    assert not [p for p in pids if _alive(p)]
    assert (tmp_path / "log").read_text() == "started\n"
    sup.stop_all()  # nothing left: a no-op


def test_router_python_is_the_venv_of_the_router_command(tmp_path: Path) -> None:
    (tmp_path / "python").write_text("")
    assert install.router_python([str(tmp_path / "graph-router")]) == str(tmp_path / "python")
    assert install.router_python(["/x/python3", "-m", "graph_router"]) == "/x/python3"
    assert install.router_python(["/opt/kserve/router", "--graph-json", "{}"]) is None
    assert install.ensure_uvloop(["/opt/kserve/router"], router.REPO / "pyproject.toml") == (
        "as the --router command has it")


def test_ensure_uvloop_reports_the_installed_one() -> None:
    import uvloop

    assert install.ensure_uvloop([sys.executable, "-m", "graph_router"], router.REPO / "pyproject.toml",
                                 say=False) == f"uvloop {uvloop.__version__}"


def test_ensure_uvloop_installs_the_fast_extra_where_missing(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A venv from ``pip install -e .`` has no uvloop: the harness installs the ``fast`` extra's and says so."""
    pip_log, installed = tmp_path / "pip-args", tmp_path / "installed"
    fake = tmp_path / "python"  # answers the two commands ensure_uvloop runs
    fake.write_text(f"""#!/bin/sh
if [ "$1" = "-c" ]; then [ -e {installed} ] && echo 9.9 && exit 0; exit 1; fi
echo "$@" > {pip_log}; touch {installed}
""")
    fake.chmod(0o755)
    (tmp_path / "graph-router").write_text("")
    got = install.ensure_uvloop([str(tmp_path / "graph-router")], router.REPO / "pyproject.toml")
    assert got == "uvloop 9.9"
    assert install.fast_requirements(router.REPO / "pyproject.toml") == ["uvloop>=0.19,<1", "msgspec>=0.18,<1"]
    assert pip_log.read_text().split() == ["-m", "pip", "install", "-q", "uvloop>=0.19,<1", "msgspec>=0.18,<1"]
    assert "installing uvloop>=0.19,<1 msgspec>=0.18,<1 into" in capsys.readouterr().out
