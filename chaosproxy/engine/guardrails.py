"""Guardrails: nothing injects forever, too widely, or past a blast-radius bound by accident.

- `max_active_faults` (global and per scenario): requests beyond it get no faults; counted.
- Duration: a scenario stops by itself after its `max_duration`, never later than the global
  `--max-fault-duration` (also the default TTL of ad-hoc rules).
- `abort_if`: when the proxy-observed error rate or p99 over the last `window` seconds is above
  the bound (and the scenario has run at least that long), the scenario is stopped.
Each trip is one `StateChanged(kind="guardrail_tripped")` event: logged, counted, in `/status`.
`check()` is pure over an injected clock so tests drive it with FakeClock; the runtime calls it
from a small ticker task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chaosproxy.common.clock import SYSTEM_CLOCK, Clock
from chaosproxy.common.events import EventBus, StateChanged, StateKind
from chaosproxy.config.model import Scenario

if TYPE_CHECKING:  # only for annotations: the engine does not depend on stats
    from chaosproxy.observe.stats import Stats

log = logging.getLogger("chaosproxy.guardrails")

DEFAULT_MAX_FAULT_DURATION = 1800.0  # 30 minutes
# Fewer requests than this in an abort_if window are too few to judge an error rate or p99.
MIN_ABORT_SAMPLES = 5


@dataclass(frozen=True)
class Running:
    """The scenario the engine runs now, as guardrails need it."""

    scenario: Scenario
    started: float  # clock.monotonic() when it started


@dataclass(frozen=True)
class Trip:
    guardrail: str  # max_duration | max_fault_duration | abort_if.error_rate | abort_if.p99
    scenario: str
    t: float  # wall clock
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "guardrail": self.guardrail,
            "scenario": self.scenario,
            "t": self.t,
            "reason": self.reason,
        }


class Guardrails:
    """Holds the limits, the active-fault count and the trip history."""

    def __init__(
        self,
        *,
        bus: EventBus,
        stats: Stats,
        current: Callable[[], Running | None],
        stop: Callable[[], None],
        clock: Clock = SYSTEM_CLOCK,
        max_active_faults: int | None = None,
        max_fault_duration: float | None = DEFAULT_MAX_FAULT_DURATION,
    ) -> None:
        self.bus = bus
        self.stats = stats
        self.clock = clock
        self._current = current
        self._stop = stop
        self.global_max_active = max_active_faults
        self.max_fault_duration = max_fault_duration
        self.limit: int | None = max_active_faults  # effective, refreshed by check()
        self.active = 0
        self.skipped = 0
        self.trips: list[Trip] = []

    # ------------------------------------------------------------ per request (hot path)

    @property
    def full(self) -> bool:
        """The limit is reached: `admit` would refuse."""
        limit = self.limit
        return limit is not None and self.active >= limit

    def admit(self) -> bool:
        """Take an active-fault slot; False (and counted) when the limit is reached."""
        if self.full:
            self.skipped += 1
            return False
        self.active += 1
        return True

    def release(self) -> None:
        self.active -= 1

    # ------------------------------------------------------------ TTLs

    def rule_ttl(self, requested: float | None) -> float | None:
        """An ad-hoc rule's TTL: the requested one, capped by (and defaulting to) the global."""
        cap = self.max_fault_duration
        if requested is None:
            return cap
        return requested if cap is None else min(requested, cap)

    def scenario_limit(self, scenario: Scenario) -> float | None:
        """Seconds a scenario may inject: its max_duration, never past the global cap."""
        limits = [x for x in (scenario.max_duration, self.max_fault_duration) if x is not None]
        return min(limits) if limits else None

    # ------------------------------------------------------------ periodic check

    def check(self) -> Trip | None:
        """Refresh the effective limit; stop the running scenario if a guardrail trips.

        Called by the proxy loop's ticker and by the admin thread after a start: the bus lock
        makes one check (and its stop and event) complete before another begins."""
        with self.bus.batch():
            return self._check()

    def _check(self) -> Trip | None:
        running = self._current()
        if running is None:
            self.limit = self.global_max_active
            return None
        sc = running.scenario
        limits = [x for x in (self.global_max_active, sc.max_active_faults) if x is not None]
        self.limit = min(limits) if limits else None
        elapsed = self.clock.monotonic() - running.started
        trip = self._duration_trip(sc, elapsed) or self._abort_trip(sc, elapsed)
        if trip is not None:
            self._trip(trip)
        return trip

    def _duration_trip(self, sc: Scenario, elapsed: float) -> Trip | None:
        limit = self.scenario_limit(sc)
        if limit is None or elapsed < limit:
            return None
        which = (
            "max_duration"
            if sc.max_duration is not None and sc.max_duration <= limit
            else "max_fault_duration"
        )
        return Trip(which, sc.name, self.clock.wall(), f"ran {elapsed:.0f}s, limit {limit:g}s")

    def _abort_trip(self, sc: Scenario, elapsed: float) -> Trip | None:
        a = sc.abort_if
        if a is None or elapsed < a.window:
            return None
        seconds = max(1, round(a.window))
        w = self.stats.window(self.clock.wall(), seconds)
        if w.requests < MIN_ABORT_SAMPLES:
            return None
        if a.error_rate_above is not None and w.error_rate > a.error_rate_above:
            return Trip(
                "abort_if.error_rate",
                sc.name,
                self.clock.wall(),
                f"error rate {w.error_rate:.3f} > {a.error_rate_above:g} over {seconds}s "
                f"({w.errors}/{w.requests})",
            )
        if a.p99_above is not None and w.p99 is not None and w.p99 > a.p99_above:
            return Trip(
                "abort_if.p99",
                sc.name,
                self.clock.wall(),
                f"p99 {w.p99:.3f}s > {a.p99_above:g}s over {seconds}s",
            )
        return None

    def _trip(self, trip: Trip) -> None:
        self.trips.append(trip)
        del self.trips[:-20]
        log.warning(
            "guardrail %s tripped: scenario %s stopped (%s)",
            trip.guardrail,
            trip.scenario,
            trip.reason,
            extra={"event": StateKind.GUARDRAIL_TRIPPED},
        )
        self._stop()
        self.bus.post(
            StateChanged(
                trip.t,
                StateKind.GUARDRAIL_TRIPPED,
                scenario=trip.scenario,
                details={"guardrail": trip.guardrail, "reason": trip.reason},
            )
        )

    def status(self) -> dict[str, Any]:
        return {
            "max_active_faults": self.limit,
            "active_faults": self.active,
            "skipped_faults": self.skipped,
            "max_fault_duration": self.max_fault_duration,
            "trips": [t.as_dict() for t in self.trips],
        }

    def clear(self) -> None:
        self.skipped = 0
        self.trips.clear()
