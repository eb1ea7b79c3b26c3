"""Helpers for the manifest tests (imported by name, not a conftest): run the CLI in-process, build graphs."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from graph_router.loader import load_graph_text
from graph_router.manifests.cli import run
from graph_router.spec import GraphDocument
from tests.support.graphs import graph, sequence_of

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def docs(self) -> list[Any]:
        return [d for d in yaml.safe_load_all(self.out) if d is not None]


def cli(*argv: str) -> Result:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), stdout=out, stderr=err)
    return Result(code, out.getvalue(), err.getvalue())


def sequence_graph(*services: str, name: str = "g") -> GraphDocument:
    """A one-node Sequence calling ``services`` in order."""
    return load_graph_text(graph(name, sequence_of(*services)))[0]
