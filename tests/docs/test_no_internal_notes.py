"""The repository speaks of the project only: no work notes, no paths of one machine."""

from __future__ import annotations

import re
import subprocess

import pytest

from .markdown import ROOT

#: Phrases of internal work notes, and absolute paths of a development machine.
NOTES = re.compile(r"\bthe lead\b|\blead merges\b|\bwork brief\b|HELPERS\.md|(?<![\w.])/work/|/home/\w+/", re.I)


def tracked_text_files() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, timeout=30, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [p for p in out.stdout.decode().split("\0") if p and not p.endswith(".png")]


def test_no_internal_notes_or_machine_paths() -> None:
    found = []
    for name in tracked_text_files():
        path = ROOT / name
        if not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if NOTES.search(line) and "NOTES = re.compile" not in line:
                found.append(f"{name}:{number}: {line.strip()}")
    assert not found, "\n".join(found)
