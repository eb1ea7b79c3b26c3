"""Helpers for testing your own graphs in-process: scripted fake models and a one-call runner.

    classifier = FakeModel({"predictions": [1]})
    result = await run_graph("graph.yaml", {"instances": [[1, 2]]}, services={"classifier": classifier})
    assert result.status == 200 and classifier.received == [{"instances": [[1, 2]]}]
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .api import GraphRouter
from .backend import BackendResponse
from .compiler import ServiceTarget
from .engine import Result
from .errors import BackendConnectError, BackendDisconnected

__all__ = ["FakeModel", "refused", "reset", "run_graph"]


class FakeModel:
    """An in-process model: answers from a script and records what it received.

    Each answer may be a JSON-able value (status 200), ``bytes``, a ``(status, value)`` pair, a
    :class:`BackendResponse`, or an exception to raise (e.g. :func:`refused`). The last answer
    repeats. ``delay`` seconds are awaited before answering.
    """

    def __init__(self, *answers: Any, delay: float = 0.0) -> None:
        self.answers: list[Any] = list(answers) or [{"predictions": []}]
        self.received: list[Any] = []
        self.headers: list[dict[str, str]] = []
        self.delay = delay

    async def __call__(self, body: Any, headers: Mapping[str, str]) -> Any:
        self.received.append(body)
        self.headers.append(dict(headers))
        if self.delay:
            await asyncio.sleep(self.delay)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    @property
    def calls(self) -> int:
        return len(self.received)


def refused(url: str = "http://model/v1/models/m:predict") -> BackendConnectError:
    """What a backend that refuses connections raises (a cold start); retried by default."""
    return BackendConnectError(f'Post "{url}": dial tcp: connect: connection refused')


def reset(url: str = "http://model/v1/models/m:predict") -> BackendDisconnected:
    """A connection reset after the request was sent (not retried by default)."""
    return BackendDisconnected(f'Post "{url}": read: connection reset by peer', nothing_received=False)


async def run_graph(
    graph: str | Path | Mapping[str, Any],
    body: Any,
    *,
    services: Mapping[str, ServiceTarget],
    headers: Mapping[str, str] | None = None,
    **router_kw: Any,
) -> Result:
    """Load ``graph`` (a file path, or a spec mapping), run it once on ``body``, close everything."""
    router = (GraphRouter.from_spec(graph, services=services, **router_kw) if isinstance(graph, Mapping)
              else GraphRouter.from_file(graph, services=services, **router_kw))
    async with router:
        return await router.infer(body, headers=headers)


# BackendResponse is re-exported for answers with a status and raw bytes.
__all__ += ["BackendResponse"]
