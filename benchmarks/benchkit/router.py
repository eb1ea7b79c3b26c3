"""The routers under test: graph patterns, variants, and the command lines that start them.

Every ``graph-router serve`` flag the harness uses is in this module, so a CLI change is a
one-place edit here.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .procs import HOST

GRAPHS = Path(__file__).resolve().parent.parent / "graphs"
REPO = GRAPHS.parent.parent
SERVICES = ("model-a", "model-b", "model-c")
#: The request every benchmark sends; switch.yaml's conditions pick model-b for it.
BODY = '{"instances":[{"modelId":"2","data":[1.0,2.0,3.0,4.0]}]}'


@dataclass(frozen=True, slots=True)
class Pattern:
    key: str
    title: str
    graph: Path


PATTERNS: dict[str, Pattern] = {
    p.key: p
    for p in (
        Pattern("1hop", "1 hop", GRAPHS / "one-hop.yaml"),
        Pattern("seq3", "Sequence of 3", GRAPHS / "sequence-3.yaml"),
        Pattern("ens3", "Ensemble of 3", GRAPHS / "ensemble-3.yaml"),
        Pattern("switch", "Switch", GRAPHS / "switch.yaml"),
        Pattern("splitter", "Splitter 50/50", GRAPHS / "splitter.yaml"),
    )
}
SOAK = Pattern("soak", "Sequence -> Ensemble of 3", GRAPHS / "soak-sequence-ensemble.yaml")


@dataclass(frozen=True, slots=True)
class Variant:
    key: str
    workers: int
    telemetry: str  # a key of TELEMETRY_FLAGS
    #: further ``serve`` flags of this variant
    extra: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        workers = "1 worker" if self.workers == 1 else f"{self.workers} workers"
        return f"{workers}, {TELEMETRY_TITLES[self.telemetry]}"


# The one place that knows graph-router's serve flags. Tracing "otlp" exports over HTTP to a
# local sink (an nginx port answering 200); "off" and the default (auto, with no OTEL_* set) do not.
# "on" traces every request; "on10" samples 10% (OTEL_TRACES_SAMPLER, see router_env). Two more
# take tracing's cost apart (run on request only): "ctx" samples nothing (the trace context alone,
# what a sampled-out request pays) and "unsent" records every span but its collector refuses
# connections, so batches are dropped unsent.
TELEMETRY_FLAGS: dict[str, list[str]] = {
    "default": [],
    "off": ["--no-metrics", "--tracing", "off"],
    "on": ["--tracing", "otlp"],
    "on10": ["--tracing", "otlp"],
    "ctx": ["--tracing", "otlp"],
    "unsent": ["--tracing", "otlp"],
}
TELEMETRY_TITLES = {
    "default": "defaults",
    "off": "metrics off, tracing off",
    "on": "metrics on, every request traced, OTLP to a local sink",
    "on10": "metrics on, 10% of requests traced, OTLP to a local sink",
    "ctx": "metrics on, tracing on but no request sampled",
    "unsent": "metrics on, every request traced, spans dropped unsent",
}
#: Always passed: stop at once on SIGTERM (no drain period between rows).
COMMON_FLAGS = ["--drain-seconds", "0"]
VARIANTS: dict[str, Variant] = {
    v.key: v
    for v in (
        Variant("w1", 1, "default"),
        Variant("w2", 2, "default"),
        Variant("tel-off", 1, "off"),
        Variant("tel-on", 1, "on"),
        Variant("tel-10", 1, "on10"),
        Variant("tel-ctx", 1, "ctx"),
        Variant("tel-unsent", 1, "unsent"),
    )
}
#: The payload rows: 8 connections of up to 8 MB each way (an Ensemble's answer three times that) pass the
#: default memory budget (``--max-inflight-bytes``, 32 MiB a worker), which would refuse part of them with
#: 503 by design; these rows measure the data plane, so the budget is off.
PAYLOAD = Variant("payload", 1, "default", ("--max-inflight-bytes", "0"))
#: Variants that run only when named with --variants (they take the tracing cost apart).
ON_REQUEST = frozenset({"tel-ctx", "tel-unsent"})


def service_url(name: str, port: int) -> str:
    """The URL a ``serviceName`` resolves to (KServe v1 predict path) on the local backend."""
    return f"http://{HOST}:{port}/v1/models/{name}:predict"


def default_router_cmd() -> list[str]:
    """The checkout's router: the venv's ``graph-router`` script, else ``python -m graph_router``."""
    venv = REPO / ".venv" / "bin"
    if (venv / "graph-router").exists():
        return [str(venv / "graph-router")]
    if (venv / "python").exists():  # a venv without the package installed: run the checkout
        return [str(venv / "python"), "-m", "graph_router"]
    found = shutil.which("graph-router")
    return [found] if found else [sys.executable, "-m", "graph_router"]


def router_env(variant: Variant, sink_port: int) -> dict[str, str | None]:
    """Environment for a router process: the checkout first on the path; OTLP only where wanted."""
    path = os.environ.get("PYTHONPATH")
    env: dict[str, str | None] = {"PYTHONPATH": str(REPO) + (os.pathsep + path if path else "")}
    # Drop inherited OTEL exporter settings so "auto" tracing means off in the default rows.
    env |= {k: None for k in os.environ if k.startswith(("OTEL_EXPORTER_OTLP_", "OTEL_TRACES_SAMPLER"))}
    if variant.telemetry in ("on", "on10", "ctx"):
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://{HOST}:{sink_port}"
    if variant.telemetry == "unsent":
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://{HOST}:1"  # nothing listens: every export is refused
    if variant.telemetry == "on10":
        env["OTEL_TRACES_SAMPLER"] = "parentbased_traceidratio"
        env["OTEL_TRACES_SAMPLER_ARG"] = "0.1"
    if variant.telemetry == "ctx":
        env["OTEL_TRACES_SAMPLER"] = "always_off"
    return env


def serve_argv(router_cmd: list[str], graph: Path, port: int, services: dict[str, str], variant: Variant) -> list[str]:
    """The ``graph-router serve`` command line for one row."""
    argv = [*router_cmd, "serve", str(graph), "--host", HOST, "--port", str(port)]
    for name, url in services.items():
        argv += ["--service", f"{name}={url}"]
    if variant.workers != 1:
        argv += ["--workers", str(variant.workers)]
    return argv + COMMON_FLAGS + TELEMETRY_FLAGS[variant.telemetry] + list(variant.extra)


def load_spec(graph: Path) -> dict[str, Any]:
    """Read a graph file and return its ``spec`` (the part KServe's ``--graph-json`` takes)."""
    import yaml  # only --compare-with needs it; keep the pure parts importable without it

    doc = yaml.safe_load(graph.read_text())
    spec = doc.get("spec", doc)
    if not isinstance(spec, dict):
        raise ValueError(f"{graph}: no spec mapping")
    return spec


def resolve_services(spec: dict[str, Any], services: dict[str, str]) -> dict[str, Any]:
    """Replace each ``serviceName`` with the ``serviceUrl`` it stands for (what KServe's controller does)."""
    nodes = {}
    for name, node in spec["nodes"].items():
        steps = []
        for step in node.get("steps", []):
            step = dict(step)
            if "serviceName" in step:
                step["serviceUrl"] = services[step.pop("serviceName")]
            steps.append(step)
        nodes[name] = {**node, "steps": steps}
    return {**spec, "nodes": nodes}


@dataclass(frozen=True, slots=True)
class CompareCommand:
    """A ``--compare-with`` template: ``{port}`` and ``{graph_json}`` are filled per row."""

    template: str
    fixed_port: int

    @property
    def has_port(self) -> bool:
        return "{port}" in self.template

    @property
    def name(self) -> str:
        """The router's name for the table: the program, or the script an interpreter runs."""
        words = [Path(w).name for w in shlex.split(self.template) if not w.startswith("-")]
        if len(words) > 1 and words[0].startswith(("python", "node", "java")):
            return words[1]
        return words[0]

    def argv(self, port: int, graph_json: str) -> list[str]:
        # Split first, fill after: the JSON needs no shell quoting that way.
        return [
            arg.replace("{port}", str(port)).replace("{graph_json}", graph_json) for arg in shlex.split(self.template)
        ]


def graph_json(graph: Path, services: dict[str, str]) -> str:
    return json.dumps(resolve_services(load_spec(graph), services), separators=(",", ":"))


#: KServe's own router binary, beside the checkout (its README says how to run it). run.py puts it
#: in the same run by default when it exists.
KSERVE_ROUTER = REPO.parent / "shared" / "kserve-router" / "router"


@dataclass(frozen=True, slots=True)
class OtherRouter:
    """A router to compare with: its name, command template and how it learns its port.

    KServe's router reads its listen address from ``ORACLE_LISTEN_ADDR``; a ``--compare-with``
    template has ``{port}`` or listens on a fixed port. Either gets the graph with ``{graph_json}``.
    """

    name: str
    command: CompareCommand
    port_env: str | None = None  # the variable that carries host:port, when the command has no {port}
    kill: bool = False  # stop with SIGKILL (KServe's router waits 30 s on SIGTERM)

    def argv(self, port: int, graph_json: str) -> list[str]:
        return self.command.argv(port, graph_json)

    def env(self, port: int) -> dict[str, str | None]:
        return {self.port_env: f"{HOST}:{port}"} if self.port_env else {}

    @property
    def fixed_port(self) -> int | None:
        """The one port it can listen on, or None when it is told its port."""
        return None if self.port_env or self.command.has_port else self.command.fixed_port


def kserve_router(binary: Path) -> OtherRouter:
    return OtherRouter("KServe router", CompareCommand(shlex.quote(str(binary)) + " --graph-json {graph_json}", 0),
                       port_env="ORACLE_LISTEN_ADDR", kill=True)


#: Health path polled before measuring, and the path requests are sent to.
READY_PATH = "/readyz"
GRAPH_PATH = "/"
