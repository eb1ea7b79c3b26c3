"""TCP ports on 127.0.0.1: free ones for servers a test starts, refused ones for backends that are down."""

from __future__ import annotations

import atexit
import socket

#: Sockets bound by :func:`refused_port`, by port: bound, never listening.
_held: dict[int, socket.socket] = {}


def free_port() -> int:
    """A port for a server the test starts at once (bound once, then closed: any process may take it
    next, so a down backend gets :func:`refused_port` instead)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def free_port_pair() -> int:
    """A port ``p`` with ``p`` and ``p + 1`` both free (the model host's HTTP and gRPC ports)."""
    for _ in range(50):
        with socket.socket() as a, socket.socket() as b:
            a.bind(("127.0.0.1", 0))
            p: int = a.getsockname()[1]
            try:
                b.bind(("127.0.0.1", p + 1))
            except OSError:
                continue
            return p
    raise AssertionError("no two adjacent free ports")


def refused_port() -> int:
    """A port where a connection is refused for as long as this test process runs, or until :func:`release`.

    A closed port (:func:`free_port`) is not enough for a backend that is down: while a router retries
    it for seconds, another test process may bind it for its own backend and receive the requests. This
    port is held by a socket that is bound and never listens: connecting gets a reset (ECONNREFUSED),
    and no other socket can bind it.
    """
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    _held[port] = s
    return port


def release(port: int) -> None:
    """Free a :func:`refused_port` for a server the test starts on it (a backend that comes up late)."""
    _held.pop(port).close()


@atexit.register
def _close_held() -> None:
    for s in _held.values():
        s.close()
    _held.clear()
