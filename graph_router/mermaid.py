"""``graph-router graph FILE``: a graph as a Mermaid flowchart."""

from __future__ import annotations

import re

from .spec import GraphDocument, RouterType

_SAFE = re.compile(r"[^A-Za-z0-9_]")


def _id(*parts: str) -> str:
    return "_".join(_SAFE.sub("_", p) for p in parts)


def _label(text: str) -> str:
    return text.replace('"', "#quot;")


def to_mermaid(doc: GraphDocument) -> str:
    """Nodes as subgraph-free boxes; edges labelled with conditions, weights and data."""
    lines = ["flowchart LR", f'    client(["client"]) --> {_id("node", "root")}']
    for name, node in doc.spec.nodes.items():
        extra = []
        if node.aggregate:
            extra.append(f"aggregate: {node.aggregate.value}")
        if node.sticky_header:
            extra.append(f"sticky: {node.sticky_header}")
        suffix = f"<br/>{', '.join(extra)}" if extra else ""
        shape = ("{{", "}}") if node.router_type in (RouterType.SWITCH, RouterType.SPLITTER) else ("[", "]")
        lines.append(f'    {_id("node", name)}{shape[0]}"{_label(name)}<br/><i>{node.router_type.value}</i>{suffix}"'
                     f"{shape[1]}")
        prev = None
        for i, step in enumerate(node.steps):
            label = step.name or str(i)
            if step.node_name:
                target = _id("node", step.node_name)
            else:
                target = _id("svc", name, label)
                what = step.service_name or step.service_url or ""
                lines.append(f'    {target}["{_label(label)}: {_label(what)}"]')
            edge = []
            if step.condition:
                edge.append(step.condition)
            if step.weight is not None and node.router_type == RouterType.SPLITTER:
                edge.append(f"{step.weight}%")
            if step.data and step.data != "$request":
                edge.append(step.data)
            if step.hard:
                edge.append("Hard")
            text = f'|"{_label(", ".join(edge))}"|' if edge else ""
            src = _id("node", name)
            if node.router_type == RouterType.SEQUENCE and prev is not None:
                lines.append(f"    {prev} -.->{text} {target}")
            else:
                lines.append(f"    {src} -->{text} {target}")
            prev = target
            if step.mirror is not None:  # the shadow: a copy of the step's input, its answer never used
                shadow = _id("shadow", name, label)
                lines.append(f'    {shadow}[/"shadow: {_label(step.mirror.target)}"/]')
                lines.append(f'    {target} -.->|"mirror {step.mirror.percent:g}%"| {shadow}')
    return "\n".join(lines) + "\n"
