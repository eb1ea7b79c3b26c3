"""Fenced code blocks of the docs' Markdown pages, in page order, for tests that run them as written."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

_FENCE = re.compile(r"^```([\w-]*)([^\n]*)\n(.*?)^```[ \t]*$", re.S | re.M)
_TITLE = re.compile(r'title="([^"]+)"')


@dataclass(frozen=True)
class Block:
    """One fenced block: its language (info string), its ``title="..."`` if any, and its text."""

    lang: str
    title: str | None
    text: str
    line: int

    def where(self, page: str) -> str:
        return f"{page}:{self.line}"


def _blocks(text: str, first_line: int) -> list[Block]:
    found = []
    for m in _FENCE.finditer(text):
        title = _TITLE.search(m.group(2))
        found.append(Block(m.group(1), title.group(1) if title else None, m.group(3),
                           first_line + text.count("\n", 0, m.start())))
    return found


def blocks(path: Path) -> list[Block]:
    """Every fenced block of a Markdown file, in order."""
    return _blocks(path.read_text(), 1)


def section_blocks(path: Path, heading: str) -> list[Block]:
    """The fenced blocks under ``## heading`` (up to the next ``## ``), in order."""
    source = path.read_text()
    start = source.index(f"\n## {heading}\n")
    end = source.find("\n## ", start + 1)
    return _blocks(source[start:] if end == -1 else source[start:end], source.count("\n", 0, start) + 1)


def commands(block: Block) -> list[str]:
    """A shell block's commands: continuation lines joined, comment lines and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", block.text)
    return [ln.strip() for ln in joined.splitlines() if ln.strip() and not ln.strip().startswith("#")]
