"""Load signals the engine reads for load-dependent rules: requests in flight and recent rate."""

from __future__ import annotations

from chaosproxy.common.clock import SYSTEM_CLOCK, Clock


class LoadSignals:
    """In-flight count and a per-second arrival ring; O(1) per request.

    A request is in flight from the moment the proxy has read its head (`started`, called by
    the listener's protocol) until it is answered or its connection is gone (`finished`; or
    `abandoned` for requests read but never handled because the client left). Requests queued
    behind another on the same connection, or behind a busy event loop, count too.
    """

    __slots__ = ("_clock", "_counts", "_seconds", "inflight", "window")

    def __init__(self, clock: Clock = SYSTEM_CLOCK, window: int = 5, keep: int = 60) -> None:
        self._clock = clock
        self.window = window
        self.inflight = 0
        size = max(window, keep) + 1
        self._counts = [0] * size
        self._seconds = [-1] * size

    def started(self) -> None:
        self.inflight += 1
        sec = int(self._clock.monotonic())
        i = sec % len(self._counts)
        if self._seconds[i] != sec:
            self._seconds[i] = sec
            self._counts[i] = 0
        self._counts[i] += 1

    def finished(self) -> None:
        self.inflight -= 1

    def abandoned(self, n: int) -> None:
        """`n` requests were read but their connection closed before any handler ran."""
        self.inflight -= n

    def rps(self, window: int | None = None) -> float:
        """Mean arrivals per second over the last `window` whole seconds (default: `window`)."""
        w = min(window or self.window, len(self._counts) - 1)
        now = int(self._clock.monotonic())
        total = 0
        for sec, count in zip(self._seconds, self._counts, strict=True):
            if now - w <= sec < now:
                total += count
        return total / w
