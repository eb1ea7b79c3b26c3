"""``graph-router manifests`` and ``graph-router rollout``: argument parsing, file I/O, output."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import orjson
import yaml

from ..errors import Problem, SpecError
from ..loader import load_graph_text, load_graphs
from ..spec import GraphDocument
from . import rollout as ro
from . import shadow
from .build import build_manifests, resolve_namespace
from .checks import check_backend
from .deploy import InferenceServiceBackend, RouterMode, load_deploy
from .knative import backend_service
from .kserve import apply_isvc_canary, inference_service
from .validate import SCHEMAS, Variant, check_object, label

Obj = dict[str, Any]


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the graph in the ConfigMap) as ``|`` blocks; no ``&id001`` anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(objects: Sequence[Obj], fmt: str) -> str:
    """Multi-document YAML, or one JSON ``List`` (both accepted by ``kubectl apply -f -``)."""
    if fmt == "json":
        body: Any = objects[0] if len(objects) == 1 else {"apiVersion": "v1", "kind": "List", "items": list(objects)}
        return orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n"
    return yaml.dump_all(objects, Dumper=_Dumper, sort_keys=False, explicit_start=True, allow_unicode=True)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``manifests`` and ``rollout`` subcommands; each sets ``func(args) -> exit code``."""
    _add_manifests(subparsers)
    _add_rollout(subparsers)


def _add_manifests(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    m = subparsers.add_parser(
        "manifests",
        help="print Kubernetes manifests for a graph and its backends",
        description="Print manifests for GRAPH and the backends DEPLOY describes, or "
        "with --check validate hand-written manifests FILE... .",
    )
    m.add_argument(
        "files",
        nargs="+",
        metavar="GRAPH|FILE",
        help="graph file(s); with --check, manifest files ('-' for stdin)",
    )
    m.add_argument("--deploy", metavar="DEPLOY", help="deployment description (deploy.yaml)")
    m.add_argument("--namespace", "-n", help="namespace (default: the description's, the graph's, or 'default')")
    m.add_argument(
        "--router",
        choices=[x.value for x in RouterMode],
        help="router mode (default: the description's router.mode, else knative)",
    )
    m.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml")
    m.add_argument("--check", action="store_true", help="check manifest files instead of generating")
    m.add_argument(
        "--schema",
        choices=("strict", "faithful"),
        default="strict",
        help="with --check: strict (kubectl --validate=strict, default) or faithful CRD schemas",
    )
    m.set_defaults(func=cmd_manifests)


def _add_rollout(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    r = subparsers.add_parser(
        "rollout",
        help="canary, promote or rollback a backend; prints the changed manifest",
        description="Print the changed manifest (or a merge patch with --patch).",
    )
    actions = r.add_subparsers(dest="action", required=True,
                               metavar="{canary,promote,rollback,shadow-to-canary,canary-to-shadow}")
    _add_shadow_actions(actions)
    for action in ("canary", "promote", "rollback"):
        a = actions.add_parser(action)
        a.add_argument("service", metavar="SERVICE")
        src = a.add_mutually_exclusive_group(required=True)
        src.add_argument("--deploy", metavar="DEPLOY", help="build the current manifest from the description")
        src.add_argument(
            "-f",
            "--filename",
            metavar="FILE",
            help="current manifest ('-' for stdin), e.g. kubectl get isvc NAME -o yaml",
        )
        a.add_argument(
            "--graph",
            metavar="GRAPH",
            help="with --deploy: the graph (for labels; default: graph.yaml next to DEPLOY)",
        )
        a.add_argument("--namespace", "-n")
        a.add_argument("--patch", action="store_true", help="print a JSON merge patch (kubectl patch --type merge)")
        a.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml")
        _add_action_flags(a, action)
        a.set_defaults(func=cmd_rollout)


def _add_shadow_actions(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for action, what in (("shadow-to-canary", "the step mirrored to SERVICE becomes a Splitter sending it --percent"),
                         ("canary-to-shadow", "the Splitter canarying SERVICE becomes a step mirrored to it")):
        a = actions.add_parser(action, help=what, description=f"Print the changed graph: {what}.")
        a.add_argument("service", metavar="SERVICE", help="the shadow's (candidate's) serviceName or serviceUrl")
        a.add_argument("-f", "--filename", metavar="GRAPH", required=True, help="the graph file ('-' for stdin)")
        a.add_argument("--percent", type=int if action == "shadow-to-canary" else float,
                       required=action == "shadow-to-canary",
                       help="traffic to the canary, 1-99" if action == "shadow-to-canary"
                       else "share of requests mirrored (default: as before the canary, else 100)")
        if action == "canary-to-shadow":
            a.add_argument("--compare", help="what to compare (default: as before the canary, else the body)")
        a.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml")
        a.set_defaults(func=cmd_shadow_rollout)


def cmd_shadow_rollout(args: argparse.Namespace) -> int:
    """``rollout shadow-to-canary`` / ``canary-to-shadow``: graph in, changed graph out (checked)."""
    out, err = _streams(args)
    try:
        docs = [d for d in _read_docs(args.filename) if isinstance(d, dict) and
                (d.get("kind") == "InferenceGraph" or "nodes" in d)]
        if len(docs) != 1:
            raise SpecError(Problem("", f"expected one InferenceGraph (or bare spec), found {len(docs)}"),
                            source=args.filename)
        if args.action == "shadow-to-canary":
            after = shadow.shadow_to_canary(docs[0], args.service, args.percent)
        else:
            after = shadow.canary_to_shadow(docs[0], args.service, args.percent, args.compare)
        load_graph_text(orjson.dumps(after).decode(), source=f"rollout {args.action} {args.service}")
    except SpecError as exc:
        err.write(f"error: {exc.render()}\n")
        return 2
    out.write(dump([after], args.output))
    return 0


def _add_action_flags(a: argparse.ArgumentParser, action: str) -> None:
    if action == "canary":
        a.add_argument(
            "--percent",
            type=int,
            help="traffic to the candidate, 0-100 (default with --deploy: the description's canary.trafficPercent)",
        )
        a.add_argument("--storage-uri", help="InferenceService: the candidate model")
        a.add_argument("--runtime", help="InferenceService: the candidate's runtime")
        a.add_argument("--image", help="Knative Service: the candidate image")
        a.add_argument("--revision-name", help="Knative Service: the candidate's revision name")
        a.add_argument("--stable-revision", help="Knative Service: the revision serving now")
    if action == "rollback":
        a.add_argument("--to-revision", metavar="R", help="Knative Service: the revision to send 100%% to")


def run(argv: Sequence[str], stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Parse ``argv`` for these subcommands only and run (for tests and embedding)."""
    parser = argparse.ArgumentParser(prog="graph-router")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    args.stdout, args.stderr = stdout or sys.stdout, stderr or sys.stderr
    return int(args.func(args))


def _streams(args: argparse.Namespace) -> tuple[TextIO, TextIO]:
    return getattr(args, "stdout", None) or sys.stdout, getattr(args, "stderr", None) or sys.stderr


def cmd_manifests(args: argparse.Namespace) -> int:
    out, err = _streams(args)
    try:
        if args.check:
            return _check_files(args.files, args.schema, err)
        if not args.deploy:
            raise SpecError(Problem("--deploy", "required: the deployment description (deploy.yaml)"))
        graphs = load_graphs(args.files)
        spec = load_deploy(args.deploy)
        mode = RouterMode(args.router) if args.router else None
        result = build_manifests(graphs, spec, namespace=args.namespace, mode=mode, source=args.deploy)
    except SpecError as exc:
        err.write(f"error: {exc.render()}\n")
        return 2
    for w in result.warnings:
        err.write(f"warning: {w}\n")
    for n in result.notes:
        err.write(f"note: {n}\n")
    out.write(dump(result.objects, args.output))
    return 0


def _read_docs(file: str) -> list[Any]:
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(Problem("", f"cannot read file: {exc}"), source=file) from exc
    except yaml.YAMLError as exc:
        raise SpecError(Problem("", yaml_problem(exc)), source=file) from exc


def yaml_problem(exc: yaml.YAMLError) -> str:
    """One line: ``line 2, column 1: invalid YAML: expected ...``."""
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}invalid YAML: {getattr(exc, 'problem', None) or exc}"


def _items(docs: list[Any]) -> list[Any]:
    out: list[Any] = []
    for d in docs:
        is_list = isinstance(d, dict) and d.get("kind") == "List" and isinstance(d.get("items"), list)
        out.extend(d["items"] if is_list else [d])
    return out


def _check_files(files: Sequence[str], variant: Variant, err: TextIO) -> int:
    errors: list[SpecError] = []
    checked = 0
    for file in files:
        try:
            docs = _items(_read_docs(file))
        except SpecError as exc:
            errors.append(exc)
            continue
        problems: list[Problem] = []
        for i, obj in enumerate(docs):
            if not isinstance(obj, dict):
                problems.append(Problem(f"document {i + 1}", "expected a Kubernetes object (a mapping)"))
                continue
            if (obj.get("apiVersion"), obj.get("kind")) not in SCHEMAS:
                err.write(
                    f"note: {file}: {label(obj)}: not checked ({obj.get('apiVersion')} {obj.get('kind')} "
                    "has no schema here)\n"
                )
                continue
            checked += 1
            problems += [Problem(f"{label(obj)}: {p.path}", p.message) for p in check_object(obj, variant)]
        if problems:
            errors.append(SpecError(problems, source=file))
    if errors:
        err.write(f"error: {SpecError.merge(errors).render()}\n")
        return 2
    err.write(f"ok: {checked} object(s) valid\n")
    return 0


def cmd_rollout(args: argparse.Namespace) -> int:
    out, err = _streams(args)
    warnings: list[str] = []
    try:
        before, after = _rollout(args, warnings)
        problems = [Problem(f"{label(after)}: {p.path}", p.message) for p in check_object(after)]
        if problems:
            raise SpecError(problems, source=f"rollout {args.action} {args.service}")
    except SpecError as exc:
        err.write(f"error: {exc.render()}\n")
        return 2
    for w in warnings:
        err.write(f"warning: {w}\n")
    out.write(dump([ro.merge_patch(before, after) if args.patch else after], args.output))
    return 0


def _rollout(args: argparse.Namespace, warnings: list[str]) -> tuple[Obj, Obj]:
    pct_default: int | None = None
    serving: str | None = None
    if args.deploy:
        before, pct_default, cand_uri = _from_deploy(args, warnings)
    else:
        (before, serving), cand_uri = _from_file(args.filename, args.service), None
    if args.action == "promote":
        return before, ro.promote(before)
    if args.action == "rollback":
        return before, ro.rollback(before, args.to_revision)
    percent = args.percent if args.percent is not None else pct_default
    if percent is None:
        raise SpecError(
            Problem("--percent", "required (no canary.trafficPercent in a description)"), source=args.service
        )
    cand = ro.Candidate(
        storage_uri=args.storage_uri or cand_uri,
        runtime=args.runtime,
        image=args.image,
        revision_name=args.revision_name,
        stable_revision=args.stable_revision,
        status_revision=serving,
    )
    return before, ro.canary(before, percent, cand, warnings)


def _from_file(file: str, service: str) -> tuple[Obj, str | None]:
    """The object named ``service`` (cleaned for apply), and the revision its status says serves most."""
    docs = _items(_read_docs(file))
    for obj in docs:
        if (
            isinstance(obj, dict)
            and obj.get("kind") in ("InferenceService", "Service")
            and obj.get("apiVersion") in ("serving.kserve.io/v1beta1", "serving.knative.dev/v1")
            and (obj.get("metadata") or {}).get("name") == service
        ):
            return ro.clean(obj), ro.status_serving_revision(obj)
    raise SpecError(Problem("", f'no InferenceService or Knative Service named "{service}"'), source=file)


def _from_deploy(args: argparse.Namespace, warnings: list[str]) -> tuple[Obj, int | None, str | None]:
    """The current object for SERVICE per the description: for promote/rollback, the canary state."""
    spec = load_deploy(args.deploy)
    b = spec.services.get(args.service)
    if b is None:
        raise SpecError(Problem(f"services.{args.service}", "not described"), source=args.deploy)
    problems = check_backend(args.service, b, warnings)
    if problems:
        raise SpecError(problems, source=args.deploy)
    graphs = _graph_for(args)
    ns = resolve_namespace(args.namespace, spec, graphs)
    graph = graphs[0].name if graphs else args.service
    if not isinstance(b, InferenceServiceBackend):
        return backend_service(args.service, b, namespace=ns, graph=graph), None, None
    stable = inference_service(args.service, b, namespace=ns, graph=graph)
    if args.action == "canary":
        return (
            stable,
            b.canary.traffic_percent if b.canary else None,
            b.canary.storage_uri if b.canary else None,
        )
    if b.canary is None:
        raise SpecError(
            Problem(
                f"services.{args.service}.canary",
                f"no canary described to {args.action}; use -f with the live object",
            ),
            source=args.deploy,
        )
    return apply_isvc_canary(stable, b, b.canary.traffic_percent), None, None


def _graph_for(args: argparse.Namespace) -> list[GraphDocument]:
    path = args.graph or str(Path(args.deploy).with_name("graph.yaml"))
    if not args.graph and not Path(path).exists():
        return []
    return load_graphs([path])
