"""graph-router: a fast, KServe-compatible InferenceGraph router."""

from __future__ import annotations

__version__ = "0.1.0"
