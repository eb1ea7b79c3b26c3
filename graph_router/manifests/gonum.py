"""Go's parsing and printing of durations and numbers: our checks accept and word values as Knative."""

from __future__ import annotations

import re

_UNITS = {
    "ns": 1,
    "us": 10**3,
    "µs": 10**3,
    "μs": 10**3,
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}
_DURATION = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> int | None:
    """Nanoseconds, as Go's ``time.ParseDuration`` reads ``text``; None where Go reports an error."""
    s = text
    sign = 1
    if s[:1] in "+-" and s:
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        return None
    total = 0
    pos = 0
    while pos < len(s):
        m = _DURATION.match(s, pos)
        if m is None:
            return None
        num, unit = m.group(1), m.group(2)
        whole, _, frac = num.partition(".")
        value = int(whole or "0") * _UNITS[unit]
        if frac:
            value += int(frac) * _UNITS[unit] // 10 ** len(frac)
        total += value
        pos = m.end()
    return sign * total


def format_go_duration(ns: int) -> str:
    """Go's ``Duration.String`` for whole seconds and above (enough for the bounds we print)."""
    if ns == 0:
        return "0s"
    secs = ns // 10**9
    h, rem = divmod(secs, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{h}h{m}m{s}s"
    if m:
        return f"{m}m{s}s"
    return f"{s}s"


def go_float(text: str) -> float | None:
    """``strconv.ParseFloat``: None where Go fails (Python also accepts '1_0', Go does not)."""
    if "_" in text or not text.strip() or text != text.strip():
        return None
    try:
        return float(text)
    except ValueError:
        return None


def go_int(text: str) -> int | None:
    if not re.fullmatch(r"[+-]?\d+", text):
        return None
    return int(text)


def go_g(x: float) -> str:
    """Go's %v/%g for the float64 bounds (1 -> '1', 0.01 -> '0.01')."""
    return str(int(x)) if float(x).is_integer() else repr(x)
