"""Which incoming headers travel to backends: KServe's ``PROPAGATE_HEADERS`` rules, plus ours.

KServe: each comma-separated regex is searched (unanchored, case-sensitive) in the Go-canonical
header name (``X-Request-Id``); matching headers are copied with all their values; an invalid
pattern is skipped. Ours, additive: a graph's ``propagateHeaders`` list, W3C ``traceparent`` /
``tracestate`` always, hop-by-hop headers never. Also what every layer needs of header names and
values: the hop-by-hop set (the HTTP client drops it too) and :func:`header_safe`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from urllib.parse import quote

log = logging.getLogger("graph_router.headers")

#: Hop-by-hop headers (RFC 9110 section 7.6.1) and the framing the sender owns: never copied from
#: one connection to another. The HTTP client drops them while encoding; the header policy never
#: propagates them.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te",
    "trailer", "trailers", "transfer-encoding", "upgrade", "host", "content-length", "expect",
})

ALWAYS = frozenset({"traceparent", "tracestate"})
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def canonical(name: str) -> str:
    """Go's ``textproto.CanonicalMIMEHeaderKey``: ``x-request-id`` -> ``X-Request-Id``."""
    if not _TOKEN.match(name):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


_HEADER_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def header_safe(text: str) -> str:
    """Names from the graph may hold any Unicode (or CR/LF): percent-encode them for a header value."""
    return quote(text, safe=_HEADER_SAFE)


def compile_patterns(patterns: Iterable[str]) -> tuple[re.Pattern[str], ...]:
    """Compile regexes, skipping (and logging) invalid ones, as KServe does."""
    out: list[re.Pattern[str]] = []
    for p in patterns:
        if not p.strip():
            # KServe keeps "" (from PROPAGATE_HEADERS="" or a trailing comma), which matches every
            # header, Authorization and Cookie included: a deliberate deviation, we skip it.
            log.warning("empty header pattern skipped (it would propagate every header, credentials included)")
            continue
        try:
            out.append(re.compile(p))
        except re.error as exc:
            log.error("failed to compile header pattern %r: %s (skipped)", p, exc)
    return tuple(out)


def parse_env(value: str | None) -> tuple[re.Pattern[str], ...]:
    """``PROPAGATE_HEADERS``: unset -> nothing; else comma-separated regexes."""
    if value is None:
        return ()
    return compile_patterns(value.split(","))


class HeaderPolicy:
    """Decides, per request, the headers sent to every backend call of the graph."""

    __slots__ = ("_cache", "_patterns")

    def __init__(self, patterns: Sequence[re.Pattern[str]] = ()) -> None:
        self._patterns = tuple(patterns)
        # Header names repeat across requests: decide each lower-cased name once.
        self._cache: dict[str, str | None] = {}

    def with_graph(self, extra: Iterable[str] | None) -> HeaderPolicy:
        """This policy plus a graph's ``propagateHeaders`` (already validated)."""
        if not extra:
            return self
        return HeaderPolicy(self._patterns + compile_patterns(extra))

    def _decide(self, name: str) -> str | None:
        lname = name.lower()
        if lname in HOP_BY_HOP:
            out = None
        elif lname in ALWAYS:
            out = lname
        else:
            canon = canonical(name)
            out = canon if any(p.search(canon) for p in self._patterns) else None
        if len(self._cache) < 4096:
            self._cache[lname] = out
        return out

    def select(self, incoming: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """Headers to send to backends, canonical names, all values kept, Content-Type defaulted."""
        out: list[tuple[str, str]] = []
        cache = self._cache
        has_ct = False
        for name, value in incoming:
            lname = name.lower()
            try:
                send = cache[lname]
            except KeyError:
                send = self._decide(name)
            if send is not None:
                out.append((send, value))
                if lname == "content-type":
                    has_ct = True
        if not has_ct:
            out.append(("Content-Type", "application/json"))
        return out
