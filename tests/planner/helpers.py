"""Building plans from YAML text for the planner's tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from graph_router.loader import load_graphs
from graph_router.planner.plan import ModelInputs, Plan, load_deploy_checked, run
from graph_router.planner.service import ServiceTrace
from graph_router.planner.traffic import Traffic

ONE = """
nodes:
  root:
    routerType: Sequence
    steps:
      - serviceName: m
"""


def plan_for(
    tmp_path: Path,
    deploy: str,
    rps: Sequence[float],
    *,
    graph: str = ONE,
    cold: float = 10.0,
    service_time: float = 0.5,
    shares: dict[str, float] | None = None,
    warnings: list[str] | None = None,
) -> Plan:
    """Simulate ``rps`` (whole seconds, used as given: no drawing of sparse arrivals)."""
    path = tmp_path / "graph.yaml"
    path.write_text(graph)
    doc = load_graphs([path])[0]
    spec = load_deploy_checked(yaml.safe_load(deploy), doc, source="deploy.yaml", warnings=[])
    traffic = Traffic(list(rps), "test", "log")
    inputs = ModelInputs({"*": cold}, {"*": service_time})
    return run(doc, spec, traffic, inputs, shares=shares or {}, warnings=[] if warnings is None else warnings,
               source="deploy.yaml")


def deploy(**fields: object) -> str:
    """A description with one InferenceService ``m`` and these fields (``autoscaling`` as a dict)."""
    m = {"modelFormat": "sklearn", "storageUri": "gs://b/m", "minReplicas": 0, **fields}
    return yaml.safe_dump({"services": {"m": m}})


def changes(tr: ServiceTrace) -> list[tuple[int, int]]:
    return [(t, p) for t, p in enumerate(tr.pods) if t == 0 or tr.pods[t - 1] != p]
