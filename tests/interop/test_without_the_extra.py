"""Without the interop extra, every interop module is skipped with the reason, and nothing errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from ..support.router import ROOT
from .conftest import SKIP_REASON

#: What the interop extra installs (kserve, tritonclient) and the one thing of theirs the modules import.
HIDDEN = ("kserve", "tritonclient", "httpx")
HIDE = f"""
import importlib.abc, sys

class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {HIDDEN!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Hide())
"""


def test_interop_modules_skip_cleanly_without_the_extra(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text(HIDE)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
           "PYTHONPATH": os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p)}
    here = Path(__file__)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/interop", "-n", "0", "-p", "no:cacheprovider", "-rs",
         f"--ignore={here.relative_to(ROOT)}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    modules = [p for p in here.parent.glob("test_*.py") if p != here]
    # every module skipped at import (pytest then says "no tests ran": exit code 5), none failed to import
    assert out.returncode == 5, out.stdout + out.stderr
    assert re.search(rf"SKIPPED \[{len(modules)}\] tests/interop/conftest.py:\d+: {re.escape(SKIP_REASON)}\n",
                     out.stdout), out.stdout
    assert re.search(rf"^{len(modules)} skipped in [\d.]+s$", out.stdout, re.M), out.stdout
    assert "error" not in out.stdout.lower(), out.stdout


def test_the_hiding_works(tmp_path: Path) -> None:
    """The check above can fail: with the hook, ``import kserve`` fails as if it were not installed."""
    (tmp_path / "sitecustomize.py").write_text(HIDE)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", "import kserve"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "No module named 'kserve'" in out.stderr, out.stderr
