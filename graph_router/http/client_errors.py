"""The HTTP client's errors and its response type.

Error ``detail`` strings read like the tail of Go's ``net/http`` errors, so ``transport`` can build
the causes KServe's router reports (``Post "<url>": <detail>``).
"""

from __future__ import annotations

from dataclasses import dataclass


class ClientError(Exception):
    """Base of the client's errors; ``detail`` reads like Go's (``EOF``, ``dial tcp ...``)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ConnectFailed(ClientError):
    """No connection (refused, unreachable, DNS, connect timeout): nothing was sent."""


class Disconnected(ClientError):
    """The connection broke before the response was complete."""

    def __init__(self, detail: str, *, nothing_received: bool, in_body: bool = False) -> None:
        super().__init__(detail)
        #: No byte of a response arrived: the backend may not have processed the request.
        self.nothing_received = nothing_received
        #: The headers had arrived; the body was cut (Go reports this without the URL prefix).
        self.in_body = in_body


class ReadTimeout(ClientError):
    """The timeout (connect + send + whole response) passed."""

    def __init__(self, *, headers_received: bool) -> None:
        super().__init__("timeout reading body" if headers_received else "timeout awaiting headers")
        self.headers_received = headers_received


class ProtocolViolation(ClientError):
    """The backend's answer is not valid HTTP/1.x."""


class ResponseTooLarge(ClientError):
    """The response body is larger than ``ClientLimits.max_response_bytes``."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"response body larger than {limit} bytes")
        self.limit = limit


class ResponseLimitExceeded(ProtocolViolation):
    """The response's head, trailers or chunk framing passed one of ``ClientLimits``' bounds."""


class BudgetExhausted(ClientError):
    """The process-wide byte budget (``ClientLimits.budget``) cannot hold this response body."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the router's memory budget for bodies in flight ({limit} bytes) is spent; "
                         "response body refused")
        self.limit = limit


@dataclass(slots=True)
class ClientResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """First value of header ``name`` (lower-case), or None."""
        for k, v in self.headers:
            if k == name:
                return v
        return None
