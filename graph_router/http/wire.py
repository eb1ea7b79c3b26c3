"""Bytes on the wire shared by the server and the client: status lines, the Date cache, header blocks."""

from __future__ import annotations

import http
import time
from email.utils import formatdate


def _status_line(status: int) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return f"HTTP/1.1 {status} {phrase}\r\n".encode("latin-1")


STATUS_LINES: dict[int, bytes] = {code: _status_line(code) for code in range(100, 600)}

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class DateCache:
    """The ``date:`` header line, formatted at most once per second."""

    __slots__ = ("_line", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._line = ""

    def line(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._line = f"date: {formatdate(now, usegmt=True)}\r\n"
        return self._line


class HeaderInjection(ValueError):
    """A header name or value holds CR or LF (would split the message)."""


def header_block(headers: list[tuple[str, str]], skip: frozenset[str]) -> str:
    """``name: value\\r\\n`` lines for ``headers``, dropping names in ``skip`` (lower-case).

    Raises :class:`HeaderInjection` when a name or value holds CR/LF: counting line breaks in the
    joined block is one C-level pass instead of a check per header.
    """
    lines = [f"{k}: {v}\r\n" for k, v in headers if k.lower() not in skip]
    block = "".join(lines)
    n = len(lines)
    if block.count("\n") != n or block.count("\r") != n:
        raise HeaderInjection("header name or value contains CR or LF")
    return block
