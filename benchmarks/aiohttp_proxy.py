#!/usr/bin/env python3
"""The 1-hop graph served by aiohttp's server and client: what a reader would write first.

    python benchmarks/aiohttp_proxy.py --port 8099 --backend http://127.0.0.1:9001/v1/models/a:predict

Each POST's body goes to the backend through one pooled ``ClientSession``; its status and body
come back, with ``Content-Type: application/json`` when the body is JSON (as KServe's router and
graph-router do). ``GET /readyz`` answers 200. Runs on uvloop when it is installed, as graph-router does.
It exists to measure the cost of our own HTTP layer against the libraries, in ``run.py``'s aiohttp row.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Sequence

import orjson
from aiohttp import ClientSession, TCPConnector, web

BACKEND = web.AppKey("backend", str)
SESSION = web.AppKey("session", ClientSession)


def is_json(body: bytes) -> bool:
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return True


async def readyz(request: web.Request) -> web.Response:
    return web.Response(status=200)


async def proxy(request: web.Request) -> web.Response:
    body = await request.read()
    headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
    async with request.app[SESSION].post(request.app[BACKEND], data=body, headers=headers) as resp:
        answer = await resp.read()
        status = resp.status
    out = web.Response(status=status, body=answer)
    if is_json(answer):
        out.content_type = "application/json"
    return out


async def _session(app: web.Application) -> AsyncIterator[None]:
    # As graph-router's pool: keep-alive, up to 512 idle connections per host.
    app[SESSION] = ClientSession(connector=TCPConnector(limit=0, limit_per_host=512))
    yield
    await app[SESSION].close()


def make_app(backend: str) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[BACKEND] = backend
    app.cleanup_ctx.append(_session)
    app.router.add_get("/readyz", readyz)
    app.router.add_route("*", "/{tail:.*}", proxy)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--backend", required=True, help="the model URL every request is POSTed to")
    args = p.parse_args(argv)
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    web.run_app(make_app(args.backend), host=args.host, port=args.port, access_log=None, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
