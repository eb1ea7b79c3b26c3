"""``graph-router quickstart``: its help lists the examples; on the terminal one readable format, and a
Ctrl-C reaches the children as the SIGINT it was."""

from __future__ import annotations

from pathlib import Path

from graph_router.modelhost.quickstart import describe, examples, find_example, router_argv

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
