"""The CLI's commands and their imports: a broken module is reported, and what every command imports
comes with the core install (so no command is lost to a missing extra)."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import textwrap
import tomllib
from importlib import metadata
from pathlib import Path

from graph_router.cli import SUBCOMMANDS, build_parser

ROOT = Path(__file__).resolve().parent.parent

#: Run ``graph_router.cli.main(argv)`` with one module replaced by code of our choosing.
REPLACE = textwrap.dedent('''
    import importlib.abc, importlib.util, sys

    class Replace(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name, path, target=None):
            return importlib.util.spec_from_loader(name, self) if name == {module!r} else None

        def create_module(self, spec):
            return None

        def exec_module(self, module):
            exec({code!r}, module.__dict__)

    sys.meta_path.insert(0, Replace())
    {before}
    from graph_router.cli import main
    sys.exit(main(sys.argv[1:]))
''')


def run_with(module: str, code: str, *argv: str, before: str = "") -> subprocess.CompletedProcess[str]:
    program = REPLACE.format(module=module, code=code, before=before)
    return subprocess.run([sys.executable, "-c", program, *argv], capture_output=True, text=True, timeout=60,
                          cwd=ROOT)


def test_every_subcommand_module_adds_the_commands_it_is_listed_with() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert sub.choices is not None
    listed = [c for commands in SUBCOMMANDS.values() for c in commands]
    assert [c for c in sub.choices if c not in ("validate", "run", "graph", "serve")] == listed


def test_a_broken_module_of_ours_is_reported_not_dropped() -> None:
    broken = "from graph_router.planner.plan import no_such_name\n"
    out = run_with("graph_router.planner.cli", broken, "validate", "graphs/ensemble/graph.yaml")
    assert out.returncode == 1 and out.stdout == ""
    assert "ImportError: cannot import name 'no_such_name' from 'graph_router.planner.plan'" in out.stderr
    out = run_with("graph_router.manifests.cli", "import no_such_core_module\n", "--help")
    assert out.returncode == 1 and "ModuleNotFoundError: No module named 'no_such_core_module'" in out.stderr


def _requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s<>=!~;\[(]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements
            if "extra ==" not in r}


def test_every_command_imports_only_what_the_core_install_brings() -> None:
    """``jsonschema`` came with the test extra only, so a plain install lost ``manifests`` without a word."""
    program = ("import sys; before = set(sys.modules); from graph_router.cli import build_parser; build_parser(); "
               "print(' '.join(sorted({m.partition('.')[0] for m in set(sys.modules) - before})))")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          check=True)
    imported = set(done.stdout.split()) - set(sys.stdlib_module_names) - {"graph_router"}
    core = _requirement_names(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    brought, todo = set(), list(core)
    while todo:  # the core dependencies and everything they require in turn
        name = todo.pop()
        if name in brought:
            continue
        brought.add(name)
        with contextlib.suppress(metadata.PackageNotFoundError):  # (an optional requirement not installed)
            todo.extend(_requirement_names(metadata.requires(name) or []))
    providers = metadata.packages_distributions()
    # (msgspec and uvloop are tried and optional: the fast extra; a module no distribution provides is built in)
    outside = {m: providers[m] for m in imported - {"msgspec", "uvloop"}
               if m in providers and not {d.lower().replace("_", "-") for d in providers[m]} & brought}
    assert outside == {}
