"""Safe defaults, each shown over real HTTP against a real router process.

- backend URLs come only from the graph (request bodies, paths, Host and forwarding headers cannot steer calls);
- redirects are not followed by default (the 3xx is the step's answer; tests/faults/test_redirects.py has the rest);
- only allow-listed headers reach backends; Authorization and cookies never appear in logs, traces or causes;
- optional bearer-token auth (env or file), /readyz and /healthz stay open;
- no endpoint changes graphs (reload is by SIGHUP or --watch only: tests/test_process.py
  test_reload_keeps_serving_when_the_new_file_is_bad and test_watch_reloads_changed_files);
- the image runs as a numeric non-root user and the process writes nothing to disk.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from .faults.conftest import call, cause_of, start_router
from .support.backends import Exchange, RawBackend, ok, routed
from .support.graphs import graph, sequence
from .support.ports import free_port, refused_port
from .support.router import ROOT, RouterProcess, stop_router, wait_ready

SECRET_AUTH = "Bearer s3cret-AUTH-value-7f1c"
SECRET_COOKIE = "session=s3cret-COOKIE-value-91ab"
TOKEN = "router-token-4242"


async def boom(ex: Exchange) -> bool:
    return await ex.answer(500, b'{"error": "model failed"}')


@pytest.fixture(scope="module")
def backends() -> Iterator[tuple[RawBackend, RawBackend]]:
    """The graph's backend, and an 'attacker' backend that nothing may ever reach."""
    target = RawBackend(routed, behaviours={"ok": ok, "boom": boom}).start()
    attacker = RawBackend(routed).start()
    yield target, attacker
    target.stop()
    attacker.stop()


@pytest.fixture
def fresh(backends: tuple[RawBackend, RawBackend]) -> tuple[RawBackend, RawBackend]:
    for b in backends:
        b.reset()
    return backends


def one_graph(url: str) -> str:
    return graph("g", sequence(url))


# --- where calls go --------------------------------------------------------------------------------------


async def raw_request(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()


async def test_backend_url_comes_only_from_the_graph(tmp_path: Path, fresh: tuple[RawBackend, RawBackend]) -> None:
    target, attacker = fresh
    evil = attacker.route("ok", "steal")
    rp = start_router(tmp_path, {"g": one_graph(target.route("ok"))})
    try:
        authority = f"127.0.0.1:{attacker.port}"
        body = orjson.dumps({"url": evil, "serviceUrl": evil, "serviceName": evil, "instances": [evil]})
        tries = [
            ("/", {}),
            (f"/{evil}", {}),
            (f"/?serviceUrl={evil}&url={evil}", {}),
            ("/graphs/g", {"Host": authority}),
            ("/", {"X-Forwarded-Host": authority, "X-Forwarded-Proto": "http", "Forwarded": f"host={authority}",
                   "X-Original-URL": evil, "X-Rewrite-URL": evil, "Referer": evil, "Location": evil}),
        ]
        for path, headers in tries:
            status, _, _ = await call(rp.url + path, body, headers=headers)
            assert status == 200
        # absolute-form request target, as sent to a forward proxy
        answer = await raw_request(rp.port, f"POST {evil} HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\n"
                                            f"content-length: {len(body)}\r\n\r\n".encode() + body)
        assert answer.startswith(b"HTTP/1.1 200 ")
    finally:
        stop_router(rp)
    assert sum(attacker.hits.values()) == 0
    assert [r.path for r in target.requests] == ["/ok/m"] * 6
    assert {r.headers["host"] for r in target.requests} == {f"127.0.0.1:{target.port}"}


async def test_credentials_in_a_backend_url_never_leak(tmp_path: Path, fresh: tuple[RawBackend, RawBackend]) -> None:
    target, _ = fresh
    url = f"http://user:s3cret-PASS@127.0.0.1:{target.port}/ok/m"
    try:
        rp = start_router(tmp_path, {"g": one_graph(url)})
    except AssertionError:  # refusing the graph at start is fine, as long as the password is not printed
        assert not any("s3cret-PASS" in log for log in read_logs(tmp_path))
        return
    try:
        _, _, body = await call(rp.url, b"{}")
    finally:
        stop_router(rp)
    assert "s3cret-PASS" not in body.decode() and "s3cret-PASS" not in rp.log()


def read_logs(workdir: Path) -> list[str]:
    return [p.read_text(errors="replace") for p in workdir.glob("router-*.log")]


async def test_redirects_are_not_followed_by_default(tmp_path: Path, fresh: tuple[RawBackend, RawBackend]) -> None:
    target, attacker = fresh

    async def to_attacker(ex: Exchange) -> bool:
        return await ex.answer(302, b"{}", extra=f"location: {attacker.route('ok', 'steal')}\r\n")

    target.behaviours["redir"] = to_attacker
    rp = start_router(tmp_path, {"g": one_graph(target.route("redir"))})
    try:
        status, headers, _ = await call(rp.url, b"{}")
    finally:
        stop_router(rp)
    assert status == 302 and "Location" not in headers
    assert sum(attacker.hits.values()) == 0


async def test_step_names_cannot_inject_headers_or_break_answers(tmp_path: Path,
                                                                 fresh: tuple[RawBackend, RawBackend]) -> None:
    target, _ = fresh
    nodes = ("    root:\n      routerType: Ensemble\n      steps:\n"
             f'        - name: "\u540d"\n          serviceUrl: {target.route("ok")}\n'
             f'        - name: "a\\r\\nX-Evil: 1"\n          serviceUrl: {target.route("ok")}\n')
    rp = start_router(tmp_path, {"g": graph("g", nodes)})
    try:
        status, headers, body = await call(rp.url, b"{}")
    finally:
        stop_router(rp)
    assert "X-Evil" not in headers
    assert status == 200 and list(orjson.loads(body)) == ["\u540d", "a\r\nX-Evil: 1"]


# --- headers and secrets ------------------------------------------------------------------------------------

INBOUND = {
    "Authorization": SECRET_AUTH, "Cookie": SECRET_COOKIE, "Proxy-Authorization": SECRET_AUTH,
    "X-Api-Key": "k", "X-Request-Id": "rid-1", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
}


async def headers_seen(tmp_path: Path, target: RawBackend, propagate: str | None) -> dict[str, str]:
    """The headers the backend receives for a request carrying INBOUND, under ``PROPAGATE_HEADERS``."""
    target.reset()
    rp = start_router(tmp_path, {"g": one_graph(target.route("ok"))}, env={"PROPAGATE_HEADERS": propagate})
    try:
        assert (await call(rp.url, b"{}", headers=INBOUND))[0] == 200
    finally:
        stop_router(rp)
    return target.requests[0].headers


BASE_HEADERS = {"host", "content-length", "content-type", "traceparent"}


async def test_only_allow_listed_headers_reach_backends(tmp_path: Path, fresh: tuple[RawBackend, RawBackend]) -> None:
    target, _ = fresh
    # W3C trace context always travels (as spans would); nothing else without PROPAGATE_HEADERS
    assert set(await headers_seen(tmp_path / "unset", target, None)) == BASE_HEADERS
    some = await headers_seen(tmp_path / "some", target, "X-Request-Id,^Authorization$")
    assert set(some) == BASE_HEADERS | {"x-request-id", "authorization"}
    assert some["authorization"] == SECRET_AUTH


@pytest.mark.parametrize("propagate", ["", "X-Request-Id,", "X-Request-Id,,X-B3"],
                         ids=["empty", "trailing-comma", "double-comma"])
async def test_an_empty_pattern_forwards_nothing(tmp_path: Path, fresh: tuple[RawBackend, RawBackend],
                                                 propagate: str) -> None:
    seen = await headers_seen(tmp_path, fresh[0], propagate)
    assert "authorization" not in seen and "cookie" not in seen and "proxy-authorization" not in seen


async def test_secrets_never_reach_logs_traces_or_causes(tmp_path: Path, fresh: tuple[RawBackend, RawBackend]) -> None:
    target, _ = fresh
    refused = f"http://127.0.0.1:{refused_port()}/v1/models/gone:predict"
    graphs = {
        "ok": graph("ok", sequence(target.route("ok"))),
        "boom": graph("boom", sequence(target.route("boom"))),
        "refused": graph("refused", sequence(refused, "          retry: {maxRetries: 0}\n")),
        "switch": graph("switch", "    root:\n      routerType: Switch\n      steps:\n"
                                  f"        - serviceUrl: {target.route('ok')}\n          condition: never\n"),
    }
    rp = start_router(tmp_path, graphs, "--log-level", "debug", "--tracing", "console",
                      env={"PROPAGATE_HEADERS": "Authorization,Cookie"})
    answers = []
    try:
        for path in ("/graphs/ok", "/graphs/boom", "/graphs/refused", "/graphs/switch", "/graphs/nope", "/graphs"):
            answers.append(await call(rp.url + path, b'{"a": 1}', headers=INBOUND))
        answers.append(await call(rp.url + "/graphs/ok", b"{}", headers=INBOUND, method="GET"))
        rp.signal(signal.SIGTERM)
        assert await asyncio.to_thread(rp.wait, 20) == 0
    finally:
        stop_router(rp)
    assert [a[0] for a in answers] == [200, 500, 500, 404, 404, 404, 200]
    log = rp.log()
    assert '"kind":"access"' in log and '"name": "step 0"' in log  # the log and the spans were captured
    for secret in ("s3cret-AUTH", "s3cret-COOKIE"):
        assert secret not in log
        for _, headers, body in answers:
            assert secret not in body.decode(errors="replace") and secret not in str(headers)
    assert target.requests[0].headers["authorization"] == SECRET_AUTH  # it was propagated, so it was in hand


# --- inbound auth ------------------------------------------------------------------------------------------------


async def check_auth(rp: RouterProcess, target: RawBackend) -> None:
    challenge = 'Bearer realm="graph-router"'
    for headers, cause in (({}, "missing bearer token"), ({"Authorization": "Bearer wrong-token-xyz"},
                           "invalid bearer token"), ({"Authorization": f"Basic {TOKEN}"}, "invalid bearer token"),
                           ({"Authorization": TOKEN}, "invalid bearer token")):
        for path, method in (("/", "POST"), ("/graphs", "GET"), ("/graphs/g", "GET"), ("/graphs/nope", "POST")):
            status, got, body = await call(rp.url + path, b"{}", headers=headers, method=method)
            assert (status, cause_of(body)) == (401, cause)
            assert got["WWW-Authenticate"] == challenge and got["Content-Type"] == "application/json"
    assert target.hits["ok"] == 0
    for path in ("/readyz", "/healthz", "/metrics"):  # probes and scrapers need no token
        assert (await call(rp.url + path, b"", method="GET"))[0] == 200
    for scheme in ("Bearer", "bearer"):
        status, _, _ = await call(rp.url, b"{}", headers={"Authorization": f"{scheme} {TOKEN}"})
        assert status == 200
    assert (await call(rp.url + "/graphs/g", b"", headers={"Authorization": f"Bearer {TOKEN}"}, method="GET"))[0] == 200
    assert "authorization" not in target.requests[-1].headers  # consumed by the router, not forwarded


async def test_bearer_token_from_env(tmp_path: Path, fresh: tuple[RawBackend, RawBackend]) -> None:
    target, _ = fresh
    rp = start_router(tmp_path, {"g": one_graph(target.route("ok"))}, env={"GRAPH_ROUTER_AUTH_TOKEN": TOKEN})
    try:
        await check_auth(rp, target)
    finally:
        stop_router(rp)
    assert TOKEN not in rp.log()


async def test_bearer_token_from_file(tmp_path: Path, fresh: tuple[RawBackend, RawBackend]) -> None:
    target, _ = fresh
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    rp = start_router(tmp_path, {"g": one_graph(target.route("ok"))}, "--auth-token-file", str(token_file),
                      env={"GRAPH_ROUTER_AUTH_TOKEN": "the-file-wins"})
    try:
        await check_auth(rp, target)
    finally:
        stop_router(rp)


@pytest.mark.parametrize("content", [None, "", "\n"], ids=["missing", "empty", "blank"])
def test_unusable_token_file_refuses_to_start(tmp_path: Path, content: str | None) -> None:
    token_file = tmp_path / "token"
    if content is not None:
        token_file.write_text(content)
    (tmp_path / "g.yaml").write_text(one_graph("http://127.0.0.1:9/m"))
    out = subprocess.run([sys.executable, "-m", "graph_router", "serve", str(tmp_path / "g.yaml"), "--port", "0",
                          "--auth-token-file", str(token_file)], capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert out.returncode == 2 and "--auth-token-file" in out.stderr and "Traceback" not in out.stderr


# --- graphs are read-only over HTTP --------------------------------------------------------------------------


async def test_no_endpoint_changes_graphs(tmp_path: Path, fresh: tuple[RawBackend, RawBackend]) -> None:
    target, attacker = fresh
    graphs = {"a": graph("a", sequence(target.route("ok"))), "b": graph("b", sequence(target.route("ok", "b")))}
    rp = start_router(tmp_path, graphs)
    files = {p: p.read_bytes() for p in (tmp_path / "graphs").iterdir()}
    try:
        before = [await call(rp.url + p, b"", method="GET") for p in ("/graphs", "/graphs/a", "/graphs/b")]
        replacement = orjson.dumps({"apiVersion": "serving.kserve.io/v1alpha1", "kind": "InferenceGraph",
                                    "metadata": {"name": "a"}, "spec": {"nodes": {"root": {
                                        "routerType": "Sequence", "steps": [{"serviceUrl": attacker.route("ok")}]}}}})
        for method in ("PUT", "POST", "PATCH", "DELETE"):
            for path in ("/graphs/a", "/graphs", "/graphs/c", "/graphs/a/nodes/root", "/graphs/a?reload=1"):
                await call(rp.url + path, replacement, method=method)
        after = [await call(rp.url + p, b"", method="GET") for p in ("/graphs", "/graphs/a", "/graphs/b")]
        status, _, _ = await call(rp.url + "/graphs/a", b"{}")
        for i in range(50):
            await call(f"{rp.url}/graphs/made-up-{i}", b"{}")
        metrics = (await call(rp.url + "/metrics", b"", method="GET"))[2].decode()
    finally:
        stop_router(rp)
    assert [(s, b) for s, _, b in after] == [(s, b) for s, _, b in before] and before[1][0] == 200
    assert status == 200 and sum(attacker.hits.values()) == 0
    assert {p: p.read_bytes() for p in (tmp_path / "graphs").iterdir()} == files
    # names a client makes up create no metric series (no label-cardinality blow-up)
    assert 'graph="a"' in metrics and "made-up" not in metrics and 'graph="c"' not in metrics


# --- the image and the process write nothing ------------------------------------------------------------------


def test_dockerfile_runs_as_numeric_non_root_with_nothing_to_write() -> None:
    text = (ROOT / "Dockerfile").read_text()
    final = re.split(r"^FROM\s", text, flags=re.M)[-1]  # the runtime stage
    users = re.findall(r"^USER\s+(\S+)", final, flags=re.M)
    assert users, "the runtime stage sets no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0 and (not gid or (gid.isdigit() and int(gid) != 0))
    assert not re.search(r"^VOLUME\s", final, flags=re.M)  # no writable mount needed to start
    assert re.search(r"^ENV\s.*PYTHONDONTWRITEBYTECODE=1", final, flags=re.M)
    assert re.search(r'^ENTRYPOINT\s+\["graph-router",\s*"serve"\]', final, flags=re.M)
    # nothing after USER changes the filesystem at run time (a RUN after USER would still be build time)
    assert "--read-only" in text


AUDIT = r"""
import os, sys
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
CHANGES = {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.symlink", "os.link", "os.truncate", "os.chmod",
           "os.chown", "os.utime", "shutil.rmtree", "shutil.copyfile", "shutil.move", "os.mkfifo", "os.mknod"}
def hook(event, args):
    if event == "open":
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & WRITE_FLAGS)
        if writing and path not in ("/dev/null", "/dev/tty"):
            sys.stderr.write(f"AUDIT-WRITE open {path!r} {mode!r} {flags!r}\n")
    elif event in CHANGES:
        sys.stderr.write(f"AUDIT-WRITE {event} {args!r}\n")
sys.addaudithook(hook)
"""
RUN_CLI = "from graph_router.cli import main\nsys.exit(main())\n"


def spawn(cmd: list[str], env: dict[str, str], cwd: Path, port: int, log_file: Path) -> RouterProcess:
    with log_file.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
    return RouterProcess(proc, port, log_file)


def snapshot(*dirs: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for d in dirs for p in d.rglob("*")}


async def test_router_writes_nothing(tmp_path: Path, fresh: tuple[RawBackend, RawBackend]) -> None:
    target, _ = fresh
    home, cwd, tmp = (tmp_path / n for n in ("home", "cwd", "tmp"))
    for d in (home, cwd, tmp):
        d.mkdir()
    graph_file = tmp_path / "g.yaml"
    graph_file.write_text(one_graph(target.route("ok")))
    for d in (home, cwd, tmp):
        d.chmod(0o555)
    port = free_port()
    log_file = tmp_path / "router.log"
    env = {**os.environ, "HOME": str(home), "TMPDIR": str(tmp), "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONPATH": str(ROOT)}
    before = snapshot(home, cwd, tmp)
    rp = spawn([sys.executable, "-c", AUDIT + RUN_CLI, "serve", str(graph_file), "--host", "127.0.0.1", "--port",
                str(port), "--drain-seconds", "0", "--tracing", "console"], env, cwd, port, log_file)
    try:
        wait_ready(rp)
        for path, method in (("/", "POST"), ("/graphs/g", "POST"), ("/metrics", "GET"), ("/graphs", "GET")):
            await call(rp.url + path, b'{"instances": [1]}', method=method)
        rp.signal(signal.SIGTERM)
        assert await asyncio.to_thread(rp.wait, 20) == 0
    finally:
        stop_router(rp)
        for d in (home, cwd, tmp):
            d.chmod(0o755)
    log = rp.log()
    assert "stopped cleanly" in log and target.hits["ok"] == 2
    assert "AUDIT-WRITE" not in log, [ln for ln in log.splitlines() if "AUDIT-WRITE" in ln]
    assert snapshot(home, cwd, tmp) == before == {}


def test_the_write_audit_sees_writes(tmp_path: Path) -> None:
    """The audit hook above would report a write: the check in test_router_writes_nothing can fail."""
    code = AUDIT + f"open({str(tmp_path / 'x')!r}, 'w').close()\nos.mkdir({str(tmp_path / 'd')!r})\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.stderr.count("AUDIT-WRITE") == 2, out.stderr

