"""The timeline of one running scenario: where it stands, and the phases it enters as time
passes. Reading a position never moves it; only the engine's `tick()` does (and emits)."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator
from dataclasses import dataclass

from chaosproxy.engine.compile import CompiledPhase, CompiledScenario
from chaosproxy.engine.matching import CohortGate
from chaosproxy.engine.rule_match import Counter, seed_key
from chaosproxy.engine.unmatched import Unmatched


class FromScenario(enum.Enum):
    """`repeat=FROM_SCENARIO`: keep the scenario file's own repeat count."""

    FROM_SCENARIO = "from the scenario"


FROM_SCENARIO = FromScenario.FROM_SCENARIO
Repeat = int | None | FromScenario  # None: forever


@dataclass(frozen=True, slots=True)
class Position:
    """A phase of one cycle, and its monotonic start and end."""

    cycle: int
    phase: CompiledPhase
    start: float
    end: float

    @property
    def window(self) -> tuple[int, int]:
        """Identifies this phase entry: rule counters of the phase restart once per window."""
        return (self.cycle, self.phase.index)


class ScenarioRun:
    """One running scenario: its compiled form, timeline position, rule counters and the watch
    for rules that match nothing."""

    def __init__(self, compiled: CompiledScenario, seed: int | None, start: float, wall: float):
        self.compiled = compiled
        self.seed = seed
        self.start = start  # monotonic
        self.start_wall = wall
        self.repeat = compiled.repeat
        self.repeat_overridden = False  # repeat given at start rather than by the file
        first = compiled.phases[0]
        self.at = Position(0, first, start, start + first.duration)
        self.counters = [Counter() for _ in compiled.rules]
        self.unmatched = Unmatched(self.counters, start, wall)  # rules that match no request
        # The scenario's cohort spec bound to this run's seed (the engine sets it: it knows the
        # proxy's client identity); None when the scenario has no cohort.
        self.gate: CohortGate | None = None
        if seed is not None:
            for r in compiled.rules:
                if r.scope == "*":
                    self.counters[r.slot].base = seed_key(seed, compiled.name, "*", r.id, 0)

    @property
    def phase(self) -> CompiledPhase:
        return self.at.phase

    def seek(self, now: float) -> None:
        """Position the timeline at `now` without events (used after a hot reload). The last
        cycle is the furthest it goes: the caller's tick finishes the run."""
        c = self.compiled
        elapsed = max(0.0, now - self.start)
        cycle = int(elapsed // c.cycle_duration) if c.cycle_duration > 0 else 0
        if self.repeat is not None and cycle >= self.repeat:
            cycle = self.repeat - 1
        offset = elapsed - cycle * c.cycle_duration
        phase = c.phases[-1]
        for p in c.phases:
            if offset < p.end:
                phase = p
                break
        start = self.start + cycle * c.cycle_duration + phase.start
        self.at = Position(cycle, phase, start, start + phase.duration)

    def steps(self, now: float) -> Iterator[Position | None]:
        """Each phase entered after the current position up to `now`, in order; None last when
        the run ends by then (at the end of the last position yielded, or of `at`)."""
        pos = self.at
        phases = self.compiled.phases
        while now >= pos.end:
            idx = pos.phase.index + 1
            cycle = pos.cycle
            if idx == len(phases):
                idx, cycle = 0, cycle + 1
                if self.repeat is not None and cycle >= self.repeat:
                    yield None
                    return
            phase = phases[idx]
            pos = Position(cycle, phase, pos.end, pos.end + phase.duration)
            yield pos

    def where(self, now: float) -> tuple[Position, bool]:
        """The phase in force at `now` and False, or the last phase and True when the run is
        over by then (it ended at that phase's end). Moves nothing."""
        pos = self.at
        if now < pos.end:
            return pos, False
        for step in self.steps(now):
            if step is None:
                return pos, True
            pos = step
        return pos, False


@dataclass
class Pending:
    """A scenario scheduled to start at a wall-clock instant (fleet-aligned starts)."""

    compiled: CompiledScenario
    at: float  # wall clock
    seed: int | None
    repeat: Repeat


def with_repeat(compiled: CompiledScenario, repeat: int | None) -> CompiledScenario:
    if repeat == compiled.repeat:
        return compiled
    return dataclasses.replace(compiled, repeat=repeat)
