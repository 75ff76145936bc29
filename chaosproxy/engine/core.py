"""The engine: what is active now, the phase timeline, and the per-request `decide()`.

`decide` is sync, allocation-light and a flat chain of early returns: ad-hoc rules first (an
operator's explicit rule wins), then the running scenario's current phase. Within a phase the
first rule whose `match` and `when` hold decides the request; its count pattern
(`first`/`every`/`after`) and probability say whether it injects. With `continue: true` the
next matching rules are consulted too and their faults added.

Seeds: the dice for the k-th request that matches rule r are a hash of (seed, scenario, scope,
r, cycle, k), where scope is the phase name (or `*` for a scenario-wide rule, whose count runs
across phases). No shared random stream: traffic on one route cannot shift another's dice.

Threads: `decide` runs on the proxy loop and takes no lock; it reads `_run` and `_adhoc` once
each, and every change replaces them (never mutates them in place) inside `bus.batch()`, so
the admin thread can stop a scenario or clear rules with immediate effect while the proxy loop
is saturated. Events of a change are dispatched on the proxy loop (see `EventBus`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from chaosproxy._clock import SYSTEM_CLOCK, Clock
from chaosproxy.config.model import Scenario
from chaosproxy.engine.compile import (
    CompiledOutcome,
    CompiledPhase,
    CompiledRule,
    CompiledScenario,
)
from chaosproxy.engine.compile import compile_scenario as compile_scenario
from chaosproxy.engine.events import EventBus, StateChanged
from chaosproxy.engine.guardrails import Running
from chaosproxy.engine.load import LoadSignals
from chaosproxy.errors import ChaosProxyError
from chaosproxy.faults.base import Fault
from chaosproxy.matching import RequestView

log = logging.getLogger("chaosproxy.engine")

__all__ = ["AdhocRule", "Decision", "Engine", "RequestView", "ScenarioRunning"]

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _mix(x: int) -> int:
    """splitmix64 finaliser: a fast, well-spread 64-bit hash step."""
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & _MASK
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB & _MASK
    return x ^ (x >> 31)


def _unit(x: int) -> float:
    return (x >> 11) * (1.0 / (1 << 53))


def seed_key(*parts: object) -> int:
    """A stable 64-bit key from the seed tuple (independent of PYTHONHASHSEED)."""
    text = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


class ScenarioRunning(ChaosProxyError):
    """start_scenario was called while another scenario runs (and replace was not asked)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The faults to apply to one request, and where they came from (for events)."""

    scenario: str
    phase: str
    rule: str
    faults: tuple[Fault, ...]
    seed: int | None = None  # seeds the exchange's RNG so fault-internal randomness replays
    # With `continue: true` several rules contribute: the rule of each fault, aligned with
    # `faults` (empty when one rule decided everything), so events name the right rule.
    fault_rules: tuple[str, ...] = ()

    def rule_of(self, fault: str) -> str:
        for f, rule in zip(self.faults, self.fault_rules, strict=False):
            if f.name == fault:
                return rule
        return self.rule


class _Counter:
    """Mutable per-rule state beside the immutable compiled rule."""

    __slots__ = ("base", "injected", "k", "matched")

    def __init__(self) -> None:
        self.matched = 0  # totals since the scenario started (for status)
        self.injected = 0
        self.k = 0  # matches in the current count window (phase entry, or whole run if wide)
        self.base = 0  # seed key of the current window


@dataclass
class AdhocRule:
    """A rule added at runtime (admin API or tests), outside any scenario: compiled like a
    scenario rule and evaluated the same way (match, when, first/every/after, probability,
    weighted outcomes), before the scenario's rules."""

    id: str
    rule: CompiledRule
    expires_at: float | None = None
    source: Any = None  # the rule as it was posted, for GET /rules
    counter: _Counter = field(default_factory=_Counter)

    @property
    def faults(self) -> tuple[Fault, ...]:
        return tuple(f for o in self.rule.outcomes for f in o.faults)

    @property
    def probability(self) -> float:
        return self.rule.probability

    @property
    def matched(self) -> int:
        return self.counter.matched

    @property
    def injected(self) -> int:
        return self.counter.injected


class _Run:
    """One running scenario: its compiled form, timeline position and counters."""

    def __init__(self, compiled: CompiledScenario, seed: int | None, start: float, wall: float):
        self.compiled = compiled
        self.seed = seed
        self.start = start  # monotonic
        self.start_wall = wall
        self.repeat = compiled.repeat
        self.repeat_overridden = False  # repeat given at start rather than by the file
        self.cycle = 0
        self.phase: CompiledPhase = compiled.phases[0]
        self.phase_start = start  # monotonic start of the current phase
        self.phase_end = start + self.phase.duration
        self.counters = [_Counter() for _ in compiled.rules]
        if seed is not None:
            for r in compiled.rules:
                if r.scope == "*":
                    self.counters[r.slot].base = seed_key(seed, compiled.name, "*", r.id, 0)

    def seek(self, now: float) -> None:
        """Position the timeline at `now` without events (used after a hot reload)."""
        c = self.compiled
        elapsed = max(0.0, now - self.start)
        cycle = int(elapsed // c.cycle_duration) if c.cycle_duration > 0 else 0
        if self.repeat is not None and cycle >= self.repeat:
            cycle = self.repeat - 1  # the caller's _advance finishes it
        offset = elapsed - cycle * c.cycle_duration
        phase = c.phases[-1]
        for p in c.phases:
            if offset < p.end:
                phase = p
                break
        self.cycle = cycle
        self.phase = phase
        self.phase_start = self.start + cycle * c.cycle_duration + phase.start
        self.phase_end = self.phase_start + phase.duration


@dataclass
class _Pending:
    """A scenario scheduled to start at a wall-clock instant (fleet-aligned starts)."""

    compiled: CompiledScenario
    at: float  # wall clock
    seed: int | None
    repeat: int | str | None


class Engine:
    """Holds what is active; `decide` is called once per request and must stay cheap."""

    def __init__(
        self,
        bus: EventBus | None = None,
        clock: Clock = SYSTEM_CLOCK,
        seed: int | None = None,
        load: LoadSignals | None = None,
    ) -> None:
        self.bus = bus or EventBus()
        self.clock = clock
        self.rng = random.Random(seed)
        self.load = load or LoadSignals(clock)
        self._adhoc: list[AdhocRule] = []
        self._ids = itertools.count(1)
        self._run: _Run | None = None
        self._last: dict[str, Any] | None = None  # status of the last finished/stopped run
        self._pending: _Pending | None = None
        self._wake: asyncio.Event | None = None
        self._wake_loop: asyncio.AbstractEventLoop | None = None
        self._wake_thread: int | None = None
        self.active = False

    # ------------------------------------------------------------ ad-hoc rules

    def _refresh_active(self) -> None:
        self.active = bool(self._adhoc) or self._run is not None

    def add_rule(
        self,
        faults: Sequence[Fault],
        match: Callable[[RequestView], bool] | None = None,
        probability: float = 1.0,
        ttl: float | None = None,
    ) -> AdhocRule:
        """An ad-hoc rule from faults built in code (tests, header-free tooling)."""
        outcome = CompiledOutcome(1.0, 1.0, tuple(sorted(faults, key=lambda f: f.order)))
        rule = CompiledRule(
            id="adhoc",
            path="rule",
            slot=0,
            scope="adhoc",
            match=match,
            probability=probability,
            ramp=None,
            inflight_above=None,
            rps_above=None,
            rps_window=5,
            first=None,
            every=None,
            after=None,
            outcomes=(outcome,),
            continue_=False,
        )
        return self.add_compiled_rule(rule, ttl)

    def add_compiled_rule(
        self, rule: CompiledRule, ttl: float | None = None, source: Any = None
    ) -> AdhocRule:
        adhoc = AdhocRule(
            id=f"r{next(self._ids)}",
            rule=rule,
            expires_at=None if ttl is None else self.clock.monotonic() + ttl,
            source=source,
        )
        with self.bus.batch():
            self._adhoc = [*self._adhoc, adhoc]  # a new list: decide() may be iterating
            self._refresh_active()
            self.emit_state("rule_added", details={"rule": adhoc.id})
        self._poke()  # the ticker removes it when its TTL ends
        return adhoc

    def remove_rule(self, rule_id: str) -> bool:
        with self.bus.batch():
            before = len(self._adhoc)
            self._adhoc = [r for r in self._adhoc if r.id != rule_id]
            self._refresh_active()
            removed = len(self._adhoc) < before
            if removed:
                self.emit_state("rule_removed", details={"rule": rule_id})
        return removed

    def clear_rules(self) -> None:
        with self.bus.batch():
            n = len(self._adhoc)
            self._adhoc = []
            self._refresh_active()
            if n:
                self.emit_state("rules_cleared", details={"rules": n})

    # ------------------------------------------------------------ scenarios

    def adhoc_rules(self) -> list[AdhocRule]:
        return list(self._adhoc)

    def current(self) -> Running | None:
        """The running scenario and its monotonic start (guardrails and the admin API read it)."""
        self._catch_up()
        run = self._run
        return None if run is None else Running(run.compiled.scenario, run.start)

    def _catch_up(self) -> None:
        """Advance the timeline to now, on the proxy loop only: a run's position is changed in
        place, and only that thread's decide() reads it (other threads see the ticker's)."""
        if self._run is not None and self.bus.on_owner_thread():
            with self.bus.batch():
                self._advance(self.clock.monotonic())

    def faults_in_use(self) -> list[tuple[str, Fault]]:
        """(rule id, fault) of every fault that can act now: the pool gauges read their state."""
        out = [(r.id, f) for r in self._adhoc for f in r.faults]
        run = self._run
        if run is not None:
            out += [(r.id, f) for r in run.compiled.rules for o in r.outcomes for f in o.faults]
        return out

    @property
    def scenario(self) -> CompiledScenario | None:
        """The running scenario's compiled form, or None."""
        return None if self._run is None else self._run.compiled

    def start_scenario(
        self,
        scenario: Scenario | CompiledScenario,
        seed: int | None = None,
        repeat: int | str | None = "scenario",
        replace: bool = False,
        started_at: float | None = None,
    ) -> CompiledScenario:
        """Compile (ConfigError on a bad definition) and start at phase one.

        `seed` overrides the scenario's own; `repeat` overrides its repeat count (None: forever).
        `started_at` (wall clock, not in the future) backdates the timeline's origin, so a start
        scheduled for an instant runs its phases from that instant even if the timer fired late.
        """
        compiled = _compiled(scenario)
        if isinstance(repeat, int) or repeat is None:
            compiled = _with_repeat(compiled, repeat)
        with self.bus.batch():
            self._check_idle(replace)
            now = self.clock.monotonic()
            wall = self.clock.wall()
            if started_at is not None and started_at <= wall:
                now, wall = now - (wall - started_at), started_at
            run = _Run(
                compiled,
                compiled.scenario.seed if seed is None else seed,
                now,
                wall,
            )
            run.repeat_overridden = isinstance(repeat, int) or repeat is None
            self._enter_phase(run)  # complete before decide() can see it
            self._pending = None
            if self._run is not None:  # one swap: no request sees neither scenario
                self._finish(
                    "scenario_stopped", self.clock.monotonic(), successor=run, reason="replaced"
                )
            else:
                self._run = run
                self._refresh_active()
            self._last = None
            self.emit_state(
                "scenario_started",
                compiled.name,
                run.phase.name,
                t=run.start_wall,
                details={
                    "seed": run.seed,
                    "repeat": "forever" if run.repeat is None else run.repeat,
                    "duration": compiled.total_duration,
                },
            )
            self.emit_state(
                "phase_changed",
                compiled.name,
                run.phase.name,
                t=run.start_wall,
                details={"from": None, "to": run.phase.name, "cycle": 0, "offset": 0.0},
            )
        self._poke()
        return compiled

    def _check_idle(self, replace: bool) -> None:
        busy = self._run.compiled.name if self._run is not None else None
        if busy is None and self._pending is not None:
            busy = self._pending.compiled.name
        if busy is not None and not replace:
            raise ScenarioRunning(f"scenario {busy!r} is running or scheduled; stop it first")

    def schedule_scenario(
        self,
        scenario: Scenario | CompiledScenario,
        at: float,
        seed: int | None = None,
        repeat: int | str | None = "scenario",
        replace: bool = False,
    ) -> CompiledScenario:
        """Start at wall-clock `at` (now when it has passed): phases then line up across every
        proxy given the same instant. A running scenario keeps running until then."""
        compiled = _compiled(scenario)
        if at <= self.clock.wall():
            return self.start_scenario(compiled, seed, repeat, replace, started_at=at)
        with self.bus.batch():
            self._check_idle(replace)
            self._pending = _Pending(compiled, at, seed, repeat)
            self.emit_state("scenario_scheduled", compiled.name, details={"at": at})
        self._poke()
        return compiled

    @property
    def scheduled(self) -> tuple[str, float] | None:
        """(name, wall-clock start) of a scenario waiting to start, or None."""
        p = self._pending
        return None if p is None else (p.compiled.name, p.at)

    def _start_pending(self) -> None:
        p = self._pending
        if p is not None and self.clock.wall() >= p.at:
            self._pending = None
            self.start_scenario(p.compiled, p.seed, p.repeat, replace=True, started_at=p.at)

    def stop_scenario(self) -> bool:
        """Stop the running scenario and cancel a scheduled one; False when there was neither."""
        with self.bus.batch():
            pending, self._pending = self._pending, None
            if pending is not None:
                self.emit_state("scenario_unscheduled", pending.compiled.name)
            if self._run is None:
                return pending is not None
            self._finish("scenario_stopped", self.clock.monotonic())
        return True

    def replace_scenario_definition(self, scenario: Scenario | CompiledScenario) -> bool:
        """Hot reload: swap the running scenario's definition, keeping its clock.

        The timeline position is recomputed from the elapsed time in the new phases; rule
        counters start afresh. Returns False when the running scenario has another name (or
        none runs). A ConfigError leaves the running definition untouched.
        """
        compiled = _compiled(scenario)
        with self.bus.batch():
            old = self._run
            if old is None or old.compiled.name != compiled.name:
                return False
            if old.repeat_overridden:  # chosen at start (admin, CLI): the edit can't undo it
                compiled = _with_repeat(compiled, old.repeat)
            now = self.clock.monotonic()
            run = _Run(compiled, old.seed, old.start, old.start_wall)
            run.repeat_overridden = old.repeat_overridden
            run.seek(now)
            self._enter_phase(run)  # complete before decide() can see it
            self._run = run
            self.emit_state("scenario_replaced", compiled.name, run.phase.name)
            if run.phase.name != old.phase.name:
                self.emit_state(
                    "phase_changed",
                    compiled.name,
                    run.phase.name,
                    details={"from": old.phase.name, "to": run.phase.name, "cycle": run.cycle},
                )
            self._advance(now)
        self._poke()
        return True

    def tick(self) -> None:
        """Advance the timeline without traffic: emits phase changes and the finish."""
        if self._pending is not None:
            self._start_pending()
        self._catch_up()
        if self._adhoc:
            now = self.clock.monotonic()
            expired = [r for r in self._adhoc if r.expires_at is not None and now >= r.expires_at]
            for r in expired:
                self.remove_rule(r.id)

    def next_boundary(self) -> float | None:
        """Seconds until the next timeline event (phase end, rule expiry), or None."""
        now = self.clock.monotonic()
        ends = [r.expires_at for r in self._adhoc if r.expires_at is not None]
        if self._run is not None:
            ends.append(self._run.phase_end)
        if self._pending is not None:
            ends.append(now + self._pending.at - self.clock.wall())
        return max(0.0, min(ends) - now) if ends else None

    async def run_ticker(self, idle: float = 3600.0) -> None:
        """Emit phase changes when they happen, even with no traffic (owned by the runtime)."""
        self._wake = asyncio.Event()
        self._wake_loop = asyncio.get_running_loop()
        self._wake_thread = threading.get_ident()
        while True:
            self.tick()
            delay = self.next_boundary()
            self._wake.clear()
            sleeper = asyncio.ensure_future(self.clock.sleep(idle if delay is None else delay))
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                waker.cancel()

    def _poke(self) -> None:
        """Wake the ticker (asyncio.Event is not thread-safe: from another thread, hand off)."""
        wake, loop = self._wake, self._wake_loop
        if wake is None:
            return
        if loop is None or threading.get_ident() == self._wake_thread:
            wake.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closed: shutting down
                loop.call_soon_threadsafe(wake.set)

    # ------------------------------------------------------------ timeline

    def _enter_phase(self, run: _Run) -> None:
        seed = run.seed
        name = run.compiled.name
        phase = run.phase
        for slot in phase.own_slots:
            c = run.counters[slot]
            c.k = 0
            if seed is not None:
                c.base = seed_key(seed, name, phase.name, run.compiled.rules[slot].id, run.cycle)

    def _advance(self, now: float) -> None:
        """Move the run to the phase that contains `now` (emitting each change)."""
        run = self._run
        while run is not None and now >= run.phase_end:
            phases = run.compiled.phases
            prev = run.phase
            idx = prev.index + 1
            cycle = run.cycle
            if idx == len(phases):
                idx, cycle = 0, cycle + 1
                if run.repeat is not None and cycle >= run.repeat:
                    self._finish("scenario_finished", run.phase_end)
                    return
            boundary = run.phase_end
            run.cycle = cycle
            run.phase = phases[idx]
            run.phase_start = boundary
            run.phase_end = boundary + run.phase.duration
            self._enter_phase(run)
            offset = boundary - run.start
            self.emit_state(
                "phase_changed",
                run.compiled.name,
                run.phase.name,
                t=run.start_wall + offset,
                details={"from": prev.name, "to": run.phase.name, "cycle": cycle, "offset": offset},
            )

    def _finish(self, kind: str, at: float, successor: _Run | None = None, **details: Any) -> None:
        run = self._run
        assert run is not None
        self._last = self._run_status(run, at) | {"state": kind.removeprefix("scenario_")}
        self._run = successor
        self._refresh_active()
        self.emit_state(
            kind,
            run.compiled.name,
            run.phase.name,
            t=run.start_wall + (at - run.start),
            details={"elapsed": at - run.start, **details},
        )

    def emit_state(
        self,
        kind: str,
        scenario: str = "",
        phase: str = "",
        t: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        ev = StateChanged(
            self.clock.wall() if t is None else t, kind, scenario, phase, details or {}
        )
        event = {"kind": kind, "scenario": scenario, "phase": phase, **ev.details}
        log.info(
            "%s%s%s %s",
            kind,
            f" scenario={scenario}" if scenario else "",
            f" phase={phase}" if phase else "",
            " ".join(f"{k}={_human(v)}" for k, v in ev.details.items()),
            extra={"event": event},  # the JSON log and the event keep full precision
        )
        self.bus.post(ev)

    # ------------------------------------------------------------ the hot path

    def decide(self, view: RequestView) -> Decision | None:
        if self._adhoc:
            d = self._decide_adhoc(view)
            if d is not None:
                return d
        run = self._run
        if run is None:
            return None
        now = self.clock.monotonic()
        if now >= run.phase_end:
            with self.bus.batch():
                self._advance(now)
            run = self._run
            if run is None:
                return None
        phase = run.phase
        if not phase.rules:
            return None
        load = self.load
        counters = run.counters
        seeded = run.seed is not None
        faults: tuple[Fault, ...] = ()
        ids: list[str] = []
        owners: list[str] = []
        seed: int | None = None
        for rule in phase.candidates(view.method, view.path):
            if rule.match is not None and not rule.match(view):
                continue
            if rule.inflight_above is not None and load.inflight <= rule.inflight_above:
                continue
            if rule.rps_above is not None and load.rps(rule.rps_window) <= rule.rps_above:
                continue
            p = rule.probability
            if rule.ramp is not None:
                start, end = rule.ramp
                frac = (now - run.phase_start) / phase.duration
                p = start + (end - start) * min(1.0, max(0.0, frac))
            chosen, x = self._draw(rule, counters[rule.slot], p, seeded)
            if chosen is not None:
                faults = chosen.faults if not faults else (*faults, *chosen.faults)
                owners.extend(rule.id for _ in chosen.faults)
                ids.append(rule.id)
                if seeded and seed is None:
                    seed = _mix(x ^ (_GOLDEN >> 1))
            if not rule.continue_:
                break
        if not faults:
            return None
        if len(ids) > 1:
            pairs = sorted(zip(faults, owners, strict=True), key=lambda p: p[0].order)
            return Decision(
                run.compiled.name,
                phase.name,
                "+".join(ids),
                tuple(f for f, _ in pairs),
                seed,
                tuple(r for _, r in pairs),
            )
        return Decision(run.compiled.name, phase.name, ids[0], faults, seed)

    def _draw(
        self, rule: CompiledRule, c: _Counter, p: float, seeded: bool
    ) -> tuple[CompiledOutcome | None, int]:
        """A matching request: count it, apply first/every/after and the probability `p`,
        pick a weighted outcome. Returns the outcome (None: no fault) and the seed state."""
        c.matched += 1
        c.k += 1
        if not _fires(rule, c.k):
            return None, 0
        if seeded:
            x = _mix((c.base + c.k * _GOLDEN) & _MASK)
            u = _unit(x)
        else:
            x = 0
            u = self.rng.random()
        if p < 1.0 and u >= p:
            return None, x
        outcomes = rule.outcomes
        chosen = outcomes[0]
        if len(outcomes) > 1:
            if seeded:
                x = _mix(x ^ _GOLDEN)
                v = _unit(x)
            else:
                v = self.rng.random()
            for o in outcomes:
                if v < o.cum:
                    chosen = o
                    break
        c.injected += 1
        return chosen, x

    def _decide_adhoc(self, view: RequestView) -> Decision | None:
        now = self.clock.monotonic()
        load = self.load
        for a in self._adhoc:
            if a.expires_at is not None and now >= a.expires_at:
                continue
            rule = a.rule
            if rule.match is not None and not rule.match(view):
                continue
            if rule.inflight_above is not None and load.inflight <= rule.inflight_above:
                continue
            if rule.rps_above is not None and load.rps(rule.rps_window) <= rule.rps_above:
                continue
            chosen, _ = self._draw(rule, a.counter, rule.probability, False)
            if chosen is not None:
                return Decision("", "", a.id, chosen.faults)
        return None

    # ------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        """JSON-ready view of what is active: scenario timeline, per-rule counts, ad-hoc rules."""
        self._catch_up()
        now = self.clock.monotonic()
        run = self._run
        scenario = self._run_status(run, now) if run is not None else self._last
        pending = self._pending
        return {
            "active": self.active,
            "scenario": scenario,
            "scheduled": None
            if pending is None
            else {"name": pending.compiled.name, "at": pending.at},
            "rules": [
                {
                    "id": r.id,
                    "faults": [f.describe() for f in r.faults],
                    "probability": r.probability,
                    "expires_in": None if r.expires_at is None else max(0.0, r.expires_at - now),
                    "matched": r.matched,
                    "injected": r.injected,
                }
                for r in self._adhoc
            ],
        }

    def _run_status(self, run: _Run, now: float) -> dict[str, Any]:
        c = run.compiled
        elapsed = now - run.start
        total = None if run.repeat is None else c.cycle_duration * run.repeat
        return {
            "name": c.name,
            "description": c.scenario.description,
            "source": c.scenario.source,
            "state": "running",
            "seed": run.seed,
            "repeat": "forever" if run.repeat is None else run.repeat,
            "cycle": run.cycle,
            "phase": run.phase.name,
            "phase_index": run.phase.index,
            "phase_elapsed": now - run.phase_start,
            "phase_remaining": max(0.0, run.phase_end - now),
            "elapsed": elapsed,
            "remaining": None if total is None else max(0.0, total - elapsed),
            "cycle_duration": c.cycle_duration,
            "total_duration": total,
            "phases": [
                {"name": p.name, "start": p.start, "end": p.end, "rules": len(p.rules)}
                for p in c.phases
            ],
            "rule_counts": [
                {
                    "id": r.id,
                    "phase": r.scope,
                    "faults": r.describe(),
                    "matched": run.counters[r.slot].matched,
                    "injected": run.counters[r.slot].injected,
                }
                for r in c.rules
            ],
        }


def _compiled(scenario: Scenario | CompiledScenario) -> CompiledScenario:
    return scenario if isinstance(scenario, CompiledScenario) else compile_scenario(scenario)


def _fires(rule: CompiledRule, k: int) -> bool:
    """Count-based patterns over the k-th matching request (1-based)."""
    if rule.first is not None and k > rule.first:
        return False
    if rule.every is not None and k % rule.every:
        return False
    return not (rule.after is not None and k <= rule.after)


def _with_repeat(compiled: CompiledScenario, repeat: int | None) -> CompiledScenario:
    if repeat == compiled.repeat:
        return compiled
    return CompiledScenario(
        compiled.scenario,
        compiled.name,
        compiled.phases,
        compiled.rules,
        compiled.cycle_duration,
        repeat,
    )


def _human(value: Any) -> Any:
    """A value for a log line people read: seconds to the millisecond (25.644, not 25.64357…)."""
    return round(value, 3) if isinstance(value, float) else value
