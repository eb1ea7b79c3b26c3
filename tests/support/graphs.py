"""InferenceGraph documents as YAML text, built from a few parts."""

from __future__ import annotations


def graph(name: str, nodes: str, spec_extra: str = "") -> str:
    """An InferenceGraph resource named ``name``; ``nodes`` is the YAML under ``spec.nodes`` (indent 4),
    ``spec_extra`` more ``spec`` fields (indent 2, each line ending in a newline)."""
    return (f"apiVersion: serving.kserve.io/v1alpha1\nkind: InferenceGraph\nmetadata: {{name: {name}}}\n"
            f"spec:\n{spec_extra}  nodes:\n{nodes}")


def sequence(url: str, step_extra: str = "") -> str:
    """``nodes`` for a one-step Sequence calling ``url``; ``step_extra``: more step fields (indent 10)."""
    return f"    root:\n      routerType: Sequence\n      steps:\n        - serviceUrl: {url}\n{step_extra}"


def sequence_of(*services: str) -> str:
    """``nodes`` for a Sequence calling the services named (``serviceName``) in order."""
    steps = "".join(f"        - serviceName: {name}\n" for name in services)
    return f"    root:\n      routerType: Sequence\n      steps:\n{steps}"


def one_step_graph(url: str, spec_extra: str = "", step_extra: str = "") -> str:
    """Graph ``g``: one Sequence step calling ``url``."""
    return graph("g", sequence(url, step_extra), spec_extra)


#: Graph ``g``: one step calling the service named ``a`` (its URL comes from ``--service a=URL``).
ONE_STEP_GRAPH = graph("g", sequence_of("a"))
