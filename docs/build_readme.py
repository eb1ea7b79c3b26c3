"""README.md is built from docs/README-core.md and the chapters beside it; run after editing them.

    python docs/build_readme.py          # rewrite README.md
    python docs/build_readme.py --check  # exit 1 when README.md is stale (a test runs this)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent

#: placeholder -> (chapter file, its title, whether its headings move one level down)
CHAPTERS = {
    "EXAMPLES": ("examples.md", None, False),
    "SECURITY": ("security.md", "Security", False),
    "OBSERVABILITY": ("observability.md", "Observability", True),
    "MANIFESTS": ("manifests.md", "Deploying with Knative: manifests", True),
    "SERVERLESS": ("serverless.md", "Serverless: cold starts and prewarming", True),
    "INTEROP": ("interop.md", "Interop with real KServe components", False),
    "GRPC": ("grpc.md", "gRPC: the Open Inference Protocol in front and behind", True),
}


def demote(text: str, title: str | None) -> str:
    """``#`` becomes ``## title``, deeper headings one level down; code blocks untouched."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and re.match(r"^#{1,5} ", line):
            line = "## " + (title or line[2:]) if line.startswith("# ") else "#" + line
        out.append(line)
    return "\n".join(out)


def build() -> str:
    text = (DOCS / "README-core.md").read_text()
    for key, (name, title, down) in CHAPTERS.items():
        chapter = (DOCS / name).read_text()
        chapter = re.sub(r"^<!--.*?-->\s*", "", chapter, flags=re.S)
        if down:
            chapter = demote(chapter, title)
        text = text.replace(f"@@{key}@@", chapter.strip())
    return text


def main() -> int:
    built = build()
    readme = ROOT / "README.md"
    if "--check" in sys.argv[1:]:
        if readme.read_text() != built:
            print("README.md is stale: run python docs/build_readme.py", file=sys.stderr)
            return 1
        return 0
    readme.write_text(built)
    return 0


if __name__ == "__main__":
    sys.exit(main())
