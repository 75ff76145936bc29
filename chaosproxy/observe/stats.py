"""Per-second request statistics in fixed rings: what `/stats/timeseries` and guardrails read.

Each second keeps counters and a latency sketch (`sketch.py`: keys at 1 % relative error), so
memory is bounded (keys only where requests fell) and one request costs a logarithm and a few
additions. Quantiles read from it are within 1 % of the true order statistic. Rows asked with
histograms carry the sketch (`sketch`, to merge windows exactly) and the coarse buckets (`hist`,
~25 % wide, for readers that want fixed bounds).

A request is counted in the second it **started** (its end time minus its duration), so a row
holds the requests one phase of a scenario decided, however long they took. Requests carrying
`X-Chaos-Run` are also counted in a ring of their own (the last few run ids), so an experiment
can tell its traffic apart from anything else the proxy serves.

While the running scenario splits its clients into cohorts, each labelled request is also
counted in its cohort's sub-second (`cohorts: {fault, control}` of a row), with the same
counters and sketch as the row, so a run compares the two groups second by second. Per run, the
clients seen are remembered too (`blast_radius.py`, `/stats/clients`).

Faults applied to TCP proxies' connections have no request to count in: each row says how many
applied that second (`tcp_faults`, all-traffic rows only), so an experiment whose faults are on
a database or cache connection can tell they acted.
"""

from __future__ import annotations

import bisect
import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chaosproxy.common import sketch
from chaosproxy.common.cohort import CONTROL, FAULT
from chaosproxy.common.events import FaultInjected, RequestDone
from chaosproxy.faults.grpc_abort import GRPC_CODES
from chaosproxy.observe.blast_radius import ClientBook
from chaosproxy.observe.retry_after import Retry, RetryAfterWatch

# Latency bucket upper bounds in seconds: ~1.25x apart from 0.5 ms to 60 s, then +Inf.
BOUNDS: tuple[float, ...] = tuple(
    round(0.0005 * 1.25**i, 6) for i in range(int(math.log(60 / 0.0005, 1.25)) + 2)
)
TCP_METHOD = "TCP"  # a TCP connection's `method` in fault events (chaosproxy.tcp.listener)
MAX_RUNS = 8  # run ids whose traffic is kept apart (least recently seen dropped first)
# Run ids whose clients are remembered (`/stats/clients`; ~11 MB each at MAX_CLIENTS), the
# oldest first seen dropped first.
MAX_CLIENT_RUNS = 4


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
        "cohorts",
        "errors",
        "grpc",
        "injected",
        "requests",
        "retry_after",
        "retry_early",
        "retry_waited",
        "sec",
        "sk",
        "tcp_faults",
    )

    def __init__(self) -> None:
        self.sec = -1
        self.reset(-1)

    def reset(self, sec: int) -> None:
        self.sec = sec
        self.requests = self.errors = self.injected = 0
        self.retry_after = self.retry_early = self.retry_waited = 0
        self.tcp_faults = 0  # faults applied to TCP connections (no request: no other counter)
        self.sk: dict[int, int] = {}
        self.cohorts: dict[str, _Second] | None = None  # fault/control, once labelled traffic
        self.grpc: dict[int, int] | None = None  # gRPC status code -> calls, once gRPC traffic

    def add(self, ev: RequestDone, key: int, verdict: Retry | None) -> None:
        """Count the request here, and in its cohort's sub-second when it carries a label."""
        self._count(ev, key, verdict)
        cohort = ev.cohort
        if cohort:
            subs = self.cohorts
            if subs is None:
                subs = self.cohorts = {FAULT: _Second(), CONTROL: _Second()}
                for each in subs.values():
                    each.reset(self.sec)
            into = subs.get(cohort)
            if into is not None:
                into._count(ev, key, verdict)

    def _count(self, ev: RequestDone, key: int, verdict: Retry | None) -> None:
        self.requests += 1
        g = ev.grpc_status
        if g is None:
            if is_error(ev.status):
                self.errors += 1
        else:
            if g in GRPC_SERVER_ERRORS or is_error(ev.status):
                self.errors += 1
            calls = self.grpc
            if calls is None:
                calls = self.grpc = {}
            calls[g] = calls.get(g, 0) + 1
        if ev.injected:
            self.injected += 1
        sk = self.sk
        sk[key] = sk.get(key, 0) + 1
        if ev.retry_after is not None:
            self.retry_after += 1
        if verdict is not None:  # (first: compiled, naming an enum member is a lookup)
            if verdict is Retry.EARLY:
                self.retry_early += 1
            elif verdict is Retry.WAITED:
                self.retry_waited += 1

    def row(self, histograms: bool) -> dict[str, Any]:
        """This second as a `/stats/timeseries` row (its cohorts' rows inside, same shape)."""
        n = self.requests
        if not n:
            row = _empty_row(self.sec)
            row["tcp_faults"] = self.tcp_faults
            if histograms:
                row["hist"] = {}
                row["sketch"] = {}
            return row
        p50, p95, p99 = quantiles(self.sk, n)
        row = {
            "t": self.sec,
            "requests": n,
            "errors": self.errors,
            "error_rate": round(self.errors / n, 6),
            "injected": self.injected,
            "p50": p50,
            "p95": p95,
            "p99": p99,
            "retry_after": self.retry_after,
            "retried_early": self.retry_early,
            "retried_after_waiting": self.retry_waited,
            "tcp_faults": self.tcp_faults,
        }
        if histograms:
            # Sparse key -> count: enough to merge seconds into any window.
            row["sketch"] = {str(k): c for k, c in sorted(self.sk.items())}
            row["hist"] = coarse(self.sk)
        if self.grpc is not None:
            row["grpc"] = {GRPC_NAMES.get(c, str(c)): n for c, n in sorted(self.grpc.items())}
        if self.cohorts is not None:
            row["cohorts"] = {name: sub.row(histograms) for name, sub in self.cohorts.items()}
        return row


def is_error(status: int) -> bool:
    """5xx, or no status at all (reset / closed before a response)."""
    return status == 0 or status >= 500


GRPC_NAMES = {code: name for name, code in GRPC_CODES.items()}
# The gRPC statuses a server's failure ends a call with: the 5xx of gRPC (a call ending so is
# an error, whatever its HTTP status, which is 200); the others (NOT_FOUND, CANCELLED...) are
# answers, as a 4xx is.
GRPC_SERVER_ERRORS = frozenset(
    GRPC_CODES[n]
    for n in (
        "UNKNOWN",
        "DEADLINE_EXCEEDED",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
    )
)


def _empty_row(sec: int) -> dict[str, Any]:
    return {
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
        "tcp_faults": 0,
    }


class _Ring:
    """`keep` seconds keyed by whole wall-clock second; slot reuse drops what is older."""

    __slots__ = ("keep", "slots")

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.slots = [_Second() for _ in range(keep)]

    def count(self, sec: int, ev: RequestDone, key: int, verdict: Retry | None) -> None:
        slot = self._at(sec)
        if slot is not None:
            slot.add(ev, key, verdict)

    def tcp_fault(self, sec: int) -> None:
        slot = self._at(sec)
        if slot is not None:
            slot.tcp_faults += 1

    def _at(self, sec: int) -> _Second | None:
        """The slot of `sec`, reset if it held an older second (None: older than kept)."""
        slot = self.slots[sec % self.keep]
        if slot.sec != sec:
            if sec < slot.sec:
                return None
            slot.reset(sec)
        return slot

    def slot(self, sec: int) -> _Second | None:
        slot = self.slots[sec % self.keep]
        return slot if slot.sec == sec else None

    def rows(self, first: int, last: int, histograms: bool = False) -> list[dict[str, Any]]:
        """One row per second in [first, last], oldest first."""
        rows = []
        for sec in range(max(first, last - self.keep + 1), last + 1):
            slot = self.slot(sec)
            if slot is None:
                slot = _Second()
                slot.reset(sec)
            rows.append(slot.row(histograms))
        return rows

    def clear(self) -> None:
        for slot in self.slots:
            slot.sec = -1


KEEP_SECONDS = 900  # per-second rows a proxy keeps, so the most `/stats/timeseries` can answer


class Stats:
    """All traffic in one ring, plus a ring per recent experiment run id."""

    def __init__(self, keep: int = KEEP_SECONDS) -> None:
        self.keep = keep
        self._ring = _Ring(keep)
        self._runs: OrderedDict[str, _Ring] = OrderedDict()
        self._clients: OrderedDict[str, ClientBook] = OrderedDict()  # run id -> its clients
        self.retries = RetryAfterWatch()

    def on_request(self, ev: RequestDone) -> None:
        sec = int(ev.t - ev.duration)
        verdict = None
        if ev.retry_after is not None or self.retries.until:
            verdict = self.retries.observe(ev)
        k = sketch.key(ev.duration)
        self._ring.count(sec, ev, k, verdict)
        if ev.run:
            self._run_ring(ev.run).count(sec, ev, k, verdict)
            book = self._clients.get(ev.run)
            if book is None:
                book = self._clients[ev.run] = ClientBook()
                if len(self._clients) > MAX_CLIENT_RUNS:
                    self._clients.popitem(last=False)
            book.seen(ev, sec)

    def on_fault(self, ev: FaultInjected) -> None:
        """A fault applied to a TCP connection (`method` TCP), counted in the second it applied,
        in the all-traffic ring only: a connection carries no run id. It is how a run whose
        faults are all on TCP proxies knows they acted (rows' `tcp_faults`)."""
        if ev.method == TCP_METHOD:
            self._ring.tcp_fault(int(ev.t))

    def _run_ring(self, run: str) -> _Ring:
        ring = self._runs.get(run)
        if ring is None:
            if len(self._runs) >= MAX_RUNS:
                self._runs.popitem(last=False)
            ring = self._runs[run] = _Ring(self.keep)
        else:
            self._runs.move_to_end(run)
        return ring

    def clients(self, run: str) -> dict[str, Any]:
        """`/stats/clients`: each client seen in `run` (no ids), bounded (`blast_radius.py`)."""
        book = self._clients.get(run)
        return {"run": run, **(book or ClientBook()).answer()}

    def runs(self) -> list[str]:
        """Run ids with traffic of their own, oldest first."""
        return list(self._runs)

    def series(
        self, now: float, seconds: int, run: str | None = None, histograms: bool = False
    ) -> list[dict[str, Any]]:
        """One row per complete second, oldest first, ending at the second before `now`."""
        seconds = max(0, min(seconds, self.keep))
        last = int(now) - 1
        return self.range(last - seconds + 1, last, run, histograms)

    def range(
        self, first: int, last: int, run: str | None = None, histograms: bool = False
    ) -> list[dict[str, Any]]:
        """Rows for the seconds [first, last] (at most `keep` of them, the newest kept).
        With `run`, only the requests that carried that run id (all zero when it sent none)."""
        if run:
            ring = self._runs.get(run)
            if ring is None:
                rows = [_empty_row(s) for s in range(max(first, last - self.keep + 1), last + 1)]
                if histograms:
                    for row in rows:
                        row["hist"] = {}
                        row["sketch"] = {}
                return rows
            return ring.rows(first, last, histograms)
        return self._ring.rows(first, last, histograms)

    def window(self, now: float, seconds: int) -> Window:
        """Totals over the last `seconds` complete seconds before `now`."""
        merged: dict[int, int] = {}
        req = err = inj = 0
        last = int(now) - 1
        for sec in range(last - min(seconds, self.keep) + 1, last + 1):
            slot = self._ring.slot(sec)
            if slot is None:
                continue
            req += slot.requests
            err += slot.errors
            inj += slot.injected
            sketch.add(merged, slot.sk)
        return Window(seconds, req, err, inj, quantiles(merged, req)[2] if req else None)

    def clear(self) -> None:
        self._ring.clear()
        self._runs.clear()
        self._clients.clear()


def quantiles(sk: Mapping[int, int], n: int) -> tuple[float | None, float | None, float | None]:
    """p50, p95 and p99 of a sketch of n durations (within 1 %)."""
    if n <= 0:
        return None, None, None
    a, b, c = sketch.at_ranks(sk, [max(1, math.ceil(q * n)) for q in (0.50, 0.95, 0.99)])
    return a, b, c


def coarse(sk: Mapping[int, int]) -> dict[str, int]:
    """A sketch as the coarse buckets' sparse histogram (bucket index -> count)."""
    out: dict[int, int] = {}
    for k, c in sk.items():
        i = bisect.bisect_left(BOUNDS, sketch.value(k))
        out[i] = out.get(i, 0) + c
    return {str(i): c for i, c in sorted(out.items())}


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
