"""Who a run touched: per client seen in one experiment run, its cohort, the seconds of its first
and last request, and the seconds in which it got an injected fault (`/stats/clients`).

The blast radius of a run is a count of clients, not of requests: one user hit on every request
of a checkout is one hurt user. Clients are told apart by the proxy's client identity
(`RequestDone.client`: --client-id-header's value, else the address); the book keeps only a
hash of it, and the answer carries no identity at all (nothing the verdict needs).

Bounded: at most MAX_CLIENTS clients per run (then `truncated`), MAX_HURT seconds per client
(then that client's `hurt_truncated`). Seconds are whole Unix seconds in which the request
started, as `/stats/timeseries` counts them.
"""

from __future__ import annotations

from typing import Any

from chaosproxy.common.events import RequestDone

MAX_CLIENTS = 50_000  # clients remembered per run
MAX_HURT = 100  # seconds with an injected fault remembered per client


class _Client:
    __slots__ = ("cohort", "first", "hurt", "hurt_truncated", "last")

    def __init__(self, cohort: str, sec: int) -> None:
        self.cohort = cohort
        self.first = self.last = sec
        self.hurt: list[int] | None = None
        self.hurt_truncated = False

    def answer(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "cohort": self.cohort,
            "first": self.first,
            "last": self.last,
            "hurt": sorted(set(self.hurt or ())),
        }
        if self.hurt_truncated:
            out["hurt_truncated"] = True
        return out


class ClientBook:
    """The clients of one run (the proxy loop writes, the admin thread reads a snapshot)."""

    __slots__ = ("_by", "truncated")

    def __init__(self) -> None:
        self._by: dict[int, _Client] = {}  # hash of the client identity -> its record
        self.truncated = False

    def seen(self, ev: RequestDone, sec: int) -> None:
        by = self._by
        key = hash(ev.client)
        c = by.get(key)
        if c is None:
            if len(by) >= MAX_CLIENTS:
                self.truncated = True
                return
            c = by[key] = _Client(ev.cohort, sec)
        else:
            if sec > c.last:
                c.last = sec
            elif sec < c.first:
                c.first = sec
            if not c.cohort:  # first seen before the run's scenario labelled its traffic
                c.cohort = ev.cohort
        if ev.injected:
            hurt = c.hurt
            if hurt is None:
                c.hurt = [sec]
            elif sec not in hurt[-4:]:  # requests end out of order: a few seconds back
                if len(hurt) >= MAX_HURT:
                    c.hurt_truncated = True
                else:
                    hurt.append(sec)

    def answer(self) -> dict[str, Any]:
        clients = [c.answer() for c in list(self._by.values())]
        clients.sort(key=lambda c: (c["first"], c["last"]))
        return {"clients": clients, "count": len(clients), "truncated": self.truncated}
