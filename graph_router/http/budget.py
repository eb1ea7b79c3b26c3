"""The process-wide budget for body bytes held in memory, shared by the server and the client.

Request bodies being read and backend response bodies being read are charged here; when the budget
is spent, new work is refused (the server answers 503 with ``Retry-After``) instead of the process
growing, as Envoy's overload manager does. One event loop owns it, so no lock is needed.
"""

from __future__ import annotations


class ByteBudget:
    """Bytes in flight across every connection; ``limit`` None means no limit."""

    __slots__ = ("limit", "peak", "refused", "taken", "used")

    def __init__(self, limit: int | None) -> None:
        if limit is not None and limit <= 0:
            raise ValueError(f"byte budget must be positive, got {limit}")
        self.limit = limit
        self.used = 0
        self.peak = 0
        #: Bytes ever charged (the process trims its free heap once this moved and ``used`` is 0).
        self.taken = 0
        #: How many times ``take`` said no (for metrics and tests).
        self.refused = 0

    def take(self, n: int) -> bool:
        """Charge ``n`` bytes; False (and nothing charged) when that would pass the limit."""
        used = self.used + n
        if self.limit is not None and used > self.limit:
            self.refused += 1
            return False
        self.used = used
        self.taken += n
        if used > self.peak:
            self.peak = used
        return True

    def give_back(self, n: int) -> None:
        """Return ``n`` bytes charged earlier by ``take``."""
        self.used -= n
        if self.used < 0:  # a bookkeeping bug must not turn into a permanent refusal
            self.used = 0

    @property
    def available(self) -> int | None:
        """Bytes that may still be taken, or None without a limit."""
        return None if self.limit is None else self.limit - self.used
