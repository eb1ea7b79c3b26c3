"""`graph-router serve --grpc-port` as a real process (uvloop when installed): serve, drain, and a clear error
when the grpc extra is missing."""

from __future__ import annotations

import asyncio
import builtins
import signal
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from graph_router.cli import main

from ..support.ports import free_port
from .fixtures import GrpcModels, fp32_request, grpc, pb, pb_grpc


def write_graph(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "g.json"
    path.write_text(orjson.dumps({"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": url}]}}})
                    .decode())
    return path


async def test_serve_grpc_port_then_drain(router_process: Any, tmp_path: Path, grpc_models: GrpcModels) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    port = free_port()
    rp = router_process(str(write_graph(tmp_path, grpc_models.url("double"))), "--grpc-port", str(port),
                        "--drain-seconds", "1")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        out = await stub.ModelInfer(fp32_request("g", [1.0, 4.0]), timeout=10)
        assert list(out.outputs[0].contents.fp32_contents) == [2.0, 8.0]
        health = health_pb2_grpc.HealthStub(channel)
        assert (await health.Check(health_pb2.HealthCheckRequest())).status == health_pb2.HealthCheckResponse.SERVING
        rp.signal(signal.SIGTERM)
        for _ in range(100):  # bounded: draining shows within a few loop turns
            if not (await stub.ServerReady(pb.ServerReadyRequest(), timeout=5)).ready:
                break
            await asyncio.sleep(0.02)
        assert (await stub.ServerReady(pb.ServerReadyRequest(), timeout=5)).ready is False
        got = await health.Check(health_pb2.HealthCheckRequest(service="inference.GRPCInferenceService"))
        assert got.status == health_pb2.HealthCheckResponse.NOT_SERVING
        # still serving graph calls while draining, as over HTTP
        out = await stub.ModelInfer(fp32_request("g", [3.0]), timeout=10)
        assert list(out.outputs[0].contents.fp32_contents) == [6.0]
    assert await asyncio.to_thread(rp.wait, 30) == 0
    assert f"and grpc://127.0.0.1:{port}" in rp.log()


def test_grpc_port_without_the_extra_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "grpc_health" else real(name))
    code = main(["serve", str(write_graph(tmp_path, "http://127.0.0.1:1/x")), "--grpc-port", "0"])
    assert code == 2
    assert capsys.readouterr().err == ("error: --grpc-port needs the grpc extra (grpc_health is not installed): "
                                       "pip install 'graph-router[grpc]'\n")


def test_grpc_step_without_the_extra_is_a_load_time_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    real_import = builtins.__import__

    def no_grpc(name: str, *args: Any, **kw: Any) -> Any:
        if name.startswith("grpc"):  # grpc itself, and the relative import of graph_router.grpc.backend
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kw)

    monkeypatch.delitem(sys.modules, "graph_router.grpc.backend", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_grpc)
    code = main(["run", str(write_graph(tmp_path, "grpc://127.0.0.1:1/m")), "-d", "{}"])
    assert code == 2
    err = capsys.readouterr().err
    assert "nodes.root.steps[0]: grpc://127.0.0.1:1/m: gRPC steps need the grpc extra: " \
           "pip install 'graph-router[grpc]'" in err


@pytest.mark.parametrize(("url", "problem"), [
    ("grpc://127.0.0.1:9000", "expected grpc://HOST:PORT/MODEL (or /MODEL/VERSION)"),
    ("grpc://:9000/m", "no host; expected grpc://HOST:PORT/MODEL"),
    ("grpc://127.0.0.1:x/m", "the port is not a number"),
    ("grpc://u:p@127.0.0.1:1/m", "credentials in backend URLs are not supported"),
])
def test_bad_grpc_urls_are_load_time_problems(tmp_path: Path, url: str, problem: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(write_graph(tmp_path, url))]) == 0  # syntax only: validate binds nothing
    assert main(["run", str(write_graph(tmp_path, url)), "-d", "{}"]) == 2
    err = capsys.readouterr().err
    assert "nodes.root.steps[0]: " in err and problem in err
    assert "p@" not in err


def test_a_busy_grpc_port_is_a_clear_error(tmp_path: Path) -> None:
    import socket
    import subprocess

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "graph_router", "serve",
                               str(write_graph(tmp_path, "grpc://127.0.0.1:1/m")), "--host", "127.0.0.1",
                               "--port", str(free_port()), "--grpc-port", str(port)],
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.endswith(f"error: --grpc-port {port}: cannot listen on 127.0.0.1:{port} (in use, or not "
                                "an address of this host)\n")
    assert "Traceback" not in done.stderr


async def test_workers_share_the_grpc_port(router_process: Any, tmp_path: Path, grpc_models: GrpcModels) -> None:
    """--workers 2: each worker serves gRPC on the same port (SO_REUSEPORT), and all stop on SIGTERM."""
    port = free_port()
    rp = router_process(str(write_graph(tmp_path, grpc_models.url("double"))), "--grpc-port", str(port),
                        "--workers", "2", "--drain-seconds", "0")
    await rp.logged(f"and grpc://127.0.0.1:{port}", 2)  # both workers serve gRPC
    for _ in range(6):  # fresh connections: either worker may take each
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            out = await pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(fp32_request("g", [2.0]), timeout=10)
            assert list(out.outputs[0].contents.fp32_contents) == [4.0]
    rp.signal(signal.SIGTERM)
    assert await asyncio.to_thread(rp.wait, 30) == 0
    assert rp.log().count(f"and grpc://127.0.0.1:{port}") == 2


async def test_grpcs_step(router_process: Any, tmp_path: Path, cert: tuple[str, str]) -> None:
    """A grpcs:// step verifies the model's certificate against the default roots (grpc-core reads
    GRPC_DEFAULT_SSL_ROOTS_FILE_PATH; here the self-signed test certificate)."""
    from .fixtures import GrpcModels, _Servicer, scale

    crt, key = cert
    state = GrpcModels(models={"double": scale(2.0)})
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(_Servicer(state), server)
    pair = await asyncio.to_thread(lambda: (Path(key).read_bytes(), Path(crt).read_bytes()))
    creds = grpc.ssl_server_credentials([pair])
    state.port = server.add_secure_port("127.0.0.1:0", creds)
    await server.start()
    try:
        port = free_port()
        url = f"grpcs://127.0.0.1:{state.port}/double"
        rp = router_process(str(write_graph(tmp_path, url)), "--grpc-port", str(port), "--drain-seconds", "0",
                            env={"GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": crt})
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            out = await pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(fp32_request("g", [1.5]), timeout=10)
        assert list(out.outputs[0].contents.fp32_contents) == [3.0]
        assert len(state.seen["double"]) == 1
        rp.signal(signal.SIGTERM)
        assert await asyncio.to_thread(rp.wait, 30) == 0
        # without the certificate among the roots the model is not trusted: nothing reaches it
        port = free_port()
        router_process(str(write_graph(tmp_path, url)), "--grpc-port", str(port), "--drain-seconds", "0",
                       "--no-default-retry", env={"GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": ""})
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(fp32_request("g", [1.5]), timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert len(state.seen["double"]) == 1
    finally:
        await server.stop(None)
