"""The one launcher of ``graph-router serve`` as a real process, and what tests read from that process.

Each router runs in its own session (so a kill reaches its workers) with its output in a log file under
the test's directory, on a free port of 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from .ports import free_port

#: The repository: routers run from here, so relative paths in a test mean the same as in the docs.
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ServerProcess:
    """A server process of a test listening on 127.0.0.1, its output in ``log_path``."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30) -> int:
        return self.proc.wait(timeout=timeout)


def spawn(argv: list[str], log_path: Path, env: Mapping[str, str | None] | None = None) -> subprocess.Popen[bytes]:
    """Start ``argv`` from the repository in its own session (a kill of the group reaches its children),
    stdout and stderr to ``log_path``; ``env`` is laid over this process's (None removes a variable)."""
    full_env = {k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None}
    with log_path.open("wb") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=ROOT,
                                start_new_session=True)


@dataclass
class RouterProcess(ServerProcess):
    """A running ``graph-router serve``."""

    def rss(self) -> int:
        """Resident set size in bytes."""
        return rss_kib(self.proc.pid) * 1024

    def cpu(self) -> float:
        """User plus system CPU seconds used so far."""
        return cpu_seconds(self.proc.pid)

    def access(self) -> list[dict[str, object]]:
        """The access-log lines written so far."""
        return [json.loads(line) for line in self.log().splitlines()
                if line.startswith("{") and '"kind":"access"' in line]

    async def logged(self, text: str, count: int = 1, within: float = 20) -> str:
        """Bounded wait until ``text`` is in the log ``count`` times (``"serving "`` twice: both workers
        handle signals and accept connections); the log then, or an AssertionError with it."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            log = self.log()
            if log.count(text) >= count:
                return log
            if self.proc.poll() is not None:
                break
            await asyncio.sleep(0.02)
        raise AssertionError(f"{text!r} not logged {count} times (exit {self.proc.poll()}):\n{self.log()}")


def write_graphs(directory: Path, graphs: Mapping[str, str]) -> Path:
    """Write ``graphs`` (file stem -> YAML) into ``directory`` as ``<stem>.yaml``; returns ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in graphs.items():
        (directory / f"{name}.yaml").write_text(text)
    return directory


def launch_router(*args: str, workdir: Path, env: Mapping[str, str | None] | None = None,
                  ready: bool = True) -> RouterProcess:
    """``python -m graph_router serve ARGS --host 127.0.0.1 --port P`` (P free), logging to ``workdir``.

    ``env`` is laid over this process's environment (a None value removes the variable). With ``ready``,
    returns once ``/readyz`` answers 200, and stops the process if it never does."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"router-{port}.log"
    cmd = [sys.executable, "-m", "graph_router", "serve", *args, "--host", "127.0.0.1", "--port", str(port)]
    rp = RouterProcess(spawn(cmd, log_path, env), port, log_path)
    if ready:
        try:
            wait_ready(rp)
        except BaseException:
            stop_router(rp)
            raise
    return rp


def stop_router(rp: RouterProcess) -> None:
    """SIGKILL the router's process group (workers too, even when the supervisor already exited), and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(rp.proc.pid, signal.SIGKILL)
    rp.proc.wait(timeout=10)


@contextlib.contextmanager
def routers(workdir: Path, *common: str) -> Iterator[Callable[..., RouterProcess]]:
    """``start(*args, env=None, ready=True)``: :func:`launch_router` with ``common`` before ``args``; every
    router started is stopped when the block ends."""
    started: list[RouterProcess] = []

    def start(*args: str, env: Mapping[str, str | None] | None = None, ready: bool = True) -> RouterProcess:
        rp = launch_router(*common, *args, workdir=workdir, env=env, ready=ready)
        started.append(rp)
        return rp

    try:
        yield start
    finally:
        for rp in started:
            stop_router(rp)


@contextlib.contextmanager
def running_router(*args: str, workdir: Path, env: Mapping[str, str | None] | None = None) -> Iterator[RouterProcess]:
    """:func:`launch_router` for the length of a ``with`` block."""
    rp = launch_router(*args, workdir=workdir, env=env)
    try:
        yield rp
    finally:
        stop_router(rp)


#: No proxy from the environment between a test and 127.0.0.1.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def wait_ready(sp: ServerProcess, timeout: float = 20, *, path: str = "/readyz",
               ready: Callable[[bytes], bool] = lambda _body: True) -> None:
    """Bounded wait for ``GET path`` to answer 200 (with a body ``ready`` accepts); fails with the process's
    log if it exits or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sp.proc.poll() is not None:
            raise AssertionError(f"{sp.proc.args!r} exited with {sp.proc.returncode}:\n{sp.log()}")
        try:
            with DIRECT.open(f"{sp.url}{path}", timeout=1) as r:
                if r.status == 200 and ready(r.read()):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{sp.proc.args!r} not ready after {timeout}s:\n{sp.log()}")


# --- what a process costs, from /proc -------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int, key: str = "VmRSS") -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak since start or the last :func:`reset_peak`) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {key} for pid {pid}")


def reset_peak(pid: int) -> bool:
    """Reset the peak RSS (``VmHWM``) to the current RSS; False where the kernel does not allow it."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True
