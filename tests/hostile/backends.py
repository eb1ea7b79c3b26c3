"""The client side of the hostile-traffic suite: what a hostile backend answer costs the real process.

The backends are :class:`~tests.support.backends.RawBackend` scripts; :func:`serve_graph` runs the router on
one graph and :func:`post` sends it one request, timed.
"""

from __future__ import annotations

import http.client
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import orjson

from ..support.router import RouterProcess, running_router

ENVELOPE = "Failed to process request"


def serve_graph(workdir: Path, graph_yaml: str, *args: str,
                env: dict[str, str] | None = None) -> AbstractContextManager[RouterProcess]:
    """``graph-router serve`` on ``graph_yaml`` (written to ``workdir/graph.yaml``) for a ``with`` block."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "graph.yaml"
    path.write_text(graph_yaml)
    return running_router(str(path), "--drain-seconds", "0", "--no-access-log", *args, workdir=workdir, env=env)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    @property
    def cause(self) -> str:
        doc = orjson.loads(self.body)
        assert doc["error"] == ENVELOPE, doc
        return str(doc["cause"])


def post(rp: RouterProcess, body: bytes = b'{"instances": [1]}', *, within: float = 30.0,
         headers: dict[str, str] | None = None) -> Answer:
    """One POST to the router; raises if no answer comes within ``within`` seconds."""
    conn = http.client.HTTPConnection("127.0.0.1", rp.port, timeout=within)
    start = time.monotonic()
    try:
        conn.request("POST", "/", body=body, headers={"content-type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        data = resp.read()
        return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data, time.monotonic() - start)
    finally:
        conn.close()
