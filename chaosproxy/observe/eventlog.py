"""A bounded ring of state changes with a cursor: what `GET /events?since=N` serves.

Scenario started/stopped/finished, phase changes, rules added or removed, guardrail trips and
reloads, each with its wall-clock time and a sequence number, so a client that polls with the
last number it saw never misses or repeats one (and learns when the ring overflowed). The phase
history also answers "which phase was in force at time t" for the per-second statistics.
"""

from __future__ import annotations

import bisect
import json
import threading
from collections import deque
from typing import Any

from chaosproxy.common.events import StateChanged, StateKind
from chaosproxy.common.logs import redact

_ENDS = frozenset({StateKind.SCENARIO_STOPPED, StateKind.SCENARIO_FINISHED})


class EventLog:
    """The last `keep` state changes, numbered from 1."""

    def __init__(self, keep: int = 1024) -> None:
        self.keep = keep
        self._events: deque[dict[str, Any]] = deque(maxlen=keep)
        self._seq = 0
        # Phase history: parallel lists of (time, scenario, phase); "" when none runs.
        self._times: list[float] = []
        self._phases: list[tuple[str, str]] = []
        # Written by the proxy loop's listeners, read by the admin thread.
        self._lock = threading.Lock()

    def on_state(self, ev: StateChanged) -> None:
        with self._lock:
            self._record(ev)

    def _record(self, ev: StateChanged) -> None:
        self._seq += 1
        self._events.append(
            {
                "seq": self._seq,
                "t": ev.t,
                "kind": ev.kind,
                "scenario": ev.scenario,
                "phase": ev.phase,
                "details": _plain(ev.details),
            }
        )
        if ev.kind in (StateKind.SCENARIO_STARTED, StateKind.PHASE_CHANGED):
            self._mark(ev.t, ev.scenario, ev.phase)
        elif ev.kind in _ENDS:
            self._mark(ev.t, "", "")

    def _mark(self, t: float, scenario: str, phase: str) -> None:
        i = bisect.bisect_right(self._times, t)
        self._times.insert(i, t)
        self._phases.insert(i, (scenario, phase))
        if len(self._times) > self.keep:
            del self._times[0]
            del self._phases[0]

    @property
    def last_seq(self) -> int:
        return self._seq

    def since(self, seq: int, limit: int = 500) -> tuple[list[dict[str, Any]], bool]:
        """Events numbered above `seq` (oldest first, at most `limit`), and whether some that
        the caller has not seen were already dropped from the ring."""
        with self._lock:
            events = [e for e in self._events if e["seq"] > seq][:limit]
            oldest = self._events[0]["seq"] if self._events else self._seq + 1
        return events, seq + 1 < oldest

    def phase_at(self, t: float) -> tuple[str, str]:
        """(scenario, phase) in force at wall-clock time `t`; ("", "") when none ran."""
        with self._lock:
            i = bisect.bisect_right(self._times, t)
            return self._phases[i - 1] if i else ("", "")


def _plain(details: dict[str, Any]) -> dict[str, Any]:
    """Details as JSON-ready values (anything unusual becomes its text), with the userinfo of
    any URL in them redacted (`/events` may be read by whoever holds the token)."""
    plain: dict[str, Any] = json.loads(redact(json.dumps(details, default=str)))
    return plain
