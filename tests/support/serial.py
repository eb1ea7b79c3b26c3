"""Tests marked ``serial`` run alone while the suite runs on every core (pytest-xdist).

Such a test measures wall time, CPU or fairness with bounds that another test's load on the same cores
would break. Every test holds a shared lock on a file all workers of the run see; a serial test holds it
exclusively. A second lock, the turnstile, lets a waiting serial test in before any new test starts.
A ``conftest.py`` imports both fixtures; outside xdist they do nothing.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def run_locks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int] | None]:
    """(turnstile, lock) file descriptors shared by this run's workers; None when not under xdist."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        yield None
        return
    shared = tmp_path_factory.getbasetemp().parent  # each worker's basetemp is <run's basetemp>/popen-gwN
    fds = tuple(os.open(shared / name, os.O_RDWR | os.O_CREAT, 0o600) for name in ("turnstile.lock", "run.lock"))
    yield fds[0], fds[1]
    for fd in fds:
        os.close(fd)


@pytest.fixture(autouse=True)
def alone_when_serial(request: pytest.FixtureRequest, run_locks: tuple[int, int] | None) -> Iterator[None]:
    if run_locks is None:
        yield
        return
    turnstile, lock = run_locks
    serial = request.node.get_closest_marker("serial") is not None
    fcntl.flock(turnstile, fcntl.LOCK_EX)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX if serial else fcntl.LOCK_SH)
    finally:
        if not serial:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
    try:
        yield
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        if serial:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
