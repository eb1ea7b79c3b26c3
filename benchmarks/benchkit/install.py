"""Making sure wrk, nginx and taskset are present, installing the missing ones with apt-get."""

from __future__ import annotations

import os
import shutil
import subprocess
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
