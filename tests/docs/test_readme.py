"""The README is short, opens with the two commands, its example runs, and it lists every deviation from KServe."""

from __future__ import annotations

import re

from .markdown import DOCS, ROOT, blocks

README = ROOT / "README.md"


def test_readme_is_short() -> None:
    size = len(README.read_bytes())
    assert 5_000 <= size <= 8_000, size


def test_readme_opens_with_setup_and_test_commands() -> None:
    first = blocks(README)[0]
    assert first.lang == "sh"
    commands = [ln for ln in first.text.splitlines() if ln and not ln.startswith("#")]
    assert commands == [
        "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/graph-router quickstart",
        "bash .ci/run",
    ]


def test_readme_example_is_the_library_pages_which_runs_as_written() -> None:
    """One example, run once: docs/library.md's `example.py` (tests/docs/test_docs_pytest_examples.py runs it)."""
    (snippet,) = [b.text for b in blocks(README) if b.lang == "python"]
    (example,) = [b.text for b in blocks(DOCS / "library.md") if b.title == "example.py"]
    assert snippet == example


def test_readme_lists_every_deviation_of_the_docs() -> None:
    """The project's rule: every deliberate deviation from KServe is listed in the README (one line each)."""
    readme = README.read_text()
    listed = readme.split("## Deliberate deviations from KServe\n", 1)[1].split("\n## ", 1)[0]
    page = (DOCS / "kserve.md").read_text().split("## Deliberate deviations from KServe\n", 1)[1]
    in_readme = re.findall(r"^- ", listed, flags=re.M)
    in_docs = re.findall(r"^- \*\*", page, flags=re.M)
    assert len(in_readme) == len(in_docs) > 10


def test_readme_links_resolve() -> None:
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text()):
        if not target.startswith(("http://", "https://")):
            assert (ROOT / target).exists(), target


def test_pypi_long_description_is_the_readme() -> None:
    assert re.search(r'^readme = "README.md"$', (ROOT / "pyproject.toml").read_text(), flags=re.M)


def test_readme_headline_figures_stand_in_the_results_page() -> None:
    """Every figure of the README's headline comes from a run in docs/benchmark-results.md: its number
    stands there too (a rounded one as the start of the measured one: 2.0 s for 2.01 s)."""
    section = README.read_text().split("## Headline figures\n", 1)[1].split("\n## ", 1)[0]
    results = (DOCS / "benchmark-results.md").read_text()
    figures = re.findall(r"(\d[\d,]*\.\d+|\d{2,}[\d,]*) ?(?:us|ms|s|x|req/s)\b", section)
    assert len(figures) > 15
    missing = [f for f in figures if f not in results]
    assert not missing, f"README figures with no run behind them in docs/benchmark-results.md: {missing}"
