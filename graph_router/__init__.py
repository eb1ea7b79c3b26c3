"""graph-router: a fast, KServe-compatible InferenceGraph router."""

from __future__ import annotations

from .api import GraphRouter
from .backend import Backend, BackendRequest, BackendResponse, InProcessBackend, RetryPolicy
from .engine import Result
from .errors import GraphRouterError, Problem, SpecError
from .loader import load_graph_json, load_graph_text, load_graphs
from .spec import GraphDocument, GraphSpec, NodeSpec, StepSpec

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "BackendRequest",
    "BackendResponse",
    "GraphDocument",
    "GraphRouter",
    "GraphRouterError",
    "GraphSpec",
    "InProcessBackend",
    "NodeSpec",
    "Problem",
    "Result",
    "RetryPolicy",
    "SpecError",
    "StepSpec",
    "__version__",
    "load_graph_json",
    "load_graph_text",
    "load_graphs",
]
