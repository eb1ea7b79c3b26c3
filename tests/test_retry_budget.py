"""The retry budget (``max_elapsed``) counts from the first attempt and stops retrying when spent."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from graph_router.backend import SAFE_RETRY, BackendRequest, BackendResponse, call_with_retries
from graph_router.errors import BackendConnectError


class Refusing:
    target = "http://model/v1/models/m:predict"

    def __init__(self, answer_after: int | None = None) -> None:
        self.calls = 0
        self.answer_after = answer_after

    async def call(self, request: BackendRequest) -> BackendResponse:
        self.calls += 1
        if self.answer_after is not None and self.calls > self.answer_after:
            return BackendResponse(200, b"{}")
        raise BackendConnectError('Post "x": dial tcp: connect: connection refused', refused=True)

    async def aclose(self) -> None:
        return None


async def test_a_refused_backend_is_retried_until_the_budget_is_spent() -> None:
    policy = dataclasses.replace(SAFE_RETRY, initial_delay_ms=20, max_delay_ms=40, max_elapsed=0.4)
    backend = Refusing()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(BackendConnectError):
        await call_with_retries(backend, BackendRequest(b"{}", []), policy, deadline=None)
    took = loop.time() - t0
    assert 0.3 < took < 2.0  # the budget, not the 1000 retries, ended it (no pause crosses it)
    assert 5 <= backend.calls <= 60


async def test_the_request_deadline_ends_retries_before_the_budget() -> None:
    policy = dataclasses.replace(SAFE_RETRY, initial_delay_ms=20, max_delay_ms=40, max_elapsed=30.0)
    backend = Refusing()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(BackendConnectError):
        await call_with_retries(backend, BackendRequest(b"{}", []), policy, deadline=t0 + 0.3)
    assert loop.time() - t0 < 1.5


async def test_a_backend_that_comes_up_within_the_budget_answers() -> None:
    policy = dataclasses.replace(SAFE_RETRY, initial_delay_ms=10, max_delay_ms=20, max_elapsed=5.0)
    backend = Refusing(answer_after=3)
    resp, retries = await call_with_retries(backend, BackendRequest(b"{}", []), policy, deadline=None)
    assert (resp.status, retries, backend.calls) == (200, 3, 4)
