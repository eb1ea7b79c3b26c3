"""The server's request and response types, and its per-request limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(slots=True)
class HttpRequest:
    """One request: names lower-case, order and repeats kept, body fully read."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    http_version: str
    client: str

    def header(self, name: str) -> str | None:
        """First value of header ``name`` (lower-case), or None."""
        for k, v in self.headers:
            if k == name:
                return v
        return None


class Response(Protocol):
    """What a handler answers: an :class:`HttpResponse`, or any object with these three attributes.

    The router's app answers a graph's ``Result`` as it is, so a response is not copied once more
    on its way out of every request.
    """

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> list[tuple[str, str]]: ...

    @property
    def body(self) -> bytes: ...


@dataclass(slots=True)
class HttpResponse:
    """A whole response. The server sets ``content-length``, ``connection`` and ``date`` itself."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Per-request limits and Go-style timeouts (seconds; None = no limit)."""

    max_body_bytes: int = 10 * 1024 * 1024
    max_header_bytes: int = 64 * 1024
    max_headers: int = 200
    #: Trailer fields of a chunked body (431 above either).
    max_trailer_bytes: int = 16 * 1024
    max_trailers: int = 64
    #: Non-data bytes of a chunked body beyond Go's free allowance, and the longest chunk line (400).
    max_chunk_ext_bytes: int = 16 * 1024
    read_timeout: float | None = 60.0
    write_timeout: float | None = 60.0
    idle_timeout: float | None = 180.0
