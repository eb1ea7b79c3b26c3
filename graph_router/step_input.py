"""The body a step receives: the node's input or the previous response, selected or rewritten."""

from __future__ import annotations

from typing import Any

from .compiler import CompiledStep
from .conditions import INVALID, JsonDoc
from .errors import RequestError, StepInputError
from .go_unmarshal import go_predictions
from .selection import NOTHING


def step_input(step: CompiledStep, node_input: JsonDoc, previous: JsonDoc | None) -> JsonDoc:
    """The body a step receives: node input, previous response, or a selection of either."""
    src = previous if step.uses_response and previous is not None else node_input
    if step.selection is not None:
        if src.value is INVALID:
            what = "previous response" if src is previous else "request"
            err_cls = StepInputError if src is previous else RequestError
            raise err_cls(f"data {step.selection.source!r}: the {what} is not JSON, so nothing can be selected "
                          f"from it")
        value = step.selection.select(src.value)
        if value is NOTHING:
            raise StepInputError(f"data {step.selection.source!r} selected nothing from the "
                                 f"{'previous response' if step.uses_response else 'request'}")
        src = JsonDoc.of(value)
    if step.map_predictions:
        predictions = go_predictions(src.value)
        if predictions:
            src = JsonDoc.of({"instances": predictions})
    if step.map_outputs and src.value is not INVALID:
        src = _outputs_to_inputs(src)
    return src


def _outputs_to_inputs(doc: JsonDoc) -> JsonDoc:
    """Extension (KServe #3051): a v2 response's ``outputs`` become the next request's ``inputs``."""
    v = doc.value
    if not isinstance(v, dict) or not isinstance(v.get("outputs"), list):
        return doc
    req: dict[str, Any] = {}
    if "id" in v:
        req["id"] = v["id"]
    req["inputs"] = [
        {k: o[k] for k in ("name", "shape", "datatype", "data", "parameters") if k in o}
        for o in v["outputs"] if isinstance(o, dict)
    ]
    if "parameters" in v:
        req["parameters"] = v["parameters"]
    return JsonDoc.of(req)
