"""The fault journal: one JSON line per injected fault, the evidence of what was injected.

Fed by `FaultInjected` events; `StateChanged(scenario_started)` sets the time origin, so `t` is
seconds since the scenario started (since the journal opened when no scenario runs). Each line
is flushed as written so the file can be tailed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO

from chaosproxy._clock import SYSTEM_CLOCK, Clock
from chaosproxy.engine.events import EventBus, FaultInjected, StateChanged


class Journal:
    """Appends to `path`; `attach` subscribes it to a bus, `close` detaches and closes."""

    def __init__(self, path: str | Path, clock: Clock = SYSTEM_CLOCK) -> None:
        self.path = Path(path)
        self._file: IO[str] | None = self.path.open("a", encoding="utf-8")
        self._origin = clock.wall()
        self._bus: EventBus | None = None

    def attach(self, bus: EventBus) -> None:
        self._bus = bus
        bus.subscribe(FaultInjected, self.on_fault)
        bus.subscribe(StateChanged, self.on_state)

    def on_state(self, ev: StateChanged) -> None:
        if ev.kind == "scenario_started":
            self._origin = ev.t

    def on_fault(self, ev: FaultInjected) -> None:
        f = self._file
        if f is None:
            return
        line = {
            "t": round(ev.t - self._origin, 6),
            "request_id": ev.request_id,
            "method": ev.method,
            "path": ev.path,
            "scenario": ev.scenario,
            "phase": ev.phase,
            "rule": ev.rule,
            "fault": ev.fault,
            "outcome": ev.outcome,
        }
        f.write(json.dumps(line, ensure_ascii=False) + "\n")
        f.flush()

    def close(self) -> None:
        if self._bus is not None:
            self._bus.unsubscribe(self.on_fault)
            self._bus.unsubscribe(self.on_state)
            self._bus = None
        if self._file is not None:
            self._file.close()
            self._file = None
