"""Fault matrix: a backend answers a redirect. Not followed by default (a deliberate deviation from
KServe, whose Go client follows up to 10 anywhere); ``--follow-redirects`` follows same-host ones only."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from ..support.backends import Exchange, RawBackend, RawBehaviour
from ..support.graphs import graph, sequence
from ..support.router import RouterProcess, stop_router
from .conftest import call, cause_of, start_router


def redirect(status: int, location: Callable[[Exchange], str]) -> RawBehaviour:
    async def behave(ex: Exchange) -> bool:
        body = orjson.dumps({"moved": True})
        return await ex.answer(status, body, extra=f"location: {location(ex)}\r\n")

    return behave


async def landed(ex: Exchange) -> bool:
    return await ex.answer(200, orjson.dumps({"landed": ex.path, "method": ex.method, "body": ex.body.decode()}))


Env = tuple[RouterProcess, RouterProcess, RawBackend, RawBackend]


@pytest.fixture(scope="module")
def env(module_dir: Path, raw_factory: Callable[[dict[str, RawBehaviour]], RawBackend]) -> Iterator[Env]:
    other = raw_factory({"landed": landed})
    b = raw_factory({
        "landed": landed,
        "same302": redirect(302, lambda ex: "/landed/after-302"),
        "same307": redirect(307, lambda ex: "/landed/after-307"),
        "cross": redirect(307, lambda ex: other.route("landed", "stolen")),
        "loop": redirect(302, lambda ex: "/loop/again"),
    })

    graphs = {n: graph(n, sequence(b.route(n))) for n in ("same302", "same307", "cross", "loop")}
    plain = start_router(module_dir / "plain", graphs)
    follow = start_router(module_dir / "follow", graphs, "--follow-redirects")
    yield plain, follow, b, other
    stop_router(plain)
    stop_router(follow)


@pytest.fixture
def routers(env: Env) -> Env:
    env[2].reset()
    env[3].reset()
    return env


async def test_redirects_are_returned_not_followed_by_default(routers: Env) -> None:
    plain, _, b, other = routers
    for name, status in (("same302", 302), ("same307", 307), ("cross", 307)):
        got, headers, body = await call(f"{plain.url}/graphs/{name}")
        assert (got, orjson.loads(body)) == (status, {"moved": True})
        assert "Location" not in headers  # backend headers never reach the client
    assert b.hits["landed"] == 0 and other.hits["landed"] == 0
    assert (await call(f"{plain.url}/graphs/same302"))[0] == 302  # and it keeps serving


async def test_follow_redirects_same_host_only(routers: Env) -> None:
    _, follow, _, other = routers
    status, _, body = await call(f"{follow.url}/graphs/same302", b'{"x": 1}')
    # Go's rules: a 302 turns the POST into a body-less GET
    assert (status, orjson.loads(body)) == (200, {"landed": "/landed/after-302", "method": "GET", "body": ""})
    status, _, body = await call(f"{follow.url}/graphs/same307", b'{"x": 1}')
    assert (status, orjson.loads(body)) == (200, {"landed": "/landed/after-307", "method": "POST", "body": '{"x": 1}'})
    status, _, body = await call(f"{follow.url}/graphs/cross", b'{"x": 1}')
    assert (status, orjson.loads(body)) == (307, {"moved": True})
    assert other.hits["landed"] == 0  # a redirect elsewhere is never followed


async def test_redirect_loop_stops(routers: Env) -> None:
    _, follow, b, _ = routers
    status, _, body = await call(f"{follow.url}/graphs/loop")
    assert status == 500 and cause_of(body).endswith(": stopped after 10 redirects")
    assert 10 <= b.hits["loop"] <= 11
    assert (await call(f"{follow.url}/graphs/same307"))[0] == 200


async def test_redirect_loop_matches_go(routers: Env) -> None:
    _, follow, b, _ = routers
    status, _, body = await call(f"{follow.url}/graphs/loop")
    # Go's Client.do: CheckRedirect(req, via) fails once 10 requests were sent; the url.Error has
    # Op from reqs[0].Method and URL = the Location header value (net/http/client.go).
    assert (status, cause_of(body)) == (500, 'Post "/loop/again": stopped after 10 redirects')
    assert b.hits["loop"] == 10
