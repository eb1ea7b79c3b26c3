"""``graph-router quickstart`` as a real process: started, read until ready, stopped."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys

from .router import ROOT

READY = "Press Ctrl-C to stop."


async def start_quickstart(*args: str, terminal: bool = False,
                           within: float = 45.0) -> tuple[asyncio.subprocess.Process, list[str]]:
    """``python -m graph_router quickstart ARGS`` from the repository, in its own session; returns the
    process and the lines it printed up to and including the one that says it is ready (within
    ``within`` seconds). ``terminal``: stderr joins stdout in one stream, as a terminal shows them."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "graph_router", "quickstart", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT if terminal else asyncio.subprocess.DEVNULL, start_new_session=True)
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(within):
            while not any(READY in line for line in lines):
                line = (await proc.stdout.readline()).decode()
                assert line, f"quickstart ended early: {lines}"
                lines.append(line)
    except BaseException:
        await stop_quickstart(proc)
        raise
    return proc, lines


async def stop_quickstart(proc: asyncio.subprocess.Process) -> None:
    """If it still runs: SIGTERM (the quick start then stops the router and the model host it started),
    and SIGKILL to its whole session after 15 s."""
    if proc.returncode is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), 15)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()


def kill_quickstart(proc: asyncio.subprocess.Process, lines: list[str]) -> None:
    """After a test, whatever happened: SIGKILL the quick start and every process it said it started."""
    if proc.returncode is None:
        proc.kill()
    for pid in (int(m) for line in lines for m in re.findall(r"^started .* \(pid (\d+)\)", line)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
