"""The worker's heap for request and response bodies: glibc's thresholds, and the trim when idle.

With glibc's defaults a body of a few hundred KiB or more is its own ``mmap`` (or a heap top that is
trimmed when freed), so every large request pays its pages' first touch again: about 680 page faults
per 1 MB request, about a third of the CPU of a 1 MB Sequence or Ensemble (docs/benchmark-results.md).
:func:`tune_malloc` keeps body-sized allocations in the heap and that much free heap for the next
bodies; :func:`trim_when_idle` hands it back once a worker has held no body for a whole interval.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from .http.budget import ByteBudget

#: glibc ``mallopt`` parameters, and its largest ``M_MMAP_THRESHOLD`` on 64-bit systems.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024
#: The most free heap kept for reuse, whatever the byte budget.
_KEEP_MAX = 64 * 1024 * 1024
#: Set by an operator, these are theirs to decide: tune_malloc leaves glibc alone.
_MALLOC_ENV = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")
#: How often a worker looks whether its bodies are all gone (and the heap they used can be trimmed).
TRIM_CHECK_SECONDS = 1.0

#: glibc's ``malloc_trim`` once tune_malloc has set the thresholds (forked workers inherit it), else None.
_malloc_trim: Callable[[int], int] | None = None


def tune_malloc(keep_bytes: int, env: Mapping[str, str]) -> tuple[int, int] | None:
    """Keep freed body buffers for the next request instead of handing them back to the kernel at once.

    Allocations below ``min(keep_bytes, 32 MiB)`` come from the heap, and up to ``keep_bytes`` (the
    worker's byte budget; at most 64 MiB) of free heap is kept. Returns (mmap threshold, trim
    threshold), or None where this is not glibc or ``env`` sets glibc's own ``MALLOC_*_`` variables (or
    ``GLIBC_TUNABLES`` for malloc). Called before forking workers, which inherit it.
    """
    if any(name in env for name in _MALLOC_ENV) or "glibc.malloc" in env.get("GLIBC_TUNABLES", ""):
        return None
    global _malloc_trim
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
    except (ImportError, OSError, AttributeError):  # not glibc (macOS): nothing to tune
        return None
    keep = min(keep_bytes, _KEEP_MAX)
    mmap_threshold = min(keep, _MMAP_THRESHOLD_MAX)
    if not (mallopt(_M_MMAP_THRESHOLD, mmap_threshold) and mallopt(_M_TRIM_THRESHOLD, keep)):
        return None  # musl's mallopt does nothing and says so
    _malloc_trim = malloc_trim
    return mmap_threshold, keep


def trim_when_idle(budget: ByteBudget) -> asyncio.Task[None] | None:
    """Where :func:`tune_malloc` tuned glibc, a task (on the running loop) that gives the kept heap back
    once a whole :data:`TRIM_CHECK_SECONDS` passed without a body byte charged to ``budget``: RSS returns
    to idle one or two seconds after the last body, while steady traffic (even one request a second)
    keeps reusing it. None elsewhere."""
    if _malloc_trim is None:
        return None
    return asyncio.create_task(_trim_loop(budget, _malloc_trim))


async def _trim_loop(budget: ByteBudget, malloc_trim: Callable[[int], int]) -> None:
    seen = trimmed_at = budget.taken
    while True:
        await asyncio.sleep(TRIM_CHECK_SECONDS)
        taken = budget.taken
        if taken == seen and budget.used == 0 and taken != trimmed_at:
            trimmed_at = taken
            malloc_trim(0)
        seen = taken
