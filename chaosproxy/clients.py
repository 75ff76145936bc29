"""Per-client memory of `Retry-After`: did a client wait as long as it was asked to?

When a response tells a client to come back in N seconds (429, 503 with `Retry-After`), the
client's next request shows whether it obeyed: arriving before the time is an early retry, a
retry storm in the making. A client is its `--client-id-header` value when one is configured
(load generators share one address), else its address.
"""

from __future__ import annotations

from enum import Enum

from chaosproxy.events import RequestDone


class Retry(Enum):
    EARLY = "early"  # came back before Retry-After allowed
    WAITED = "waited"  # came back after waiting as asked


class RetryAfterWatch:
    """Remembers, per client, until when it was asked to wait; bounded by `limit` clients."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self.until: dict[str, float] = {}  # client -> when it may come back (wall clock)

    def observe(self, ev: RequestDone) -> Retry | None:
        """Classify `ev` against the client's last Retry-After, then remember its own."""
        until = self.until
        verdict: Retry | None = None
        if until:
            deadline = until.pop(ev.client, None)
            if deadline is not None:
                arrived = ev.t - ev.duration
                verdict = Retry.EARLY if arrived < deadline else Retry.WAITED
        if ev.retry_after is not None:
            if len(until) >= self.limit:
                self._forget(ev.t)
            until[ev.client] = ev.t + ev.retry_after
        return verdict

    def _forget(self, now: float) -> None:
        """Drop clients whose wait is long over; if that is not enough, the oldest half."""
        stale = [c for c, t in self.until.items() if t < now - 60]
        for c in stale:
            del self.until[c]
        if len(self.until) >= self.limit:
            for c in list(self.until)[: len(self.until) // 2]:
                del self.until[c]

    def __len__(self) -> int:
        return len(self.until)
