"""Making sure wrk, nginx and taskset are present (apt-get), and that the router runs on uvloop (pip)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

#: command -> Debian package that provides it
TOOLS = {"wrk": "wrk", "nginx": "nginx", "taskset": "util-linux"}
NGINX_PATHS = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")
# Debian's convention to stop maintainer scripts from starting services (nginx would bind :80).
POLICY_RC = Path("/usr/sbin/policy-rc.d")


def find_tool(name: str) -> str | None:
    """Return the path of ``name`` (nginx also lives in sbin, often off a user's PATH)."""
    found = shutil.which(name)
    if found or name != "nginx":
        return found
    return next((p for p in NGINX_PATHS if os.access(p, os.X_OK)), None)


def missing_tools() -> list[str]:
    return [name for name in TOOLS if find_tool(name) is None]


def ensure_tools(say: bool = True) -> dict[str, str]:
    """Install missing tools with apt-get (update once first) and return name -> path."""
    missing = missing_tools()
    if missing:
        packages = sorted({TOOLS[name] for name in missing})
        if shutil.which("apt-get") is None:
            raise SystemExit(f"missing {', '.join(missing)} and no apt-get: install {' '.join(packages)}")
        if say:
            print(
                f"# installing {' '.join(packages)} with apt-get (missing: {', '.join(missing)}); "
                "running apt-get update once first",
                flush=True,
            )
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env, timeout=300)
        created_policy = _block_service_start(sudo)
        try:
            subprocess.run(
                [*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
                check=True,
                env=env,
                timeout=600,
            )
        finally:
            if created_policy:
                POLICY_RC.unlink(missing_ok=True)
    paths = {name: find_tool(name) for name in TOOLS}
    still = [name for name, path in paths.items() if path is None]
    if still:
        raise SystemExit(f"still missing after install: {', '.join(still)}")
    return {name: path for name, path in paths.items() if path is not None}


def _block_service_start(sudo: list[str]) -> bool:
    """Keep the nginx package from starting a system nginx on :80 while it installs."""
    if POLICY_RC.exists() or sudo:
        return False
    POLICY_RC.write_text("#!/bin/sh\nexit 101\n")
    POLICY_RC.chmod(0o755)
    return True


def router_python(router_cmd: list[str]) -> str | None:
    """The Python interpreter that runs ``router_cmd`` (a venv's ``graph-router`` script or ``python -m``)."""
    prog = Path(router_cmd[0])
    if len(router_cmd) >= 3 and router_cmd[1:3] == ["-m", "graph_router"]:
        return str(prog)
    if prog.name == "graph-router" and (prog.parent / "python").exists():
        return str(prog.parent / "python")
    return None  # another router command: its interpreter is not ours to change


def _uvloop_version(python: str) -> str | None:
    # msgspec (the fast extra's JSON scan) must be there too: without it large bodies are parsed.
    got = subprocess.run([python, "-c", "import msgspec, uvloop; print(uvloop.__version__)"], capture_output=True,
                         text=True, timeout=60)
    return got.stdout.strip() if got.returncode == 0 else None


def fast_requirements(pyproject: Path) -> list[str]:
    """The ``fast`` extra's requirements (uvloop, msgspec), as pyproject.toml states them."""
    data = tomllib.loads(pyproject.read_text())
    return list(data["project"]["optional-dependencies"]["fast"])


def ensure_uvloop(router_cmd: list[str], pyproject: Path, say: bool = True) -> str:
    """Install the ``fast`` extra into the router's Python if uvloop is missing; return the event loop in use.

    ``serve`` runs on uvloop when it can import it, as the Docker image does (it installs ``.[fast]``);
    a plain ``pip install -e .`` has no uvloop, and its figures would be asyncio's, not production's.
    """
    python = router_python(router_cmd)
    if python is None:
        return "as the --router command has it"
    version = _uvloop_version(python)
    if version is None:
        reqs = fast_requirements(pyproject)
        if say:
            print(f"# installing {' '.join(reqs)} into {python} with pip (the fast extra is missing; serve runs on it "
                  "in production: the Docker image installs the 'fast' extra)", flush=True)
        subprocess.run([python, "-m", "pip", "install", "-q", *reqs], check=True, timeout=600)
        version = _uvloop_version(python)
        if version is None:
            raise SystemExit(f"uvloop still cannot be imported by {python} after installing it")
    return f"uvloop {version}"
