"""Load InferenceGraphs from YAML/JSON and validate them, reporting every problem at once.

Accepted: a whole ``InferenceGraph`` resource, a bare spec (a mapping with ``nodes``), a file of
several YAML documents (documents of other kinds, e.g. the InferenceServices of a KServe sample,
are skipped), or a ``--graph-json`` string. Checks are KServe's webhook checks with KServe's
messages, plus ours (see README "Deviations").
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Mapping, Sequence
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


def load_graphs(paths: Iterable[str | Path]) -> list[GraphDocument]:
    """Load every graph in ``paths`` (files or directories). Raises one SpecError listing all problems."""
    docs: list[GraphDocument] = []
    errors: list[SpecError] = []
    for path in _expand(paths, errors):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            errors.append(SpecError(Problem("", f"cannot read file: {exc}"), source=str(path)))
            continue
        try:
            docs.extend(load_graph_text(text, source=str(path)))
        except SpecError as exc:
            errors.append(exc)
    if errors:
        raise SpecError.merge(errors)
    _check_unique_names(docs)
    return docs


def load_graph_json(text: str, *, name: str = "graph") -> GraphDocument:
    """KServe's ``--graph-json``: one spec (or resource) as a JSON string."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise SpecError(Problem("", f"--graph-json is not valid JSON: {exc}"), source="--graph-json") from exc
    return _build(data, source="--graph-json", default_name=name)


def load_graph_text(text: str, *, source: str = "<string>") -> list[GraphDocument]:
    """Parse YAML (a superset of JSON) with possibly several documents."""
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
            problems.append(
                Problem(f"{d.source}: metadata.name",
                        f"graph name {d.name!r} is also used by {seen[d.name]}: graph names must be unique")
            )
        else:
            seen[d.name] = d.source
    if problems:
        raise SpecError(problems)


def _expand(paths: Iterable[str | Path], errors: list[SpecError]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix in GRAPH_SUFFIXES and f.is_file())
            if not found:
                errors.append(SpecError(Problem("", "directory holds no .yaml/.yml/.json file"), source=str(p)))
            out.extend(found)
        elif p.exists():
            out.append(p)
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
