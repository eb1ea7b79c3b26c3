"""What the server refuses and how: the refusal type, its reasons, and the bounds a hostile peer meets.

Kept apart from the connection protocol so that each limit, its status and its wording live in one
place (docs/security.md and docs/failure-modes.md list the same table).
"""

from __future__ import annotations

#: Lingering close (as nginx's ``lingering_close`` and Go's ``closeWriteAndWait``): after a refusal
#: the write side is shut and input is read and discarded for at most this long and this many bytes,
#: so the kernel does not answer the client's unread bytes with a reset that destroys our answer.
LINGER_SECONDS = 2.0
LINGER_BYTES = 8 * 1024 * 1024

#: Go's net/http allowance for the non-data bytes of a chunked body: 16 bytes per chunk plus twice
#: the chunk's data are free; beyond that, ``max_chunk_ext_bytes`` of extensions and padding.
CHUNK_FREE_BYTES = 16


class Reject(Exception):
    """Raised inside a parser callback (or queued): answer ``status`` with ``cause``, then close.

    ``reason`` is the short label for the access log and the refused-requests metric.
    """

    def __init__(self, status: int, cause: str, reason: str) -> None:
        super().__init__(cause)
        self.status = status
        self.cause = cause
        self.reason = reason


def head_too_large() -> Reject:
    return Reject(431, "request header fields too large", "header_too_large")


def trailers_too_large() -> Reject:
    return Reject(431, "request trailer fields too large", "trailer_too_large")


def chunk_overhead(limit: int) -> Reject:
    # Go's wording (net/http/internal/chunked.go), with the limit that was passed.
    return Reject(400, f"chunked encoding contains too much non-data (chunk extensions over {limit} bytes)",
                  "chunk_ext_too_large")


def body_too_large(limit: int) -> Reject:
    return Reject(413, f"request body larger than {limit} bytes", "body_too_large")


def overloaded() -> Reject:
    return Reject(503, "server overloaded: memory for request bodies is spent, retry later", "overloaded")


def bad_host(count: int) -> Reject:
    # Go's net/http wording for both cases.
    cause = "missing required Host header" if count == 0 else "too many Host headers"
    return Reject(400, cause, "bad_host")


def bad_version() -> Reject:
    return Reject(505, "unsupported protocol version", "http_version")


def origin_form(url: bytes) -> bytes:
    """The path and query of an absolute-form target (``http://host/p?q`` -> ``/p?q``), as servers must
    accept it (RFC 9112 section 3.2.2); other targets unchanged."""
    scheme, sep, rest = url.partition(b"://")
    if not sep or scheme.lower() not in (b"http", b"https"):
        return url
    slash = rest.find(b"/")
    query = rest.find(b"?")
    if slash < 0 or 0 <= query < slash:
        return b"/" + rest[query:] if query >= 0 else b"/"
    return rest[slash:]


def format_peer(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = str(peer[0])
        return f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"
    return str(peer) if peer else ""
