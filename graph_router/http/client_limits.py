"""Bounds on what one backend answer may cost (the client and its connections read them)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from .budget import ByteBudget


@dataclass(frozen=True, slots=True)
class ClientLimits:
    """Bounds on what one backend answer may cost; each one passed fails the call (the router: 502)."""

    max_idle_per_host: int = 512
    #: The body (Content-Length or the bytes read).
    max_response_bytes: int = 64 * 1024 * 1024
    connect_timeout: float | None = 10.0
    #: For https backends; None = the system's trust store (``ssl.create_default_context()``).
    ssl_context: ssl.SSLContext | None = None
    #: The status line and header fields, 1xx answers included (Go's ``MaxResponseHeaderBytes``).
    max_head_bytes: int = 1024 * 1024
    #: Header fields in the head.
    max_headers: int = 1000
    #: A chunked answer's bytes that are not body: chunk extensions, framing beyond 16 bytes per
    #: chunk, and trailer fields.
    max_trailer_bytes: int = 64 * 1024
    #: Trailer fields.
    max_trailers: int = 100
    #: Charged with response body bytes while they are read; None = no process-wide budget.
    budget: ByteBudget | None = None

    def __post_init__(self) -> None:
        for name in ("max_response_bytes", "max_head_bytes", "max_headers", "max_trailer_bytes", "max_trailers"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ClientLimits.{name} must be positive, got {getattr(self, name)}")
