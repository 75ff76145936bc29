"""Per-second request statistics in a fixed ring: what `/stats/timeseries` and guardrails read.

Each second keeps counters and a small fixed-bucket latency histogram, so memory is bounded and
one request costs a bisect and a few additions. Quantiles are the upper bound of the bucket that
holds them (an over-estimate by at most one bucket width, about 25 %).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any

from chaosproxy.clients import Retry, RetryAfterWatch
from chaosproxy.engine.events import RequestDone

# Latency bucket upper bounds in seconds: ~1.25x apart from 0.5 ms to 60 s, then +Inf.
BOUNDS: tuple[float, ...] = tuple(
    round(0.0005 * 1.25**i, 6) for i in range(int(math.log(60 / 0.0005, 1.25)) + 2)
)
_NBUCKETS = len(BOUNDS) + 1


@dataclass(frozen=True)
class Window:
    """Aggregate of several seconds: the signal guardrails compare against their bounds."""

    seconds: int
    requests: int
    errors: int
    injected: int
    p99: float | None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


class _Second:
    __slots__ = (
        "errors",
        "hist",
        "injected",
        "requests",
        "retry_after",
        "retry_early",
        "retry_waited",
        "sec",
    )

    def __init__(self) -> None:
        self.sec = -1
        self.reset(-1)

    def reset(self, sec: int) -> None:
        self.sec = sec
        self.requests = self.errors = self.injected = 0
        self.retry_after = self.retry_early = self.retry_waited = 0
        self.hist = [0] * _NBUCKETS


def is_error(status: int) -> bool:
    """5xx, or no status at all (reset / closed before a response)."""
    return status == 0 or status >= 500


class Stats:
    """A ring of `keep` seconds keyed by whole wall-clock second (the `t` of RequestDone)."""

    def __init__(self, keep: int = 900) -> None:
        self.keep = keep
        self._ring = [_Second() for _ in range(keep)]
        self._last = -1
        self.retries = RetryAfterWatch()

    def on_request(self, ev: RequestDone) -> None:
        sec = int(ev.t)
        slot = self._ring[sec % self.keep]
        if slot.sec != sec:
            if sec < slot.sec:
                return  # older than what the ring keeps
            slot.reset(sec)
        slot.requests += 1
        if is_error(ev.status):
            slot.errors += 1
        if ev.injected:
            slot.injected += 1
        slot.hist[bisect.bisect_left(BOUNDS, ev.duration)] += 1
        if ev.retry_after is not None or self.retries.until:
            if ev.retry_after is not None:
                slot.retry_after += 1
            verdict = self.retries.observe(ev)
            if verdict is Retry.EARLY:
                slot.retry_early += 1
            elif verdict is Retry.WAITED:
                slot.retry_waited += 1
        if sec > self._last:
            self._last = sec

    def _slots(self, end: int, seconds: int) -> list[tuple[int, _Second | None]]:
        seconds = max(0, min(seconds, self.keep))
        out: list[tuple[int, _Second | None]] = []
        for sec in range(end - seconds + 1, end + 1):
            slot = self._ring[sec % self.keep]
            out.append((sec, slot if slot.sec == sec else None))
        return out

    def series(self, now: float, seconds: int) -> list[dict[str, Any]]:
        """One row per complete second, oldest first, ending at the second before `now`."""
        rows = []
        for sec, slot in self._slots(int(now) - 1, seconds):
            if slot is None or not slot.requests:
                rows.append(
                    {
                        "t": sec,
                        "requests": 0,
                        "errors": 0,
                        "error_rate": 0.0,
                        "injected": 0,
                        "p50": None,
                        "p95": None,
                        "p99": None,
                        "retry_after": 0,
                        "retried_early": 0,
                        "retried_after_waiting": 0,
                    }
                )
                continue
            n = slot.requests
            rows.append(
                {
                    "t": sec,
                    "requests": n,
                    "errors": slot.errors,
                    "error_rate": round(slot.errors / n, 6),
                    "injected": slot.injected,
                    "p50": quantile(slot.hist, n, 0.50),
                    "p95": quantile(slot.hist, n, 0.95),
                    "p99": quantile(slot.hist, n, 0.99),
                    "retry_after": slot.retry_after,
                    "retried_early": slot.retry_early,
                    "retried_after_waiting": slot.retry_waited,
                }
            )
        return rows

    def window(self, now: float, seconds: int) -> Window:
        """Totals over the last `seconds` complete seconds before `now`."""
        hist = [0] * _NBUCKETS
        req = err = inj = 0
        for _, slot in self._slots(int(now) - 1, seconds):
            if slot is None:
                continue
            req += slot.requests
            err += slot.errors
            inj += slot.injected
            for i, c in enumerate(slot.hist):
                if c:
                    hist[i] += c
        return Window(seconds, req, err, inj, quantile(hist, req, 0.99) if req else None)

    def clear(self) -> None:
        for slot in self._ring:
            slot.sec = -1
        self._last = -1


def quantile(hist: list[int], n: int, q: float) -> float | None:
    """Upper bound of the bucket holding the q-quantile (capped at the largest bound, ~60 s)."""
    if n <= 0:
        return None
    rank = max(1, math.ceil(q * n))
    seen = 0
    for i, c in enumerate(hist):
        seen += c
        if seen >= rank:
            return BOUNDS[min(i, len(BOUNDS) - 1)]
    return BOUNDS[-1]
