"""Load signals the engine reads for load-dependent rules: requests in flight and recent rate."""

from __future__ import annotations

from chaosproxy._clock import SYSTEM_CLOCK, Clock


class LoadSignals:
    """In-flight count and a per-second arrival ring; O(1) per request."""

    __slots__ = ("_clock", "_counts", "_seconds", "inflight", "window")

    def __init__(self, clock: Clock = SYSTEM_CLOCK, window: int = 5) -> None:
        self._clock = clock
        self.window = window
        self.inflight = 0
        self._counts = [0] * (window + 1)
        self._seconds = [-1] * (window + 1)

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

    def rps(self) -> float:
        """Mean arrivals per second over the last `window` whole seconds."""
        now = int(self._clock.monotonic())
        total = 0
        for sec, count in zip(self._seconds, self._counts, strict=True):
            if now - self.window <= sec < now:
                total += count
        return total / self.window
