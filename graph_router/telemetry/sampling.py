"""W3C trace context in (``traceparent``/``tracestate``) and the SDK's built-in samplers, without the SDK."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..http.messages import HttpRequest

# the OpenTelemetry propagator's own pattern and limits
_TRACEPARENT = re.compile(r"^[ \t]*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:(-.*)|[ \t]*)$")
_MAX_TRACEPARENT = 512
# the API's TraceState.from_header: a malformed member, a repeated key or more than 32 members drop it all
_TS_KEY = r"[a-z][_0-9a-z\-\*\/]{0,255}|[a-z0-9][_0-9a-z\-\*\/]{0,240}@[a-z][_0-9a-z\-\*\/]{0,13}"
_TS_VALUE = r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
_TS_MEMBER = re.compile(f"({_TS_KEY})=({_TS_VALUE})")
_MAX_TRACESTATE = 8192
_MAX_TRACESTATE_KEYS = 32


class Sampler:
    """The SDK's built-in samplers, chosen by ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG``."""

    KINDS = ("always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off",
             "parentbased_traceidratio")

    def __init__(self, kind: str = "parentbased_always_on", ratio: float = 1.0) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"OTEL_TRACES_SAMPLER={kind!r}: expected one of {', '.join(self.KINDS)}")
        self.kind = kind
        self.parent_based = kind.startswith("parentbased_")
        root = kind.removeprefix("parentbased_")
        self.ratio = ratio if root == "traceidratio" else (1.0 if root == "always_on" else 0.0)
        self.bound = round(self.ratio * (1 << 64))  # as the SDK's TraceIdRatioBased: lower 64 bits of the id

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Sampler:
        kind = env.get("OTEL_TRACES_SAMPLER", "").strip().lower() or "parentbased_always_on"
        raw = env.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
        ratio = 1.0
        if "traceidratio" in kind and raw:
            try:
                ratio = float(raw)
            except ValueError:
                ratio = -1.0
            if not 0.0 <= ratio <= 1.0:
                raise ValueError(f"OTEL_TRACES_SAMPLER_ARG={raw!r}: expected a ratio between 0 and 1")
        return cls(kind, ratio)

    def sample(self, parent_sampled: bool | None, trace_low: int) -> bool:
        """``parent_sampled`` is None when the request has no (valid) incoming ``traceparent``."""
        if self.parent_based and parent_sampled is not None:
            return parent_sampled
        return trace_low < self.bound


def parse_traceparent(req: HttpRequest) -> tuple[bytes, bytes, bool, str | None] | None:
    """(trace id, parent span id, sampled, tracestate) of a valid incoming W3C context, else None.

    As the OpenTelemetry propagator: the first ``traceparent`` counts; version ff, a version-00 header
    with extra fields and all-zero ids are invalid; ``tracestate`` fields are joined with commas and
    kept as the API's ``TraceState`` keeps them (:func:`_tracestate`).
    """
    value = tracestate = None
    for k, v in req.headers:  # names are lower-case (HttpRequest)
        if k == "traceparent":
            if value is None:
                value = v
        elif k == "tracestate":
            tracestate = v if tracestate is None else f"{tracestate},{v}"
    if value is None or len(value) > _MAX_TRACEPARENT:
        return None
    m = _TRACEPARENT.match(value)
    if m is None:
        return None
    version, trace, parent, flags, rest = m.groups()
    if version == "ff" or (version == "00" and rest) or trace == "0" * 32 or parent == "0" * 16:
        return None
    if tracestate is not None:
        tracestate = None if len(tracestate) > _MAX_TRACESTATE else _tracestate(tracestate)
    return bytes.fromhex(trace), bytes.fromhex(parent), bool(int(flags, 16) & 1), tracestate


def _tracestate(value: str) -> str | None:
    """``value`` as ``TraceState.from_header(...).to_header()`` gives it, or None where that is empty."""
    keys: set[str] = set()
    members = []
    for member in value.split(","):
        member = member.strip(" \t")
        if not member:
            continue
        m = _TS_MEMBER.fullmatch(member)
        if m is None or m.group(1) in keys:
            return None
        keys.add(m.group(1))
        members.append(member)
    if len(members) > _MAX_TRACESTATE_KEYS:
        return None
    return ",".join(members) or None
