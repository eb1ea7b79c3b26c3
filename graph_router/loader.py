"""Load InferenceGraphs from YAML/JSON and validate them, reporting every problem at once.

Accepted: a whole ``InferenceGraph`` resource, a bare spec (a mapping with ``nodes``), a file of
several YAML documents (documents of other kinds, e.g. the InferenceServices of a KServe sample,
are skipped), a directory, or a ``--graph-json`` string. Checks are KServe's webhook checks with
KServe's messages, plus ours (see the docs' "Deviations").

A file named on its own must hold a graph. In a directory (read recursively, hidden entries left
out) every ``.yaml``/``.yml``/``.json`` file is read, and one that holds no graph document, such
as an example's ``deploy.yaml`` or ``request.json``, is skipped with a note saying why; a file
that does hold one is checked in full.
"""

from __future__ import annotations

import datetime
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import ValidationError

from .errors import Problem, SpecError
from .spec import GraphDocument, GraphSpec
from .spec_checks import SpecChecker, did_you_mean

GRAPH_KIND = "InferenceGraph"
GRAPH_API_VERSIONS = ("serving.kserve.io/v1alpha1",)
GRAPH_SUFFIXES = (".yaml", ".yml", ".json")
_NAME_SANITISE = re.compile(r"[^a-z0-9-]+")
#: No graph lives there, and walking them costs (``graph-router validate .`` in a checkout).
_SKIP_DIRS = frozenset({"__pycache__", "node_modules", "site-packages"})

log = logging.getLogger("graph_router.loader")


@dataclass(frozen=True)
class Skipped:
    """A file found in a directory that holds no graph document, and why."""

    source: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: skipped, {self.reason}"


@dataclass
class Found:
    """What :func:`find_graphs` loaded, and the files of directories it skipped."""

    graphs: list[GraphDocument] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def load_graphs(paths: Iterable[str | Path]) -> list[GraphDocument]:
    """Load every graph in ``paths`` (files or directories). Raises one SpecError listing all problems.

    Files of a directory that hold no graph document are skipped, each logged at info level.
    """
    found = find_graphs(paths)
    for note in found.skipped:
        log.info("%s", note)
    return found.graphs


def find_graphs(paths: Iterable[str | Path]) -> Found:
    """:func:`load_graphs`, also returning the directories' files that were skipped (for the CLI's notes)."""
    found = Found()
    errors: list[SpecError] = []
    #: each directory named: whether it held a graph file or a broken one (either says enough)
    answered: dict[Path, bool] = {}
    for path, directory in _expand(paths, errors):
        if directory is not None:
            answered.setdefault(directory, False)
        try:
            raw_docs = _parse(path.read_text(encoding="utf-8"), source=str(path))
            reason = _not_a_graph(raw_docs) if directory is not None else None
            if reason is not None:
                found.skipped.append(Skipped(str(path), reason))
                continue
            found.graphs.extend(_build_all(raw_docs, source=str(path)))
        except (OSError, UnicodeDecodeError) as exc:
            errors.append(SpecError(Problem("", f"cannot read file: {exc}"), source=str(path)))
        except SpecError as exc:
            errors.append(exc)
        if directory is not None:
            answered[directory] = True
    for directory in (d for d, said in answered.items() if not said):
        inside = [str(s) for s in found.skipped if Path(s.source).is_relative_to(directory)]
        shown = "; ".join(inside[:5]) + (f"; and {len(inside) - 5} more" if len(inside) > 5 else "")
        errors.append(SpecError(Problem("", f"no graph found: expected a file holding kind: {GRAPH_KIND} or a "
                                            f"bare spec with 'nodes' ({shown})"), source=str(directory)))
    if errors:
        raise SpecError.merge(errors)
    _check_unique_names(found.graphs)
    return found


def load_graph_json(text: str, *, name: str = "graph") -> GraphDocument:
    """KServe's ``--graph-json``: one spec (or resource) as a JSON string."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise SpecError(Problem("", f"--graph-json is not valid JSON: {exc}"), source="--graph-json") from exc
    return _build(data, source="--graph-json", default_name=name)


def load_graph_text(text: str, *, source: str = "<string>") -> list[GraphDocument]:
    """Parse YAML (a superset of JSON) with possibly several documents."""
    return _build_all(_parse(text, source=source), source=source)


def _parse(text: str, *, source: str) -> list[Any]:
    """The file's YAML documents (empty ones left out), checked to be what JSON can hold."""
    try:
        raw_docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(Problem("", f"{where}invalid YAML: {problem}"), source=source) from exc
    except (ValueError, RecursionError) as exc:
        raise SpecError(Problem("", f"invalid YAML: {exc}"), source=source) from exc
    problem = _check_tree(raw_docs)
    if problem is not None:
        raise SpecError(Problem("", problem), source=source)
    return raw_docs


def _build_all(raw_docs: list[Any], *, source: str) -> list[GraphDocument]:
    graphs: list[GraphDocument] = []
    errors: list[SpecError] = []
    stem = Path(source).stem if source not in ("<string>", "-") else "graph"
    for i, data in enumerate(raw_docs):
        if isinstance(data, Mapping) and data.get("kind") not in (None, GRAPH_KIND):
            continue  # e.g. the InferenceServices shipped next to the graph in KServe samples
        doc_source = source if len(raw_docs) == 1 else f"{source} (document {i + 1})"
        try:
            graphs.append(_build(data, source=doc_source, default_name=stem))
        except SpecError as exc:
            errors.append(exc)
    if errors:
        raise SpecError.merge(errors)
    if not graphs:
        raise SpecError(
            Problem("", "no InferenceGraph found: expected a resource with kind: InferenceGraph "
                        "or a bare spec with 'nodes'"),
            source=source,
        )
    return graphs


def _is_graph(data: Any) -> bool:
    """An InferenceGraph resource, or a bare spec (or a resource missing its ``kind``) with ``nodes``."""
    if not isinstance(data, Mapping):
        return False
    if "kind" in data:
        return bool(data["kind"] == GRAPH_KIND)
    spec = data.get("spec")
    return "nodes" in data or (isinstance(spec, Mapping) and "nodes" in spec)


def _not_a_graph(raw_docs: list[Any]) -> str | None:
    """Why a directory's file is skipped: None when one of its documents is a graph."""
    if any(_is_graph(d) for d in raw_docs):
        return None
    if not raw_docs:
        return "empty"
    kinds = sorted({str(d["kind"]) for d in raw_docs if isinstance(d, Mapping) and "kind" in d})
    if kinds:
        return f"not an InferenceGraph (kind: {', '.join(kinds)})"
    what = "a mapping" if isinstance(raw_docs[0], Mapping) else f"a {_kind(raw_docs[0])}"
    return f"not a graph spec ({what} without kind: {GRAPH_KIND} or 'nodes')"


MAX_VALUES = 100_000


def _check_tree(docs: list[Any]) -> str | None:
    """YAML can describe what JSON cannot: recursive aliases, alias bombs, lone surrogates."""
    stack: list[Any] = list(docs)
    seen = 0
    while stack:
        v = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            return (f"the YAML expands to more than {MAX_VALUES:,} values (recursive or repeated aliases?); "
                    "a graph is far smaller: write it out without anchors")
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                shown = v.encode("utf-8", "replace")[:40]
                return f"a string is not valid Unicode (a lone surrogate escape?): {shown!r}"
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif not (v is None or isinstance(v, bool | int | float | datetime.date)):
            # timestamps stay allowed: `kubectl get -o yaml` output carries creationTimestamp
            return f"unsupported YAML value of type {type(v).__name__} (sets and binary are not JSON)"
    return None


def _build(data: Any, *, source: str, default_name: str) -> GraphDocument:
    if not isinstance(data, Mapping):
        raise SpecError(
            Problem("", f"expected a mapping (an InferenceGraph or its spec), got {_kind(data)}"),
            source=source,
        )
    problems: list[Problem] = []
    meta: dict[str, Any] | None = None
    name = _sanitise(default_name)
    namespace: str | None = None
    if "spec" in data or "kind" in data or "apiVersion" in data:
        problems.extend(_check_resource(data))
        spec_raw = data.get("spec")
        meta_raw = data.get("metadata")
        if isinstance(meta_raw, Mapping):
            meta = dict(meta_raw)
            if isinstance(meta_raw.get("name"), str):
                name = meta_raw["name"]
            if isinstance(meta_raw.get("namespace"), str):
                namespace = meta_raw["namespace"]
        prefix = "spec."
    else:
        spec_raw = data
        prefix = ""
    checker = SpecChecker(graph_name=name)
    if isinstance(spec_raw, Mapping):
        try:
            found = checker.check(spec_raw)
        except RecursionError:
            found = [Problem("nodes", "graph is nested too deeply to check")]
        problems.extend(Problem(prefix + p.path if p.path else prefix.rstrip("."), p.message) for p in found)
    else:
        problems.append(Problem("spec", f"expected a mapping with 'nodes', got {_kind(spec_raw)}"))
    if problems:
        raise SpecError(problems, source=source)
    try:
        spec = GraphSpec.model_validate(spec_raw)
    except ValidationError as exc:  # the checker should have caught it; never a traceback
        raise SpecError(
            [Problem(prefix + _loc(e["loc"]), e["msg"]) for e in exc.errors()], source=source
        ) from exc
    return GraphDocument(
        name=name,
        namespace=namespace,
        source=source,
        spec=spec,
        api_version=data.get("apiVersion") if isinstance(data.get("apiVersion"), str) else None,
        kind=data.get("kind") if isinstance(data.get("kind"), str) else None,
        metadata=meta,
    )


_GRAPH_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_NAME_MSG = (
    "The InferenceGraph \"{}\" is invalid: a InferenceGraph name must consist of lower case alphanumeric "
    "characters or '-', and must start with alphabetical character. (e.g. \"my-name\" or \"abc-123\", "
    "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
_RESOURCE_KEYS = ("apiVersion", "kind", "metadata", "spec", "status")


def _check_resource(data: Mapping[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    kind = data.get("kind")
    if kind is None:
        problems.append(Problem("kind", f"missing: set kind: {GRAPH_KIND}"))
    api = data.get("apiVersion")
    if api is None:
        problems.append(Problem("apiVersion", f"missing: set apiVersion: {GRAPH_API_VERSIONS[0]}"))
    elif api not in GRAPH_API_VERSIONS:
        problems.append(Problem("apiVersion", f"unsupported {api!r}: use {GRAPH_API_VERSIONS[0]}"))
    meta = data.get("metadata")
    if meta is None:
        problems.append(Problem("metadata.name", "missing: an InferenceGraph resource needs metadata.name"))
    elif not isinstance(meta, Mapping):
        problems.append(Problem("metadata", f"expected a mapping, got {_kind(meta)}"))
    else:
        name = meta.get("name")
        if not isinstance(name, str) or not _GRAPH_NAME.match(name):
            problems.append(Problem("metadata.name", _NAME_MSG.format(name if name is not None else "")))
    for key in data:
        if key not in _RESOURCE_KEYS:
            problems.append(Problem(str(key), f"unknown field{did_you_mean(str(key), _RESOURCE_KEYS)}"))
    return problems


def _check_unique_names(docs: Sequence[GraphDocument]) -> None:
    seen: dict[str, str] = {}
    problems: list[Problem] = []
    for d in docs:
        if d.name in seen:
            where = "metadata.name" if d.metadata is not None else "(a bare spec is named after its file)"
            problems.append(
                Problem(f"{d.source}: {where}",
                        f"graph name {d.name!r} is also used by {seen[d.name]}: graph names must be unique "
                        "(the name is the URL path /<name>); rename one")
            )
        else:
            seen[d.name] = d.source
    if problems:
        raise SpecError(problems)


def graph_files(directory: str | Path) -> list[Path]:
    """The ``.yaml``/``.yml``/``.json`` files under ``directory``, recursively, in a stable order.

    Hidden files and directories (``.git``, ``.venv``) are left out; symbolic links to directories
    are not followed (no loops).
    """
    out: list[Path] = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS)
        out.extend(Path(root, f) for f in sorted(files)
                   if not f.startswith(".") and f.endswith(GRAPH_SUFFIXES) and Path(root, f).is_file())
    return out


def _expand(paths: Iterable[str | Path], errors: list[SpecError]) -> list[tuple[Path, Path | None]]:
    """Each file to read, and the directory it was found in (None: named on its own, so must be a graph)."""
    out: list[tuple[Path, Path | None]] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = graph_files(p)
            if not found:
                errors.append(SpecError(Problem("", "directory holds no .yaml/.yml/.json file"), source=str(p)))
            out.extend((f, p) for f in found)
        elif p.exists():
            out.append((p, None))
        else:
            errors.append(SpecError(Problem("", "no such file"), source=str(p)))
    return out


def _sanitise(stem: str) -> str:
    name = _NAME_SANITISE.sub("-", stem.lower()).strip("-")
    return name if name and name[0].isalpha() else f"graph-{name}" if name else "graph"


def _kind(v: Any) -> str:
    return "nothing" if v is None else type(v).__name__


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
