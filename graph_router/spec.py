"""Typed models of KServe's InferenceGraph (v1alpha1), plus our additive extension fields.

Field names on the wire are KServe's (camelCase). Models are frozen and forbid unknown fields;
they are built by :mod:`graph_router.loader` only after every check passed, so a ``GraphSpec``
in hand is always a valid graph.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class RouterType(StrEnum):
    SEQUENCE = "Sequence"
    SWITCH = "Switch"
    ENSEMBLE = "Ensemble"
    SPLITTER = "Splitter"


class Dependency(StrEnum):
    SOFT = "Soft"
    HARD = "Hard"


class Aggregate(StrEnum):
    """Extension: how an Ensemble combines its steps' answers."""

    MERGE = "merge"
    MEAN = "mean"
    VOTE = "vote"
    WEIGHTED = "weighted"


class Prewarm(StrEnum):
    """Extension: which backends a request wakes when it starts (see :mod:`graph_router.prewarm`)."""

    OFF = "off"
    CERTAIN = "certain"
    ALL = "all"


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


class RetryConfig(_Model):
    """Shape of KServe PR #5386 (``retry`` / ``defaultRetry``), plus ``retryOn``."""

    max_retries: int = 3
    initial_delay_ms: int = 100
    max_delay_ms: int = 300_000
    #: Extension: which failures to retry: connect-failure, reset, timeout, 502, 503, 504.
    retry_on: tuple[str, ...] = ("connect-failure", "502", "503", "504")


class RouterTimeouts(_Model):
    server_read: int | None = None
    server_write: int | None = None
    server_idle: int | None = None
    service_client: int | None = None


class MirrorMode(StrEnum):
    """Extension: when a mirrored copy is sent, relative to the real call."""

    AFTER = "after"
    ALONGSIDE = "alongside"


class MirrorSpec(_Model):
    """Extension (step ``mirror``): send a share of the step's input to a shadow model too.

    The shadow's answer is compared with the real one and never returned (``graph_router.mirror``).
    """

    service_name: str | None = None
    service_url: str | None = Field(default=None, alias="serviceUrl")
    percent: float = 100.0
    compare: str | None = None
    tolerance: float = 0.0
    mode: MirrorMode = MirrorMode.AFTER
    max_concurrency: int = 8
    queue_size: int = 64
    timeout: float = 10.0

    @property
    def target(self) -> str:
        return self.service_name or self.service_url or ""


class StepSpec(_Model):
    name: str | None = None
    node_name: str | None = None
    service_name: str | None = None
    service_url: str | None = Field(default=None, alias="serviceUrl")
    data: str | None = None
    condition: str | None = None
    weight: int | None = None
    dependency: Dependency | None = None
    map_predictions_to_instances: bool | None = None
    # --- extensions (KServe's router ignores them) ---
    timeout: float | None = None
    retry: RetryConfig | None = None
    map_outputs_to_inputs: bool | None = None
    warmup_url: str | None = None
    mirror: MirrorSpec | None = None

    @property
    def target(self) -> str:
        """What this step calls, for messages: ``node:x``, the service name, or the URL."""
        if self.node_name:
            return f"node:{self.node_name}"
        return self.service_name or self.service_url or ""

    @property
    def hard(self) -> bool:
        return self.dependency == Dependency.HARD


class NodeSpec(_Model):
    router_type: RouterType
    steps: tuple[StepSpec, ...] = ()
    # --- extensions ---
    aggregate: Aggregate | None = None
    sticky_header: str | None = None


class GraphSpec(_Model):
    nodes: dict[str, NodeSpec]
    timeout: int | None = None
    router_timeouts: RouterTimeouts | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None
    scale_target: int | None = None
    scale_metric: str | None = None
    resources: dict[str, Any] | None = None
    affinity: dict[str, Any] | None = None
    tolerations: tuple[dict[str, Any], ...] | None = None
    node_selector: dict[str, str] | None = None
    node_name: str | None = None
    service_account_name: str | None = None
    # --- extensions ---
    default_retry: RetryConfig | None = None
    propagate_headers: tuple[str, ...] | None = None
    prewarm: Prewarm | None = None


#: Our additive fields, by level (camelCase as on the wire). KServe's router ignores them;
#: ``manifests --router kserve`` strips them.
EXTENSION_FIELDS: dict[str, frozenset[str]] = {
    "graph": frozenset({"defaultRetry", "propagateHeaders", "prewarm"}),
    "node": frozenset({"aggregate", "stickyHeader"}),
    "step": frozenset({"timeout", "retry", "mapOutputsToInputs", "warmupUrl", "mirror"}),
}


class GraphDocument(_Model):
    """One loaded graph: its name, where it came from, and its validated spec."""

    name: str
    namespace: str | None = None
    source: str = "<string>"
    spec: GraphSpec
    api_version: str | None = None
    kind: str | None = None
    metadata: dict[str, Any] | None = None

    def wire(self) -> dict[str, Any]:
        """The spec as KServe wire JSON (camelCase, unset fields omitted, extensions kept)."""
        return self.spec.model_dump(by_alias=True, exclude_none=True, mode="json")

    def service_names(self) -> set[str]:
        """Every serviceName the graph calls, a step's shadow (``mirror``) included."""
        steps = [s for n in self.spec.nodes.values() for s in n.steps]
        return ({s.service_name for s in steps if s.service_name}
                | {s.mirror.service_name for s in steps if s.mirror is not None and s.mirror.service_name})
