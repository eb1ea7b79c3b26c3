"""A real ``kserve.ModelServer`` (tests/interop/kserve_models.py) in a subprocess, one per test module."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import pytest

from ..support.ports import free_port
from ..support.router import ServerProcess, spawn, wait_ready

SKIP_REASON = "interop tests need the real KServe package: pip install -e '.[interop]'"
READY_TIMEOUT = 30.0
M = TypeVar("M", bound="ModelServerProcess")
V1_MODELS = ("doubler", "tripler", "thresholder", "sleeper")
V2_MODELS = ("scaler", "scaler2", "classifier", "echo")


def import_kserve() -> Any:
    """``import kserve``, or skip the calling module with a clear reason.

    ``kserve.model_server`` parses ``sys.argv`` with argparse when imported, prefix matching included:
    pytest's own options (``--co`` reads as its ``--configure_logging``) would make it exit. It gets an
    empty command line instead.
    """
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        return pytest.importorskip("kserve", reason=SKIP_REASON)
    finally:
        sys.argv = saved


@dataclass
class ModelServerProcess(ServerProcess):
    """The model server's address, plus the ``recorder`` model's view of what each model received."""

    def v1(self, model: str) -> str:
        return f"{self.url}/v1/models/{model}:predict"

    def v2(self, model: str) -> str:
        return f"{self.url}/v2/models/{model}/infer"

    def services(self) -> dict[str, str]:
        """serviceName -> URL for every model, as ``GraphRouter(services=...)`` / ``--service`` take them."""
        return {**{m: self.v1(m) for m in V1_MODELS}, **{m: self.v2(m) for m in V2_MODELS}}

    def post(self, url: str, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
        """A plain call to the model server, to compare with what the router returned."""
        req = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return int(r.status), bytes(r.read())
        except urllib.error.HTTPError as err:
            return int(err.code), bytes(err.read())

    def seen(self, model: str) -> list[dict[str, Any]]:
        """Every request ``model`` received since the last ``clear()``: ``{"body": ..., "headers": ...}``."""
        status, body = self.post(self.v1("recorder"), orjson.dumps({"instances": [model]}))
        assert status == 200, body
        seen: list[dict[str, Any]] = orjson.loads(body)["predictions"][0]
        return seen

    def clear(self) -> None:
        status, body = self.post(self.v1("recorder"), b'{"clear": true}')
        assert status == 200, body


def wait_model_server(ms: ModelServerProcess, timeout: float = READY_TIMEOUT) -> None:
    """Bounded wait for ``GET /v2/health/ready`` (true once every registered model is ready)."""
    wait_ready(ms, timeout, path="/v2/health/ready", ready=lambda body: orjson.loads(body).get("ready") is True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group (uvicorn's graceful stop), SIGKILL it if it lingers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@contextlib.contextmanager
def serving(ms: M) -> Iterator[M]:
    """A model server just started, once ready; stopped when the block ends."""
    try:
        wait_model_server(ms)
        yield ms
    finally:
        stop(ms.proc)


@pytest.fixture(scope="module")
def kserve_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServerProcess]:
    """``python -m tests.interop.kserve_models PORT`` on 127.0.0.1; stopped (process group) after the module."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("kserve") / "model-server.log"
    proc = spawn([sys.executable, "-m", "tests.interop.kserve_models", str(port)], log_path)
    with serving(ModelServerProcess(proc, port, log_path)) as ms:
        yield ms


@pytest.fixture
def models(kserve_server: ModelServerProcess) -> ModelServerProcess:
    """The module's model server with its request records cleared for this test."""
    kserve_server.clear()
    return kserve_server
