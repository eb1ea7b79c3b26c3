"""The model host's Knative emulation: models at zero hold requests for the cold start, then scale to zero."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from graph_router.modelhost import Model, ModelHost

from ..support.ports import free_port
from ..support.quickstart import kill_quickstart, start_quickstart

ROOT = Path(__file__).resolve().parents[2]
COLD = 0.4


class Echo(Model):
    """Answers its instances back."""

    name = "echo"

    def predict(self, instances: list[Any], parameters: dict[str, Any]) -> list[Any]:
        return instances


async def call(session: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> tuple[int, Any, float, str]:
    t0 = time.monotonic()
    async with session.request(method, url, json=body) as r:
        data = await r.read()
        return r.status, orjson.loads(data), time.monotonic() - t0, r.headers.get("X-Cold-Start-Held", "")


async def test_requests_at_zero_are_held_for_the_cold_start_then_served_warm() -> None:
    async with ModelHost([Echo("a"), Echo("b")], scale_to_zero=60, cold_start=COLD) as host, \
            aiohttp.ClientSession() as s:
        assert host.lifecycles["a"].state == "zero"
        url = host.url_for("a")
        first = await asyncio.gather(*(call(s, "POST", url, {"instances": [i]}) for i in range(5)))
        # every request held, none refused, one cold start
        assert [(st, body) for st, body, _, _ in first] == [(200, {"predictions": [i]}) for i in range(5)]
        assert all(elapsed >= COLD * 0.95 and float(held) >= COLD * 0.9 for _, _, elapsed, held in first)
        assert host.lifecycles["a"].cold_starts == 1 and host.lifecycles["a"].state == "ready"
        status, body, elapsed, held = await call(s, "POST", url, {"instances": [9]})
        assert (status, body, held) == (200, {"predictions": [9]}, "0.000") and elapsed < COLD
        # the other model is untouched: still at zero (the listing does not wake it)
        status, listing, _, _ = await call(s, "GET", host.base_url + "/serverless")
        assert status == 200 and listing["b"] == {"state": "zero", "coldStarts": 0, "scaleToZeroSeconds": 60,
                                                  "coldStartSeconds": COLD}
        assert listing["a"]["state"] == "ready"


async def test_readiness_wakes_a_model_and_reports_its_state() -> None:
    async with ModelHost([Echo("a"), Echo("v")], scale_to_zero=60, cold_start=COLD) as host, \
            aiohttp.ClientSession() as s:
        status, body, elapsed, held = await call(s, "GET", host.base_url + "/v1/models/a")
        assert status == 200 and elapsed >= COLD * 0.95 and float(held) >= COLD * 0.9
        assert body == {"name": "a", "ready": True, "serverless": {
            "state": "ready", "coldStarts": 1, "scaleToZeroSeconds": 60, "coldStartSeconds": COLD}}
        status, body, elapsed, _ = await call(s, "GET", host.base_url + "/v2/models/v/ready")
        assert (status, body) == (200, {"name": "v", "ready": True}) and elapsed >= COLD * 0.95
        assert host.seen == [("GET", "/v1/models/a"), ("GET", "/v2/models/v/ready")]


async def test_a_model_scales_to_zero_after_the_idle_time_and_cold_starts_again() -> None:
    async with ModelHost([Echo("a")], scale_to_zero=0.3, cold_start=0.2) as host, aiohttp.ClientSession() as s:
        lc = host.lifecycles["a"]
        await call(s, "POST", host.url_for("a"), {"instances": [1]})
        assert lc.state == "ready"
        await asyncio.sleep(0.1)
        await call(s, "POST", host.url_for("a"), {"instances": [1]})  # traffic resets the idle clock
        await asyncio.sleep(0.2)
        assert lc.state == "ready"
        for _ in range(40):  # bounded: 2 s at most
            if lc.state == "zero":
                break
            await asyncio.sleep(0.05)
        assert lc.state == "zero" and lc.cold_starts == 1
        _, _, elapsed, held = await call(s, "POST", host.url_for("a"), {"instances": [1]})
        assert lc.cold_starts == 2 and elapsed >= 0.19 and float(held) >= 0.18


async def test_no_scale_down_while_a_request_is_in_flight() -> None:
    async with ModelHost([Echo("a")], scale_to_zero=0.2, cold_start=0.0) as host:
        lc = host.lifecycles["a"]
        await lc.enter()  # as a request would; held for no time
        await asyncio.sleep(0.4)
        assert lc.state == "ready"
        lc.leave()
        await asyncio.sleep(0.4)
        assert lc.state == "zero"


def test_host_refuses_bad_serverless_settings() -> None:
    with pytest.raises(ValueError, match="scale_to_zero must be > 0"):
        ModelHost([Echo("a")], scale_to_zero=0, cold_start=1)


def test_models_serve_refuses_bad_flags() -> None:
    out = subprocess.run([sys.executable, "-m", "graph_router", "models", "serve", "--cold-start", "2"],
                         capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert out.returncode == 2 and "--cold-start S needs S >= 0 and --scale-to-zero" in out.stderr
    assert "Traceback" not in out.stderr


async def test_models_serve_scale_to_zero_logs_state_changes(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "host.log"
    proc = _start_host(log, "--port", str(port), "--models", "preprocessor", "--scale-to-zero", "0.3",
                       "--cold-start", "0.2")
    try:
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as s:
            for _ in range(100):  # bounded: 10 s to start
                try:
                    async with s.get(base + "/v2/health/live") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)
            status, body, elapsed, _ = await call(s, "POST", base + "/v1/models/preprocessor:predict",
                                                  {"instances": [[5.1, 3.5, 1.4, 0.2]]})
            assert status == 200 and "predictions" in body and elapsed >= 0.19
            for _ in range(40):
                if b"ready -> at zero" in log.read_bytes():
                    break
                await asyncio.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    text = log.read_text()
    assert "model preprocessor: at zero -> starting" in text
    assert "model preprocessor: starting -> ready after" in text
    assert "model preprocessor: ready -> at zero after 0.3s without requests" in text


def _start_host(log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as f:
        return subprocess.Popen([sys.executable, "-m", "graph_router.modelhost", "serve", *args],
                                stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)


async def test_quickstart_serverless_prints_the_first_request_cost_with_prewarming_off_and_on() -> None:
    port, models_port = free_port(), free_port()
    proc, lines = await start_quickstart("--serverless", "--cold-start", "0.3", "--port", str(port),
                                         "--models-port", str(models_port), within=60)
    try:
        text = "".join(lines)
        assert "sequential-pipeline, 3 models at zero, 0.3 s cold start each." in text
        costs = dict(re.findall(r"^  prewarming (off|on) .*HTTP 200 in ([\d.]+) s$", text, re.M))
        assert set(costs) == {"off", "on"}
        assert float(costs["off"]) >= 0.9  # three cold starts, one after the other
        assert "--scale-to-zero 30 --cold-start 0.3" in text
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        kill_quickstart(proc, lines)
        await proc.wait()
