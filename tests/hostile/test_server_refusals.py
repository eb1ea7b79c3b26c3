"""Nothing hidden from operators, nothing leaked to callers: every refused request has one access-log
line and is counted by status and reason; X-Graph-Route names no URL unless the operator opts in;
a busy port is one clean line and exit 2."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections import Counter

import pytest

from ..support.router import ROOT, RouterProcess
from .conftest import RouterFactory, exchange

TOKEN = "hostile-token"
AUTH = f"Authorization: Bearer {TOKEN}\r\n".encode()
GOOD = b"POST /graphs/echo HTTP/1.1\r\nHost: r\r\n" + AUTH + b"Content-Length: 8\r\n\r\n{\"x\": 1}"

#: (request, status, reason label, method and path in the access log)
CASES = [
    (b"POST /graphs/echo HTTP/1.1\r\nHost: r\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
     400, "malformed", "POST", "/graphs/echo"),
    (b"POST /graphs/echo HTTP/1.1\r\n" + AUTH + b"Content-Length: 0\r\n\r\n", 400, "bad_host", "POST", "/graphs/echo"),
    (b"G@T /graphs/echo HTTP/1.1\r\nHost: r\r\n\r\n", 400, "malformed", "", ""),
    (b"POST /graphs/echo HTTP/1.1\r\nHost: r\r\nContent-Length: 0\r\n\r\n", 401, "unauthorized",
     "POST", "/graphs/echo"),
    (b"POST /graphs/nope HTTP/1.1\r\nHost: r\r\n" + AUTH + b"Content-Length: 2\r\n\r\n{}", 404, "unknown_graph",
     "POST", "/graphs/nope"),
    (b"POST /graphs/echo HTTP/1.1\r\nHost: r\r\n" + AUTH + b"Content-Length: 99999999\r\n\r\n", 413,
     "body_too_large", "POST", "/graphs/echo"),
    (b"POST /graphs/echo HTTP/1.1\r\nHost: r\r\nX: " + b"v" * 70000 + b"\r\n\r\n", 431, "header_too_large", "POST", ""),
    (b"POST /graphs/echo HTTP/1.1\r\nHost: r\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nT: "
     + b"v" * 17000 + b"\r\n\r\n", 431, "trailer_too_large", "POST", "/graphs/echo"),
    (b"POST /graphs/echo HTTP/2.0\r\nHost: r\r\nContent-Length: 0\r\n\r\n", 505, "http_version",
     "POST", "/graphs/echo"),
]


@pytest.fixture(scope="module")
def guarded(start_router: RouterFactory, tmp_path_factory: pytest.TempPathFactory) -> RouterProcess:
    token = tmp_path_factory.mktemp("token") / "token"
    token.write_text(TOKEN)
    return start_router("--auth-token-file", str(token))


def access_lines(router: RouterProcess, count: int) -> list[dict[str, object]]:
    """The access log once it holds ``count`` lines (it is written in batches, every 0.25 s)."""
    deadline = time.monotonic() + 5
    lines = router.access()
    while len(lines) < count and time.monotonic() < deadline:
        time.sleep(0.1)
        lines = router.access()
    return lines


def test_every_refused_request_is_logged_once_and_counted(guarded: RouterProcess) -> None:
    before = len(access_lines(guarded, 0))
    for data, status, *_ in CASES:
        reply = exchange(guarded.port, data, close_wait=0.2)
        assert reply.status == status, (data[:60], reply)
    assert exchange(guarded.port, GOOD, close_wait=0.1).status == 200
    lines = access_lines(guarded, before + len(CASES) + 1)[before:]
    assert len(lines) == len(CASES) + 1, lines
    for line, (_, status, reason, method, path) in zip(lines, CASES, strict=False):
        assert (line["status"], line["reason"], line["method"]) == (status, reason, method), line
        if path:
            assert line["path"] == path, line
    assert lines[-1]["status"] == 200 and "reason" not in lines[-1]
    metrics = exchange(guarded.port, b"GET /metrics HTTP/1.1\r\nHost: r\r\n\r\n", close_wait=0.1).body.decode()
    for (status, reason), n in Counter((status, reason) for _, status, reason, *_ in CASES).items():
        assert f'graph_router_requests_refused_total{{reason="{reason}",status="{status}"}} {n}.0' in metrics, reason
    assert 'graph_router_requests_total{graph="echo",status="200"} 1.0' in metrics


def test_route_header_names_nodes_and_steps_not_urls(router: RouterProcess) -> None:
    reply = exchange(router.port, b"POST /graphs/echo HTTP/1.1\r\nHost: r\r\nContent-Length: 2\r\n\r\n{}")
    assert (reply.status, reply.headers["x-graph-route"]) == (200, "root>0")


def test_route_header_urls_are_the_operators_opt_in(start_router: RouterFactory, echo_url: str) -> None:
    opted = start_router("--route-header-urls")
    reply = exchange(opted.port, b"POST /graphs/echo HTTP/1.1\r\nHost: r\r\nContent-Length: 2\r\n\r\n{}")
    assert (reply.status, reply.headers["x-graph-route"]) == (200, f"root>0:{echo_url}/v1/models/echo:predict")


def run_on_busy_port(*args: str) -> tuple[int, str, str, int]:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        argv = [a.replace("{port}", str(port)) for a in args]
        done = subprocess.run([sys.executable, "-m", "graph_router", *argv], capture_output=True, text=True,
                              cwd=ROOT, timeout=60)
    return done.returncode, done.stdout, done.stderr, port


@pytest.mark.parametrize("argv", [
    ["serve", "graphs/ensemble/graph.yaml", "--host", "127.0.0.1", "--port", "{port}"],
    ["serve", "graphs/ensemble/graph.yaml", "--host", "127.0.0.1", "--port", "{port}", "--workers", "2"],
    ["models", "serve", "--host", "127.0.0.1", "--port", "{port}", "--models", "classifier"],
    ["quickstart", "ensemble", "--port", "{port}"],
    ["quickstart", "ensemble", "--models-port", "{port}"],
], ids=["serve", "serve-workers", "models-serve", "quickstart-router", "quickstart-models"])
def test_a_busy_port_is_one_clean_line_and_exit_2(argv: list[str]) -> None:
    code, out, err, port = run_on_busy_port(*argv)
    assert code == 2, (out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and f"{port}" in lines[0] and "Traceback" not in err, err
    assert "ready" not in out


def test_serve_on_a_busy_port_names_the_cause_and_the_fix() -> None:
    code, _, err, port = run_on_busy_port("serve", "graphs/ensemble/graph.yaml", "--host", "127.0.0.1",
                                          "--port", "{port}")
    assert (code, err.strip()) == (2, f"error: cannot listen on 127.0.0.1:{port}: Address already in use "
                                      "(another process has it: stop that one or pick another --port)")
