"""One exception tree for graph-router; each class carries its HTTP status and a short code.

The wire form of every failure is KServe's envelope
``{"error": "Failed to process request", "cause": "..."}`` (see :func:`envelope`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import orjson

ENVELOPE_ERROR = "Failed to process request"


class GraphRouterError(Exception):
    """Base of every error the router raises on purpose."""

    status: int = 500
    code: str = "internal"

    def __init__(
        self,
        cause: str,
        *,
        status: int | None = None,
        node: str | None = None,
        step: str | None = None,
    ) -> None:
        super().__init__(cause)
        self.cause = cause
        if status is not None:
            self.status = status
        self.node = node
        self.step = step

    def at(self, node: str, step: str | None) -> GraphRouterError:
        """Record where in the graph the error happened (innermost location wins)."""
        if self.node is None:
            self.node = node
            self.step = step
        return self


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem found in a graph spec: where it is and what is wrong."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SpecError(GraphRouterError):
    """A graph spec (or deployment description) is invalid; lists every problem at once."""

    status = 500
    code = "invalid_spec"

    def __init__(self, problems: Sequence[Problem] | Problem, *, source: str | None = None) -> None:
        self.problems: tuple[Problem, ...] = (
            (problems,) if isinstance(problems, Problem) else tuple(problems)
        )
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        head = f"{self.source}: " if self.source else ""
        if len(self.problems) == 1:
            return f"{head}{self.problems[0]}"
        lines = [f"{head}{len(self.problems)} problems:"]
        lines.extend(f"  - {p}" for p in self.problems)
        return "\n".join(lines)

    @classmethod
    def merge(cls, errors: Iterable[SpecError]) -> SpecError:
        errors = list(errors)
        if len(errors) == 1:
            return errors[0]
        problems: list[Problem] = []
        for err in errors:
            src = f"{err.source}: " if err.source else ""
            problems.extend(Problem(f"{src}{p.path}".rstrip(": "), p.message) for p in err.problems)
        return cls(problems)


# --- request-side errors (the client sent something we cannot run) ---------------------------


class RequestError(GraphRouterError):
    """The incoming request cannot be processed as sent (e.g. the graph needs JSON)."""

    status = 400
    code = "bad_request"


class RequestTooLarge(RequestError):
    status = 413
    code = "request_too_large"


class GraphNotFound(GraphRouterError):
    status = 404
    code = "graph_not_found"


class Unauthorized(GraphRouterError):
    status = 401
    code = "unauthorized"


class Overloaded(GraphRouterError):
    """The process's memory budget for bodies in flight is spent: retry later (503, ``Retry-After``)."""

    status = 503
    code = "overloaded"
    #: Seconds a client should wait before retrying (the ``Retry-After`` header).
    retry_after = 1


# --- graph execution errors ------------------------------------------------------------------


class NoRouteMatched(GraphRouterError):
    """A Switch found no matching step: 404 at the root, 500 when nested (as KServe)."""

    status = 404
    code = "no_route"

    def __init__(self, **kw: str | None) -> None:
        super().__init__("None of the routes matched with the switch condition", **kw)  # type: ignore[arg-type]


class StepInputError(GraphRouterError):
    """A step's input could not be built (e.g. a ``data`` selection found nothing)."""

    status = 500
    code = "step_input"


class AggregationError(GraphRouterError):
    """An Ensemble could not aggregate its steps' answers."""

    status = 500
    code = "aggregation"


class GraphTimeout(GraphRouterError):
    """The graph's overall deadline ran out."""

    status = 504
    code = "timeout"


class StepTimeout(GraphTimeout):
    """Extension: a step's own ``timeout`` ran out for one attempt."""

    code = "step_timeout"


# --- backend (transport) errors: raised by backends, translated in `transport` only -----------


class BackendError(GraphRouterError):
    """A backend call failed without a usable HTTP answer (KServe answers these with 500)."""

    status = 500
    code = "backend_error"
    #: True when the backend cannot have processed the request (nothing was sent or
    #: the connection closed before any byte of the answer), so a retry is safe.
    nothing_processed: bool = False


class BackendConnectError(BackendError):
    """The connection could not be made (refused, unreachable, DNS): nothing was sent."""

    code = "backend_connect"
    nothing_processed = True

    def __init__(self, cause: str, *, refused: bool = True, **kw: str | None) -> None:
        super().__init__(cause, **kw)  # type: ignore[arg-type]
        #: The peer refused the connection (a backend scaled to zero whose endpoint is not up
        #: yet); False for DNS failures, unreachable networks and connect timeouts.
        self.refused = refused


class BackendDisconnected(BackendError):
    """The connection broke during the exchange."""

    code = "backend_disconnected"

    def __init__(self, cause: str, *, nothing_received: bool, **kw: str | None) -> None:
        super().__init__(cause, **kw)  # type: ignore[arg-type]
        self.nothing_processed = nothing_received


class BackendTimeout(BackendError):
    """The backend did not answer within the client timeout (``routerTimeouts.serviceClient``)."""

    code = "backend_timeout"


class BackendProtocolError(BackendError):
    """The backend's answer is not valid HTTP."""

    status = 502
    code = "backend_protocol"


class GrpcMessageError(BackendError):
    """A step's input cannot become a gRPC ``ModelInferRequest`` (not v2 JSON, bad shape or datatype)."""

    status = 400
    code = "bad_message"


class BackendResponseTooLarge(BackendError):
    status = 502
    code = "backend_too_large"


def envelope(cause: str) -> bytes:
    """KServe's error body."""
    return orjson.dumps({"error": ENVELOPE_ERROR, "cause": cause})


class ListenError(Exception):
    """A server's listening socket could not be opened (port in use, no permission): one line, exit 2."""
