"""Starting and always stopping the processes a benchmark needs.

Every child gets its own process group (so a router's workers die with it), is recorded in a
:class:`Supervisor`, and is stopped by ``stop_all`` from a ``finally``, ``atexit`` and SIGTERM.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import http.client
import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType

HOST = "127.0.0.1"


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL if the harness dies without cleaning up (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # best effort: stop_all still runs on every ordinary exit


def raise_fd_limit() -> int:
    """Raise this process's (and so the children's) open-file soft limit to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class StartError(RuntimeError):
    """A process exited or never became ready; the message carries the tail of its log."""


def free_port() -> int:
    """Return a port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    """True when something accepts TCP connections on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def log_tail(path: Path, limit: int = 1500) -> str:
    try:
        text = path.read_text(errors="replace").strip()
    except FileNotFoundError:
        return "(no log)"
    return text if len(text) <= limit else "..." + text[-limit:]


def pinned(argv: Sequence[str], cpu: int | None) -> list[str]:
    """Prefix ``argv`` with ``taskset -c cpu`` when a core is given."""
    return ["taskset", "-c", str(cpu), *argv] if cpu is not None else list(argv)


class Supervisor:
    """Owns every process the harness starts and stops them all, however the run ends."""

    def __init__(self, *, install: bool = True) -> None:
        """``install``: also raise the fd limit and turn SIGTERM/SIGHUP into a clean exit."""
        self._procs: list[tuple[subprocess.Popen[bytes], Path]] = []
        atexit.register(self.stop_all)
        if install:
            raise_fd_limit()  # c512 needs more than 1024 descriptors in wrk and the router
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGHUP, self._on_signal)

    @staticmethod
    def _on_signal(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop children

    def start(
        self,
        argv: Sequence[str],
        log: Path,
        env: Mapping[str, str | None] | None = None,
        *,
        discard_stdout: bool = False,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` in a new process group, stderr (and stdout unless discarded) to ``log``.

        ``env`` is applied over this process's environment; a None value removes the variable.
        """
        merged = dict(os.environ)
        for key, value in (env or {}).items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        with log.open("ab") as out:
            proc = subprocess.Popen(
                list(argv),
                stdout=subprocess.DEVNULL if discard_stdout else out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=merged,
                preexec_fn=_die_with_parent,
            )
        self._procs.append((proc, log))
        return proc

    def running(self) -> list[subprocess.Popen[bytes]]:
        """The processes started and not stopped yet, oldest first."""
        return [p for p, _ in self._procs]

    def log_of(self, proc: subprocess.Popen[bytes]) -> Path | None:
        return next((log for p, log in self._procs if p is proc), None)

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 5.0, *, kill: bool = False) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace`` seconds (at once with ``kill``)."""
        steps = ((signal.SIGKILL, 2.0),) if kill else ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0))
        for sig, wait in steps:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # Workers that outlived their parent are still in the group: make sure they are gone too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        self._procs = [(p, log) for p, log in self._procs if p is not proc]

    def stop_all(self) -> None:
        for proc, _ in reversed(list(self._procs)):
            self.stop(proc)


def wait_http_ready(proc: subprocess.Popen[bytes], port: int, path: str, log: Path, timeout: float = 20.0) -> None:
    """Poll ``GET path`` on 127.0.0.1:``port`` until it answers 200; raise :class:`StartError`."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StartError(f"exited with {proc.returncode} before ready:\n{log_tail(log)}")
        conn = http.client.HTTPConnection(HOST, port, timeout=1.0)
        try:
            conn.request("GET", path)
            status = conn.getresponse().status
            if status == 200:
                return
            last = f"status {status}"
        except OSError as exc:
            last = str(exc)
        finally:
            conn.close()
        time.sleep(0.1)
    raise StartError(f"not ready after {timeout:.0f}s on port {port} ({last}):\n{log_tail(log)}")


def post_once(port: int, path: str, body: bytes, timeout: float = 5.0) -> tuple[int, bytes]:
    """POST ``body`` once and return (status, body): a smoke check before measuring."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()
