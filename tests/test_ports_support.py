"""tests/support/ports.py: a down backend's port refuses connections and cannot be taken by another socket."""

from __future__ import annotations

import errno
import socket

import pytest

from .support.ports import refused_port, release


def test_a_refused_port_refuses_and_stays_reserved_until_released() -> None:
    port = refused_port()
    with socket.socket() as c, pytest.raises(ConnectionRefusedError):
        c.connect(("127.0.0.1", port))
    with socket.socket() as other:  # what another test process binding its backend would meet
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with pytest.raises(OSError) as info:
            other.bind(("127.0.0.1", port))
        assert info.value.errno == errno.EADDRINUSE
    release(port)
    with socket.socket() as late:  # a backend that comes up late on it
        late.bind(("127.0.0.1", port))
        late.listen()
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
