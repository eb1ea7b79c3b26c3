"""``graph-router plan``: argument parsing, reading files (or scraping /metrics), printing."""

from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import orjson
import yaml

from ..errors import Problem, SpecError
from ..loader import load_graphs
from ..spec import GraphDocument
from .plan import (
    ModelInputs,
    Plan,
    Setting,
    apply_settings,
    load_deploy_checked,
    parse_seconds,
    parse_setting,
    run,
    with_model_sets,
)
from .report import render_diff, render_text, summarize
from .traffic import Traffic, parse_traffic

#: The progress bar appears once a run has taken this long (seconds).
PROGRESS_AFTER_S = 0.5


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "plan",
        help="simulate what Knative's autoscaler does with a graph's models under a traffic",
        description="Simulate, per backend, Knative's Pod Autoscaler under TRAFFIC flowing through GRAPH, with "
        "the settings DEPLOY gives: replicas over time, requests that waited for a cold start, the graph's "
        "latency percentiles and pod-seconds.",
    )
    p.add_argument("file", metavar="GRAPH", help="the graph file")
    p.add_argument("--deploy", required=True, metavar="DEPLOY", help="deployment description (deploy.yaml)")
    p.add_argument("--traffic", required=True, metavar="TRAFFIC",
                   help="a t_s,rps CSV, a request log, saved /metrics scrapes, or a router's http://.../metrics URL")
    p.add_argument("--graph", help="which graph, when the file holds several")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--plot", metavar="FILE", help="draw replicas and load over time (.png, .svg or .pdf)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="SERVICE.KEY=VALUE",
                   help="what-if: rerun with a changed setting and print the difference; repeatable")
    p.add_argument("--share", action="append", default=[], metavar="NODE.STEP=FRACTION",
                   help="share of a Switch node's requests that take STEP (default: measured, or equal); repeatable")
    p.add_argument("--cold-start", action="append", default=[], metavar="[SERVICE=]DURATION",
                   help="time from a pod being asked for to it serving (default 10s); repeatable")
    p.add_argument("--service-time", action="append", default=[], metavar="[SERVICE=]DURATION",
                   help="time one call takes on a warm pod (default: measured, else 50ms); repeatable")
    p.add_argument("--duration", metavar="DURATION",
                   help="simulate this long (default: 10 minutes past the last row or request)")
    p.add_argument("--scrape-for", default="60s", metavar="DURATION", help="with a URL: scrape this long (60s)")
    p.add_argument("--scrape-every", default="5s", metavar="DURATION", help="with a URL: between scrapes (5s)")
    p.add_argument("--save-scrapes", metavar="FILE", help="with a URL: save the scrapes, to replay with --traffic")
    p.add_argument("--seed", type=int, default=0, help="seed for the arrivals drawn at low rates (default 0)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal and a run takes a while)")
    p.set_defaults(func=cmd_plan)


def cmd_plan(args: argparse.Namespace) -> int:
    if args.plot:
        from .plot import check

        check(args.plot)
    doc = _pick(load_graphs([args.file]), args.graph)
    warnings: list[str] = []
    raw_deploy = _read_yaml(args.deploy)
    sets = [parse_setting(s) for s in args.sets]
    spec = load_deploy_checked(raw_deploy, doc, source=args.deploy, warnings=warnings)
    after_spec = load_deploy_checked(apply_settings(raw_deploy, sets), doc, source=f"{args.deploy} with --set",
                                     warnings=[]) if sets else None
    traffic = _traffic(args, doc)
    inputs = ModelInputs(_durations(args.cold_start, "--cold-start"), _durations(args.service_time, "--service-time"))
    shares = _shares(args.share)
    show = args.progress if args.progress is not None else sys.stderr.isatty()
    forced = args.progress is True
    base = run(doc, spec, traffic, inputs, shares=shares, warnings=warnings, source=args.deploy, seed=args.seed,
               progress=_Bar(f"plan {doc.name}", show, forced=forced))
    after: Plan | None = None
    if after_spec is not None:
        after = run(doc, after_spec, traffic, with_model_sets(inputs, sets), shares=shares, warnings=[],
                    source=f"{args.deploy} with --set", seed=args.seed,
                    progress=_Bar(f"what-if {doc.name}", show, forced=forced))
    for w in dict.fromkeys(warnings):
        print(f"warning: {w}", file=sys.stderr)
    _output(args, doc, traffic, base, after, sets, sys.stdout)
    if args.plot:
        from .plot import plot

        title = f"graph {doc.name}: {traffic.source}" + (" (what-if: " + ", ".join(args.sets) + ")" if sets else "")
        plot(args.plot, after or base, title=title, baseline=base if after is not None else None)
    return 0


def _output(args: argparse.Namespace, doc: GraphDocument, traffic: Traffic, base: Plan, after: Plan | None,
            sets: Sequence[Setting], out: TextIO) -> None:
    before = summarize(base, graph=doc.name, source=traffic.source)
    changed = summarize(after, graph=doc.name, source=traffic.source) if after is not None else None
    if args.format == "json":
        doc_out: dict[str, Any] = dict(before)
        if changed is not None:
            doc_out["what_if"] = {"set": [s.text for s in sets], **changed}
        out.write(orjson.dumps(doc_out, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    out.write(render_text(before))
    if changed is not None:
        out.write("\n" + render_diff(before, changed, sets))


def _pick(docs: list[GraphDocument], name: str | None) -> GraphDocument:
    if name is not None:
        for d in docs:
            if d.name == name:
                return d
        raise SpecError(Problem("--graph", f"graph {name!r} not found; graphs: {', '.join(d.name for d in docs)}"))
    if len(docs) > 1:
        raise SpecError(Problem("", f"the file holds several graphs ({', '.join(d.name for d in docs)}): "
                                "choose one with --graph"))
    return docs[0]


def _read_yaml(path: str) -> Any:
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(Problem("", f"cannot read file: {exc}"), source=path) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise SpecError(Problem("", f"{where}invalid YAML: {getattr(exc, 'problem', None) or exc}"),
                        source=path) from exc


def _seconds(text: str, where: str) -> float:
    value = parse_seconds(text)
    if value is None:
        raise SpecError(Problem(where, f"expected a duration such as 30s, 250ms or 2m, got {text!r}"))
    return value


def _durations(items: Sequence[str], flag: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.rpartition("=")
        out[name if sep else "*"] = _seconds(value, f"{flag} {item}")
    return out


def _shares(items: Sequence[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            share = float(value)
        except ValueError:
            share = -1.0
        if not sep or "." not in key or not 0 <= share <= 1:
            raise SpecError(Problem(f"--share {item}", "expected NODE.STEP=FRACTION with a fraction from 0 to 1, "
                                    "e.g. --share breed-switch.dog=0.6"))
        out[key] = share
    return out


def _traffic(args: argparse.Namespace, doc: GraphDocument) -> Traffic:
    duration = _seconds(args.duration, "--duration") if args.duration else None
    source = args.traffic
    if source.startswith(("http://", "https://")):
        text = _scrape(source, _seconds(args.scrape_for, "--scrape-for"), _seconds(args.scrape_every, "--scrape-every"))
        if args.save_scrapes:
            Path(args.save_scrapes).write_text(text, encoding="utf-8")
    else:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError(Problem("", f"cannot read the traffic file: {exc}"), source=source) from exc
    return parse_traffic(text, source=source, graph=doc.name, duration=duration)


def _scrape(url: str, total_s: float, every_s: float) -> str:
    """Scrape ``url`` every ``every_s`` for ``total_s`` (at least twice): a saved-series text."""
    if every_s <= 0 or total_s < every_s:
        raise SpecError(Problem("--scrape-every", "must be more than 0 and at most --scrape-for"))
    print(f"scraping {url} every {every_s:g}s for {total_s:g}s", file=sys.stderr)
    parts: list[str] = []
    start = time.monotonic()
    for i in range(int(total_s // every_s) + 1):
        delay = start + i * every_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        when = time.time()
        try:
            with urllib.request.urlopen(url, timeout=max(1.0, every_s)) as resp:
                body = resp.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise SpecError(Problem("--traffic", f"cannot scrape {url}: {exc}; is the router running, "
                                    "with metrics on?")) from exc
        parts.append(f"# scrape_time {when:.3f}\n{body}")
    return "".join(parts)


class _Bar:
    """A progress bar on stderr, shown once a run has taken PROGRESS_AFTER_S (or at once when forced)."""

    def __init__(self, label: str, enabled: bool, *, forced: bool = False) -> None:
        self.label, self.enabled, self.forced = label, enabled, forced
        self.start = time.monotonic()
        self.shown = False

    def __call__(self, fraction: float) -> None:
        if not self.enabled or (not self.forced and time.monotonic() - self.start < PROGRESS_AFTER_S):
            return
        filled = int(fraction * 30)
        sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {fraction:4.0%}")
        self.shown = True
        if fraction >= 1.0:
            sys.stderr.write("\n")
        sys.stderr.flush()
