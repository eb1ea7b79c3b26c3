"""Every `sh` block of the quick-start and serving pages runs as written, in page order, from the repository root.

Servers (`graph-router quickstart`, `serve`, `models serve`) start in the background and are stopped by the
test; the ports the pages show (8080, 8081, 9000, 9001) become free ports on 127.0.0.1. A `json` block right
after an `sh` block is the answer its last command prints. `shell` blocks (a fresh install, Docker, a cluster)
are not run.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest

from ..support.ports import free_port
from ..support.router import DIRECT, spawn
from .markdown import DOCS, ROOT, Block, blocks, commands

PAGES = ("quickstart.md", "serving.md")
#: Commands that read a directory of examples holding other files than graphs (deploy.yaml, request.json).
DIRECTORY = re.compile(r"graph-router (serve|validate) graphs/(\S+/)?(\s|$)")
SERVER = re.compile(r"^graph-router (quickstart|serve|models serve)\b")
SHOWN_PORTS = ("8080", "8081", "9000", "9001")


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    ports: set[int]
    log: Path
    command: str


@dataclass
class Session:
    """Runs one page's commands; remembers the servers it started and the last command's output."""

    tmp: Path
    ports: dict[str, str] = field(default_factory=lambda: {p: str(free_port()) for p in SHOWN_PORTS})
    servers: list[Server] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        bin_dir = str(Path(sys.executable).parent)
        return {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}

    def localise(self, command: str) -> str:
        return re.sub(r"(?<!\d)(8080|8081|9000|9001)(?!\d)", lambda m: self.ports[m.group(1)], command)

    def run(self, command: str, where: str) -> str:
        command = self.localise(command)
        if SERVER.match(command):
            self.start(command, where)
            return ""
        out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=90, cwd=ROOT,
                             env=self.env())
        assert out.returncode == 0, f"{where}: {command}\n{out.stdout}\n{out.stderr}\n{self.logs()}"
        return out.stdout

    def start(self, command: str, where: str) -> None:
        argv = [a for a in shlex.split(command, comments=True) if a != "&"]
        kind = SERVER.match(command).group(1)  # type: ignore[union-attr]
        ready: list[str] = []
        if kind == "quickstart":
            defaults = {"--port": self.ports["8080"], "--models-port": self.ports["9000"],
                        "--grpc-port": self.ports["8081"]}
            argv += [x for flag, port in defaults.items() if flag not in argv for x in (flag, port)]
            ready = [f"http://127.0.0.1:{value_of(argv, '--port')}/readyz",
                     f"http://127.0.0.1:{value_of(argv, '--models-port')}/v2/health/ready"]
        elif kind == "serve":
            if "--host" not in argv:
                argv += ["--host", "127.0.0.1"]
            if "--port" not in argv:
                argv += ["--port", self.ports["8080"]]
            ready = [f"http://127.0.0.1:{value_of(argv, '--port')}/readyz"]
        else:
            if "--port" not in argv:
                argv += ["--port", self.ports["9000"]]
            ready = [f"http://127.0.0.1:{value_of(argv, '--port')}/v2/health/ready"]
        ports = {int(u.split(":")[2].split("/")[0]) for u in ready}
        for old in [s for s in self.servers if s.ports & ports]:
            self.stop(old)
        log = self.tmp / f"server-{len(self.servers)}.log"
        server = Server(spawn(argv, log, {"PATH": self.env()["PATH"]}), ports, log, command)
        self.servers.append(server)
        for url in ready:
            wait_for(url, server, where)

    def stop(self, server: Server) -> None:
        """Ctrl-C, a second one (which ends a drain wait), then SIGKILL; stragglers in its group are killed."""
        self.servers.remove(server)
        for sig, wait in ((signal.SIGINT, 1.0), (signal.SIGINT, 10.0), (signal.SIGKILL, 10.0)):
            if server.proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.proc.wait(timeout=wait)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait(timeout=10)

    def close(self) -> None:
        for server in list(self.servers):
            self.stop(server)

    def logs(self) -> str:
        return "\n".join(f"--- {s.command}\n{s.log.read_text(errors='replace')[-3000:]}" for s in self.servers)


def value_of(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def wait_for(url: str, server: Server, where: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            pytest.fail(f"{where}: {server.command} exited {server.proc.returncode}\n{server.log.read_text()}")
        with contextlib.suppress(OSError, urllib.error.URLError), DIRECT.open(url, timeout=2) as resp:
            if resp.status == 200:
                return
        time.sleep(0.1)
    pytest.fail(f"{where}: {server.command} not ready at {url} after {timeout} s\n{server.log.read_text()}")


def answer(output: str) -> object:
    """The JSON `curl` printed: with `-i` the status must be 2xx and the body follows the blank line."""
    if output.startswith("HTTP/"):
        head, _, output = output.replace("\r\n", "\n").partition("\n\n")
        assert 200 <= int(head.split()[1]) < 300, head
    try:
        return orjson.loads(output)
    except orjson.JSONDecodeError:
        return output


def steps(page: str) -> Iterator[tuple[Block, Block | None]]:
    """The page's `sh` blocks, each with the `json` block that follows it (its expected answer), if any."""
    found = blocks(DOCS / page)
    for i, block in enumerate(found):
        if block.lang != "sh":
            continue
        after = found[i + 1] if i + 1 < len(found) and found[i + 1].lang == "json" else None
        yield block, after


def run_page(page: str, tmp_path: Path) -> int:
    session = Session(tmp_path)
    ran = 0
    try:
        for block, expected in steps(page):
            output = ""
            for command in commands(block):
                output = session.run(command, block.where(page))
                ran += 1
            if expected is not None:
                assert answer(output) == orjson.loads(expected.text), f"{block.where(page)}: {output!r}"
    finally:
        session.close()
    return ran


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_page_commands_run_as_written(page: str, tmp_path: Path) -> None:
    assert run_page(page, tmp_path) >= 3


def test_the_pages_hold_directory_commands_and_answers() -> None:
    """The serving page runs `serve graphs/` and `validate graphs/ensemble/` (directories of examples that
    hold other files than graphs), and every page checks at least one answer."""
    directory = [c for b, _ in steps("serving.md") for c in commands(b) if DIRECTORY.search(c)]
    assert len(directory) == 2, directory
    for page in PAGES:
        assert any(expected for _, expected in steps(page)), page
