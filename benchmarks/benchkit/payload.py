"""The payload rows: JSON bodies of a fixed size in and out, and the nginx backends that answer them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .nginx import _common, _read, render

#: Body sizes of the payload rows: name -> bytes (the request and every backend answer).
SIZES: dict[str, int] = {"1KB": 1024, "100KB": 100 * 1024, "1MB": 1024 * 1024, "8MB": 8 * 1024 * 1024}
#: Connections of every payload load (the issue's figures were taken at 8).
CONNECTIONS = 8


def json_body(size: int, key: str) -> bytes:
    """``{"<key>":[0.123456,...]}`` of exactly ``size`` bytes: a tensor-like body, valid JSON."""
    head, tail = b'{"' + key.encode() + b'":[', b"]}"
    room = size - len(head) - len(tail)
    if room < 1:
        raise ValueError(f"a {key} body needs more than {size} bytes")
    values: list[bytes] = []
    used, i = 0, 0
    while True:
        value = b"0.%06d" % (i * 7919 % 1000000)
        if used + len(value) + (1 if values else 0) > room:
            break
        values.append(value)
        used += len(value) + (1 if len(values) > 1 else 0)
        i += 1
    body = head + b",".join(values)
    pad = size - len(body) - len(tail)
    # JSON whitespace makes up the rest: the size is exact and the body still valid.
    return body + b" " * pad + tail


def request_body(size: int) -> bytes:
    return json_body(size, "instances")


def response_body(size: int) -> bytes:
    return json_body(size, "predictions")


def backend_config(workdir: Path, root: Path, servers: Sequence[tuple[int, str]]) -> str:
    """One nginx answering each ``(port, file)`` with that file from ``root`` to any POST."""
    parts = "".join(
        render(_read("payload-server.conf.tmpl"), {"port": port, "root": root, "file": name})
        for port, name in servers
    )
    return render(_read("payload.conf.tmpl"), {"common": _common(workdir), "dir": workdir, "servers": parts})

