"""Rendering the nginx configs in ``benchmarks/backends/`` and starting nginx with them."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from .procs import StartError, Supervisor, pinned, post_once, wait_http_ready

TEMPLATES = Path(__file__).resolve().parent.parent / "backends"
RESPONSE = '{"predictions":[1,2,3]}'
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def render(template: str, values: Mapping[str, object]) -> str:
    """Fill ``{{name}}`` placeholders; a placeholder without a value is an error."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"no value for {{{{{name}}}}}")
        return str(values[name])

    return _PLACEHOLDER.sub(fill, template)


def _read(name: str) -> str:
    return (TEMPLATES / name).read_text()


def _common(workdir: Path) -> str:
    # nginx ignores `user` (with a warning) unless it runs as root; as root, keep the worker
    # as root so it can use the temp dirs we created.
    user = "user root;" if os.geteuid() == 0 else ""
    return render(_read("common.conf.tmpl"), {"user": user, "dir": workdir})


def backend_config(workdir: Path, ports: Sequence[int], response: str = RESPONSE) -> str:
    """Config for one nginx serving the fixed response on each of ``ports``."""
    if "'" in response:
        raise ValueError("the fixed response may not contain a single quote")
    servers = "".join(render(_read("backend-server.conf.tmpl"), {"port": p, "response": response}) for p in ports)
    return render(_read("backend.conf.tmpl"), {"common": _common(workdir), "dir": workdir, "servers": servers})


def proxy_config(workdir: Path, port: int, upstream_port: int) -> str:
    """Config for nginx ``proxy_pass`` on ``port`` to the backend on ``upstream_port``."""
    values = {"common": _common(workdir), "dir": workdir, "port": port, "upstream_port": upstream_port}
    return render(_read("proxy.conf.tmpl"), values)


def start(
    sup: Supervisor, nginx: str, workdir: Path, config: str, ready_port: int, cpu: int | None
) -> subprocess.Popen[bytes]:
    """Write ``config`` into ``workdir`` and start nginx in the foreground; wait for ``ready_port``."""
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "nginx.conf"
    conf.write_text(config)
    log = workdir / "stdout.log"
    argv = [nginx, "-p", str(workdir), "-e", str(workdir / "error.log"), "-c", str(conf)]
    proc = sup.start(pinned(argv, cpu), log)
    wait_http_ready(proc, ready_port, "/", workdir / "error.log", timeout=10.0)
    return proc


def start_backends(
    sup: Supervisor, nginx_bin: str, workdir: Path, ports: Sequence[int], cpu: int | None, body: bytes
) -> subprocess.Popen[bytes]:
    """Start the fixed-response backends on ``ports`` and check one answers ``body`` with 200."""
    proc = start(sup, nginx_bin, workdir, backend_config(workdir, ports), ports[0], cpu)
    status, answer = post_once(ports[0], "/", body)
    if status != 200 or answer != RESPONSE.encode():
        raise StartError(f"backend answered {status} {answer[:100]!r}")
    return proc
