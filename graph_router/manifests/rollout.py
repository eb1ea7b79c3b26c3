"""Canary, promote and rollback on an InferenceService or a Knative Service (pure: object in, object out).

InferenceService, KServe's model: the candidate is the latest revision and gets
``canaryTrafficPercent``; KServe keeps the rest on the previous rolled-out revision (tag ``prev``).
Promote removes ``canaryTrafficPercent``; rollback sets it to 0.

Knative Service: the ``traffic`` block pins the serving revision (tag ``prev``) and sends N% to
the candidate (tag ``latest``); promote sends 100% to the latest revision and keeps ``prev``
addressable at 0%; rollback pins 100% to ``prev`` (or ``--to-revision``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from ..errors import Problem, SpecError

Obj = dict[str, Any]
FRAMEWORKS = (
    "model",
    "sklearn",
    "xgboost",
    "lightgbm",
    "tensorflow",
    "pytorch",
    "triton",
    "onnx",
    "huggingface",
    "pmml",
    "paddle",
)
SERVER_FIELDS = ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields", "selfLink")


@dataclass(frozen=True)
class Candidate:
    """What the new version runs; unset fields keep the current value."""

    storage_uri: str | None = None
    runtime: str | None = None
    image: str | None = None
    revision_name: str | None = None
    stable_revision: str | None = None
    #: From a live object's status: the fallback when the spec does not say which revision serves.
    status_revision: str | None = None


def _fail(name: str, path: str, message: str) -> SpecError:
    return SpecError(Problem(path, message), source=name)


def is_isvc(obj: Obj) -> bool:
    return obj.get("kind") == "InferenceService"


def canary(obj: Obj, percent: int, cand: Candidate, warnings: list[str]) -> Obj:
    """Start (or re-weight) a canary with ``percent`` of the traffic."""
    name = obj["metadata"]["name"]
    if not 0 <= percent <= 100:
        raise _fail(name, "--percent", f"expected 0 <= {percent} <= 100")
    out = copy.deepcopy(obj)
    return _isvc_canary(out, percent, cand, warnings) if is_isvc(out) else _ksvc_canary(out, percent, cand)


def _isvc_canary(out: Obj, percent: int, cand: Candidate, warnings: list[str]) -> Obj:
    name = out["metadata"]["name"]
    predictor = out["spec"]["predictor"]
    if cand.image or cand.revision_name:
        raise _fail(name, "--image", "an InferenceService's candidate is a model: use --storage-uri/--runtime")
    impl = next((predictor[k] for k in FRAMEWORKS if isinstance(predictor.get(k), dict)), None)
    changed = False
    if cand.storage_uri or cand.runtime:
        if impl is None:
            raise _fail(name, "spec.predictor", "no model spec (model, sklearn, ...) to put the candidate in")
        for key, value in (("storageUri", cand.storage_uri), ("runtime", cand.runtime)):
            if value is not None and impl.get(key) != value:
                impl[key] = value
                changed = True
    if not changed and "canaryTrafficPercent" not in predictor:
        warnings.append(
            f"{name}: the predictor is unchanged, so KServe creates no new revision to send "
            f"{percent}% to: give the candidate with --storage-uri (or a canary in the description)"
        )
    predictor["canaryTrafficPercent"] = percent
    return out


def _ksvc_canary(out: Obj, percent: int, cand: Candidate) -> Obj:
    name = out["metadata"]["name"]
    template = out["spec"].setdefault("template", {})
    tmeta = template.setdefault("metadata", {})
    stable = cand.stable_revision or _serving_revision(out) or cand.status_revision
    if stable is None:
        raise _fail(
            name,
            "--stable-revision",
            "cannot tell which revision serves now; pass --stable-revision "
            f"(kubectl get revisions -l serving.knative.dev/service={name})",
        )
    containers = template.get("spec", {}).get("containers", [])
    if cand.image:
        if not containers:
            raise _fail(name, "spec.template.spec.containers", "no container to give the new image")
        containers[0]["image"] = cand.image
    if cand.revision_name:
        tmeta["name"] = cand.revision_name
    elif cand.image and tmeta.get("name"):
        raise _fail(
            name,
            "--revision-name",
            f'spec.template.metadata.name is set ("{tmeta["name"]}"): a changed template needs a new revision name',
        )
    if not cand.image and not cand.revision_name and stable == tmeta.get("name"):
        raise _fail(name, "--image", "the template is unchanged, so there is no new revision: pass --image")
    latest: Obj = {"revisionName": tmeta["name"]} if tmeta.get("name") else {"latestRevision": True}
    traffic = [
        {"revisionName": stable, "percent": 100 - percent, "tag": "prev"},
        {**latest, "percent": percent, "tag": "latest"},
    ]
    out["spec"]["traffic"] = traffic
    return out


def _serving_revision(obj: Obj) -> str | None:
    """The revision tagged ``prev`` (a canary in progress), else the pinned revision taking the most
    traffic, else the BYO name of the template."""
    prev = _tagged(obj, "prev")
    if prev is not None and prev.get("revisionName"):
        return str(prev["revisionName"])
    traffic = obj["spec"].get("traffic") or []
    pinned = [t for t in traffic if t.get("revisionName") and t.get("percent")]
    if pinned:
        return str(max(pinned, key=lambda t: int(t["percent"]))["revisionName"])
    name = obj["spec"].get("template", {}).get("metadata", {}).get("name")
    return str(name) if name else None


def status_serving_revision(obj: Obj) -> str | None:
    """From a live Knative Service's ``status.traffic``: the revision taking the most traffic."""
    status = obj.get("status")
    traffic = status.get("traffic") if isinstance(status, dict) else None
    if not isinstance(traffic, list):
        return None
    live = [t for t in traffic if isinstance(t, dict) and t.get("revisionName") and t.get("percent")]
    return str(max(live, key=lambda t: int(t["percent"]))["revisionName"]) if live else None


def _tagged(obj: Obj, tag: str) -> Obj | None:
    return next((t for t in obj["spec"].get("traffic") or [] if t.get("tag") == tag), None)


def promote(obj: Obj) -> Obj:
    """Send all traffic to the candidate."""
    out = copy.deepcopy(obj)
    name = out["metadata"]["name"]
    if is_isvc(out):
        if out["spec"]["predictor"].pop("canaryTrafficPercent", None) is None:
            raise _fail(name, "spec.predictor.canaryTrafficPercent", "no canary to promote (not set)")
        return out
    prev = _tagged(out, "prev")
    if prev is None:
        raise _fail(name, "spec.traffic", 'no canary to promote (no revision tagged "prev")')
    out["spec"]["traffic"] = [
        {"latestRevision": True, "percent": 100, "tag": "latest"},
        {"revisionName": prev["revisionName"], "percent": 0, "tag": "prev"},
    ]
    return out


def rollback(obj: Obj, to_revision: str | None = None) -> Obj:
    """Send all traffic back to the previous revision (or ``to_revision``, Knative Services only)."""
    out = copy.deepcopy(obj)
    name = out["metadata"]["name"]
    if is_isvc(out):
        if to_revision:
            raise _fail(
                name,
                "--to-revision",
                "an InferenceService rolls back to its previous rolled-out revision "
                "(canaryTrafficPercent: 0); --to-revision is for Knative Services",
            )
        out["spec"]["predictor"]["canaryTrafficPercent"] = 0
        return out
    prev = _tagged(out, "prev")
    target = to_revision or (prev or {}).get("revisionName")
    if not target:
        raise _fail(name, "--to-revision", 'no revision tagged "prev" to roll back to; pass --to-revision')
    if not str(target).startswith(f"{name}-"):
        raise _fail(
            name,
            "--to-revision",
            f'revision "{target}" is not a revision of {name} (names start with "{name}-")',
        )
    out["spec"]["traffic"] = [
        {"revisionName": target, "percent": 100, "tag": "prev"},
        {"latestRevision": True, "percent": 0, "tag": "latest"},
    ]
    return out


def merge_patch(before: Any, after: Any) -> Any:
    """RFC 7386 JSON merge patch turning ``before`` into ``after`` (lists are replaced whole)."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        return after
    patch: Obj = {k: None for k in before if k not in after}
    for k, v in after.items():
        if k not in before:
            patch[k] = v
        elif isinstance(v, dict) and isinstance(before[k], dict):
            sub = merge_patch(before[k], v)
            if sub:
                patch[k] = sub
        elif v != before[k]:
            patch[k] = v
    return patch


def clean(obj: Obj) -> Obj:
    """Drop what the API server owns (status, resourceVersion, ...) so the output can be applied."""
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out.get("metadata", {})
    for key in SERVER_FIELDS:
        meta.pop(key, None)
    anns = meta.get("annotations")
    if isinstance(anns, dict):
        anns.pop("kubectl.kubernetes.io/last-applied-configuration", None)
        if not anns:
            meta.pop("annotations")
    return out
