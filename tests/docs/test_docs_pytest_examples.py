"""The Python examples of docs/library.md run as written: the script, and the pytest files in a fresh project."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

from .markdown import DOCS, ROOT, blocks, section_blocks

LIBRARY = DOCS / "library.md"
#: The sections whose titled blocks make up the user's project.
PROJECT_SECTIONS = ("Testing your graphs with pytest", "Your own models over HTTP")


def clean_env() -> dict[str, str]:
    """The environment without anything that would steer pytest or Python towards this repository."""
    drop = ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTHONPATH", "PYTEST_XDIST_WORKER", "PYTEST_XDIST_TESTRUNUID",
            "PYTEST_CURRENT_TEST")
    return {k: v for k, v in os.environ.items() if k not in drop}


def test_library_example_runs_as_written(tmp_path: Path) -> None:
    (example,) = [b for b in blocks(LIBRARY) if b.title == "example.py"]
    (tmp_path / "example.py").write_text(example.text)
    out = subprocess.run([sys.executable, "example.py"], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path, env=clean_env())
    assert out.returncode == 0, out.stderr


def test_pytest_examples_pass_in_a_fresh_project(tmp_path: Path) -> None:
    """Every titled file of the testing sections, written to an empty directory; `pytest` there passes them all."""
    files = [b for s in PROJECT_SECTIONS for b in section_blocks(LIBRARY, s) if b.title]
    names = [b.title for b in files]
    assert len(names) == len(set(names)), names
    assert {"pyproject.toml", "graph.yaml", "test_graph.py", "test_cold_start.py", "test_models.py"} <= set(names)
    for block in files:
        assert block.title is not None
        (tmp_path / block.title).write_text(block.text)
    tests = sum(b.text.count("\nasync def test_") + b.text.count("\ndef test_") for b in files)
    assert tests >= 3
    # -p no:cacheprovider: nothing written beside the project; the project's own pyproject.toml is the config
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"], capture_output=True,
                         text=True, timeout=120, cwd=tmp_path, env=clean_env())
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{tests} passed" in out.stdout, out.stdout


def test_the_page_says_what_the_async_tests_need() -> None:
    """The async tests need an asyncio plugin in auto mode: the page installs it and sets the mode."""
    text = LIBRARY.read_text()
    assert "pip install 'graph-router[testing]'" in text
    (config,) = [b for b in section_blocks(LIBRARY, PROJECT_SECTIONS[0]) if b.title == "pyproject.toml"]
    assert 'asyncio_mode = "auto"' in config.text
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert sorted(req.split(">")[0].split("=")[0] for req in extras["testing"]) == ["pytest", "pytest-asyncio"]
