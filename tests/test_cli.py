"""The command line: validate, run and graph, as real subprocesses."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import pytest

from .conftest import ROOT, Backend, reply
from .support.ports import refused_port

GOOD = """
apiVersion: serving.kserve.io/v1alpha1
kind: InferenceGraph
metadata: {name: demo}
spec:
  nodes:
    root:
      routerType: Sequence
      steps:
        - serviceName: a
          name: first
        - nodeName: pick
          data: $response
    pick:
      routerType: Switch
      steps:
        - serviceName: b
          condition: predictions.#(label=="dog")
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "graph_router", *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


def test_validate_ok_and_every_problem(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    out = cli("validate", str(good))
    assert out.returncode == 0 and out.stdout == f"ok: {good}: graph 'demo' (2 nodes, 3 steps)\n"
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("serviceName: a", "serviceURL: a").replace("condition:", "# condition:"))
    out = cli("validate", str(good), str(bad))
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.splitlines() == [
        f"error: {bad}: 3 problems:",
        "  - spec.nodes.root.steps[0].serviceURL: unknown field (did you mean 'serviceUrl'?)",
        '  - spec.nodes.root.steps[0]: Step 0 ("first") in node "root" of InferenceGraph "demo" does not '
        "specify an inference target",
        "  - spec.nodes.pick.steps[0].condition: a Switch step needs a condition (KServe would never pick "
        "this step)",
    ]


async def test_run_prints_status_route_and_body(tmp_path: Path,
                                                backend_factory: Callable[[], Awaitable[Backend]]) -> None:
    a, b = await backend_factory(), await backend_factory()
    a.default = reply(200, {"predictions": [{"label": "dog"}]})
    b.default = reply(200, {"breed": "corgi"})
    g = tmp_path / "g.yaml"
    g.write_text(GOOD)
    data = tmp_path / "req.json"
    data.write_text('{"instances": [1]}')
    import asyncio

    out = await asyncio.to_thread(cli, "run", str(g), "--data", f"@{data}", "--service", f"a={a.predict_url('a')}",
                                  "--service", f"b={b.predict_url('b')}")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "status: 200"
    assert lines[1] == "route: root>first:a,root>1:pick,pick>0:b"
    assert orjson.loads("\n".join(lines[2:])) == {"breed": "corgi"}
    assert b.seen[0].body == b'{"predictions": [{"label": "dog"}]}'


def test_run_rejects_bad_service_flag(tmp_path: Path) -> None:
    g = tmp_path / "g.yaml"
    g.write_text(GOOD)
    out = cli("run", str(g), "--data", "{}", "--service", "nourl")
    assert out.returncode == 2
    assert "--service 'nourl': expected NAME=URL" in out.stderr and "Traceback" not in out.stderr


def test_graph_prints_mermaid(tmp_path: Path) -> None:
    g = tmp_path / "g.yaml"
    g.write_text(GOOD)
    out = cli("graph", str(g))
    assert out.returncode == 0
    assert out.stdout.splitlines() == [
        "flowchart LR",
        '    client(["client"]) --> node_root',
        '    node_root["root<br/><i>Sequence</i>"]',
        '    svc_root_first["first: a"]',
        "    node_root --> svc_root_first",
        '    svc_root_first -.->|"$response"| node_pick',
        '    node_pick{{"pick<br/><i>Switch</i>"}}',
        '    svc_pick_0["0: b"]',
        '    node_pick -->|"predictions.#(label==#quot;dog#quot;)"| svc_pick_0',
    ]


def test_no_command_prints_help() -> None:
    out = cli()
    assert out.returncode == 2 and "validate" in out.stdout


def test_serve_limit_flags_refuse_bad_numbers() -> None:
    for flag, value, why in [("--max-trailers", "0", "must be positive, got '0'"),
                             ("--max-inflight-bytes", "-1", "must not be negative, got '-1'"),
                             ("--max-chunk-ext-bytes", "16k", "not a whole number: '16k'")]:
        done = cli("serve", "graphs/ensemble/graph.yaml", flag, value)
        assert done.returncode == 2, done.stderr
        assert f"argument {flag}: {why}" in done.stderr and "Traceback" not in done.stderr


def test_serve_help_shows_the_kserve_compatibility_flags() -> None:
    out = cli("serve", "--help")
    assert out.returncode == 0
    text = " ".join(out.stdout.split())  # argparse wraps to the terminal's width
    assert "KServe compatibility: flags KServe's controller passes to the router image" in text
    assert ("--inferencegraph-name NAME the name of the --graph-json graph (default 'graph'); ignored with graph "
            "files, which carry their own names") in text
    assert ("--enable-auth accepted and ignored with a warning: KServe's SubjectAccessReview auth is not "
            "supported; use --auth-token-file") in text.replace("--auth- token-file", "--auth-token-file")
    assert "--enable-tls accepted and ignored with a warning: terminate TLS in the mesh or ingress" in text


def test_run_says_it_is_waiting_for_a_refusing_backend(tmp_path: Path) -> None:
    import time

    g = tmp_path / "g.yaml"
    g.write_text(GOOD)
    url = f"http://127.0.0.1:{refused_port()}/v1/models/a:predict"  # nothing listens there
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "graph_router", "run", str(g), "--data", "{}", "--service",
                             f"a={url}", "--default-retry-window", "4"], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line == (f"run: a ({url}): connection refused; retrying for up to 4 s while it starts "
                        "(--default-retry-window)...\n")
        assert proc.poll() is None and time.monotonic() - started < 4  # said while still waiting
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1 and out.startswith("status: 500\nroute: root>first:a\n")
    assert err == ""  # once per backend; the per-attempt log lines only with --log-level debug
    assert time.monotonic() - started >= 3


def test_run_with_debug_logs_every_attempt_too(tmp_path: Path) -> None:
    g = tmp_path / "g.yaml"
    g.write_text(GOOD)
    url = f"http://127.0.0.1:{refused_port()}/v1/models/a:predict"
    out = cli("run", str(g), "--data", "{}", "--service", f"a={url}", "--default-retry-window", "0.5",
              "--log-level", "debug", "--log-format", "text")
    lines = out.stderr.splitlines()
    assert [x for x in lines if x.startswith("run: ")] == [
        f"run: a ({url}): connection refused; retrying for up to 0.5 s while it starts (--default-retry-window)..."]
    assert any(x.startswith(f"INFO graph_router.retry: retrying {url}: attempt 1 got backend_connect") for x in lines)


def test_retry_notice_names_the_graphs_own_policy(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    from graph_router.cli import RetryNotice
    from graph_router.loader import load_graph_text

    [doc] = load_graph_text(GOOD.replace("spec:\n", "spec:\n  defaultRetry: {maxRetries: 2}\n"))
    notice = RetryNotice(doc, {"b": "http://b/"}, 5.0)

    def record(*args: object) -> logging.LogRecord:  # as graph_router.backend logs a retry
        rec = logging.LogRecord("graph_router.retry", logging.INFO, __file__, 1, "retrying %s: attempt %d got %s; "
                                "next attempt in %.3fs", args, None)
        rec.retry_target, rec.retry_outcome = args[0], args[2]
        return rec

    assert notice.filter(record("http://b/", 1, "503", 0.1)) is False
    assert notice.filter(record("http://b/", 2, "503", 0.2)) is False
    assert notice.filter(logging.LogRecord("x", logging.INFO, __file__, 1, "other", None, None)) is True
    assert capsys.readouterr().err == "run: b (http://b/): answered 503; retrying as the graph's retry policy says...\n"
