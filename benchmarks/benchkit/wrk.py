"""Driving wrk: the POST script, the command line, and parsing what it prints.

The Lua ``done`` hook prints one machine-readable line (``BENCHJSON {...}``) with exact
counts and microsecond percentiles, so nothing depends on wrk's human-formatted units.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

MARKER = "BENCHJSON "
#: wrk's per-request timeout: an answer slower than this counts as a timeout error, not a request.
TIMEOUT_S = 5

_LUA = """\
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{marker}{{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True, slots=True)
class WrkResult:
    """One wrk run. ``status_errors`` counts responses with status >= 400."""

    requests: int
    duration_s: float
    p50_us: float
    p90_us: float
    p99_us: float
    max_us: float
    status_errors: int
    socket_errors: int
    #: The socket errors by kind, as wrk prints them ("connect 0, read 2, write 0, timeout 31").
    socket_detail: str = ""

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def errors(self) -> int:
        return self.status_errors + self.socket_errors


def lua_script(body: str) -> str:
    """Return a wrk script that POSTs ``body`` as JSON and reports a BENCHJSON line."""
    if "]==]" in body:
        raise ValueError("body may not contain the Lua long-string terminator ]==]")
    return _LUA.format(body=body, marker=MARKER)


def write_script(directory: Path, body: str) -> Path:
    """Write the POST script into ``directory`` and return its path."""
    path = directory / "post.lua"
    path.write_text(lua_script(body))
    return path


def command(url: str, script: Path, connections: int, seconds: int, cpu: int | None) -> list[str]:
    """Build the wrk argv: one thread, pinned to ``cpu`` when given."""
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        f"{TIMEOUT_S}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    return ["taskset", "-c", str(cpu), *argv] if cpu is not None else argv


class WrkOutputError(ValueError):
    """wrk printed no result line (it failed to start or to connect)."""


def parse_output(text: str) -> WrkResult:
    """Parse wrk's stdout; raise :class:`WrkOutputError` when there is no BENCHJSON line."""
    for line in text.splitlines():
        if line.startswith(MARKER):
            data = json.loads(line[len(MARKER) :])
            return WrkResult(
                requests=int(data["requests"]),
                duration_s=int(data["duration_us"]) / 1e6,
                p50_us=float(data["p50_us"]),
                p90_us=float(data["p90_us"]),
                p99_us=float(data["p99_us"]),
                max_us=float(data["max_us"]),
                status_errors=int(data["status"]),
                socket_errors=sum(int(data[k]) for k in _SOCKET_KINDS),
                socket_detail=", ".join(f"{k} {int(data[k])}" for k in _SOCKET_KINDS),
            )
    raise WrkOutputError(f"no {MARKER.strip()} line in wrk output: {_tail(text)}")


_SOCKET_KINDS = ("connect", "read", "write", "timeout")
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)


def parse_rps_line(text: str) -> float | None:
    """Return wrk's own "Requests/sec:" figure, used to cross-check the BENCHJSON line."""
    match = _RPS.search(text)
    return float(match.group(1)) if match else None


def _tail(text: str, limit: int = 400) -> str:
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]
