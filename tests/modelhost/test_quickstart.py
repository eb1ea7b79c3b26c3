"""``graph-router quickstart``: its help lists the examples; on the terminal one readable format, and a
Ctrl-C reaches the children as the SIGINT it was."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp

from graph_router.modelhost.quickstart import describe, examples, find_example, router_argv

from ..support.ports import free_port
from ..support.quickstart import kill_quickstart, start_quickstart
from ..test_cli import cli

ROOT = Path(__file__).resolve().parents[2]
GRAPHS = ROOT / "graphs"


def test_help_lists_every_example_with_what_it_shows() -> None:
    out = cli("quickstart", "--help")
    assert out.returncode == 0, out.stderr
    listed = out.stdout.split("examples (graphs/<example>/graph.yaml):\n", 1)[1].splitlines()
    on_disk = sorted(p.parent.name for p in GRAPHS.glob("*/graph.yaml"))
    assert [line.split()[0] for line in listed] == on_disk == examples()
    assert "  sequential-pipeline  preprocessor -> classifier -> postprocessor: each..." in listed
    assert "  ab-test              70% of requests go to model-a, 30% to model-b." in listed
    assert "  canary               manifests only: needs fraud-model" in listed
    assert all(len(line) <= 80 for line in listed)


def test_describe_takes_the_first_sentence_of_the_opening_comment() -> None:
    assert describe(find_example("shadow")) == "sklearn-iris answers every request."
    assert describe(GRAPHS / "no-such-example") == ""


def test_the_router_runs_with_text_logs_and_no_json_access_log() -> None:
    argv = router_argv(GRAPHS / "sequential-pipeline" / "graph.yaml", ["preprocessor"], 8080, 9000)
    assert argv[argv.index("--log-format") + 1] == "text" and "--no-access-log" in argv


async def test_terminal_shows_text_only_and_ctrl_c_is_sigint() -> None:
    port, models_port = free_port(), free_port()
    proc, lines = await start_quickstart("sequential-pipeline", "--port", str(port), "--models-port",
                                         str(models_port), terminal=True)
    try:
        assert proc.stdout is not None
        async with aiohttp.ClientSession() as http:
            for _ in range(2):
                async with http.post(f"http://127.0.0.1:{port}/",
                                     data=(GRAPHS / "sequential-pipeline/request.json").read_bytes(),
                                     headers={"Content-Type": "application/json"}) as r:
                    assert r.status == 200
        await asyncio.sleep(0.5)  # (an access log would write its batch within 0.25 s)
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        lines += (await asyncio.wait_for(proc.stdout.read(), 10)).decode().splitlines(keepends=True)
        text = "".join(lines)
        assert not [line for line in lines if line.lstrip().startswith("{")], text
        assert "INFO graph_router.process: SIGINT received: draining" in text, text
        assert "SIGTERM" not in text and "model host stopped\n" in text and text.endswith("quickstart: stopped\n")
    finally:
        kill_quickstart(proc, lines)
        await proc.wait()
