"""Per-client memory of `Retry-After`: did a client wait as long as it was asked to?

When a response tells a client to come back in N seconds (429, 503 with `Retry-After`), the
client's next request shows whether it obeyed: arriving before the time is an early retry, a
retry storm in the making. A client is its `--client-id-header` value when one is configured
(load generators share one address), else its address.

Bounded whatever clients send: an id longer than MAX_ID characters is kept as a fixed-size hash
of itself (still one client per distinct id), and at most `limit` clients are remembered.
"""

from __future__ import annotations

import hashlib
from enum import Enum

from chaosproxy.common.events import RequestDone


class Retry(Enum):
    EARLY = "early"  # came back before Retry-After allowed
    WAITED = "waited"  # came back after waiting as asked


MAX_ID = 64  # characters of a client id kept as they are
# Clients remembered at once: ~150 bytes each with ids of at most MAX_ID characters, so a few
# MiB at most (8 KB ids times 16 000 clients used to cost 129 MiB).
MAX_CLIENTS = 20_000


def client_key(client: str) -> str:
    """The client id as remembered: itself when short, else `#` and a 128-bit hash of it."""
    if len(client) <= MAX_ID:
        return client
    digest = hashlib.blake2b(client.encode("utf-8", "surrogatepass"), digest_size=16)
    return "#" + digest.hexdigest()


class RetryAfterWatch:
    """Remembers, per client, until when it was asked to wait; bounded by `limit` clients."""

    def __init__(self, limit: int = MAX_CLIENTS) -> None:
        self.limit = limit
        self.until: dict[str, float] = {}  # client -> when it may come back (wall clock)

    def observe(self, ev: RequestDone) -> Retry | None:
        """Classify `ev` against the client's last Retry-After, then remember its own."""
        until = self.until
        verdict: Retry | None = None
        client = ev.client
        if len(client) > MAX_ID:
            client = client_key(client)
        if until:
            deadline = until.pop(client, None)
            if deadline is not None:
                arrived = ev.t - ev.duration
                verdict = Retry.EARLY if arrived < deadline else Retry.WAITED
        if ev.retry_after is not None:
            if len(until) >= self.limit:
                self._forget(ev.t)
            until[client] = ev.t + ev.retry_after
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
