"""The engine: what is active now, the scenario lifecycle and its ticker; the pieces live
beside it (`adhoc` rules, the `timeline`, `decide`, `rule_match`, `status`).

Only the engine moves the timeline, from its own clock: `tick()` (driven by `run_ticker`) enters
phases, emits `phase_changed` and finishes runs. `decide()`, `status()` and `current()` read the
phase in force for the clock's `now` and never emit.

Threads: `decide` runs on the proxy loop and takes no lock; it reads `_run` and the ad-hoc rule
list once each, and every change replaces them (never mutates the list in place) inside
`bus.batch()`, so the admin thread can stop a scenario or clear rules with immediate effect while
the proxy loop is saturated. Events of a change are dispatched on the proxy loop (`EventBus`).

Over 400 lines on purpose: `Engine` is the facade the proxy, admin and runtime import, and its
lifecycle (start, schedule, replace, stop, tick) changes state under one lock in one order; the
parts that stand alone already live apart (`adhoc.py`, `timeline.py`, `decide.py`, `rule_match.py`,
`status.py`, `compile.py`); most of its lines are the events each lifecycle step emits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
from collections.abc import Callable, Sequence
from typing import Any

from chaosproxy.common.clock import SYSTEM_CLOCK, Clock
from chaosproxy.common.errors import ChaosProxyError
from chaosproxy.common.events import EventBus, StateChanged, StateKind
from chaosproxy.config.model import Scenario
from chaosproxy.engine.adhoc import AdhocRule, AdhocRules
from chaosproxy.engine.compile import CompiledRule, CompiledScenario, rule_from_faults
from chaosproxy.engine.compile import compile_scenario as compile_scenario
from chaosproxy.engine.decide import Decision, decide_adhoc, decide_run
from chaosproxy.engine.guardrails import Running
from chaosproxy.engine.load_signals import LoadSignals
from chaosproxy.engine.matching import CohortGate, RequestView, cohort_gate
from chaosproxy.engine.status import run_status
from chaosproxy.engine.timeline import (
    FROM_SCENARIO,
    FromScenario,
    Pending,
    Repeat,
    ScenarioRun,
    with_repeat,
)
from chaosproxy.engine.unmatched import public
from chaosproxy.faults.base import Fault

log = logging.getLogger("chaosproxy.engine")

__all__ = ["FROM_SCENARIO", "AdhocRule", "Decision", "Engine", "RequestView", "ScenarioRunning"]


class ScenarioRunning(ChaosProxyError):
    """start_scenario was called while another scenario runs (and replace was not asked)."""


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
        self._adhoc = AdhocRules()
        self._run: ScenarioRun | None = None
        self._last: dict[str, Any] | None = None  # status of the last finished/stopped run
        self._pending: Pending | None = None
        self._wake: asyncio.Event | None = None
        self._wake_loop: asyncio.AbstractEventLoop | None = None
        self._wake_thread: int | None = None
        self.active = False
        # More of `/status`, from parts beside the engine (`tcp`: the TCP proxies): name → a
        # thread-safe read, called on each status; an empty answer adds nothing.
        self.sections: dict[str, Callable[[], Any]] = {}
        # The header naming a client (--client-id-header), for cohorts `by: client`.
        self._client_header: str | None = None
        # The cohort labels of requests now: the running scenario's cohort, else the ad-hoc
        # rules'; None when neither has one (requests carry no label).
        self.labels: CohortGate | None = None
        self._adhoc_gate: CohortGate | None = None

    # ------------------------------------------------------------ ad-hoc rules

    def _refresh_active(self) -> None:
        self.active = bool(self._adhoc) or self._run is not None
        self._refresh_cohorts()

    @property
    def client_id_header(self) -> str | None:
        return self._client_header

    @client_id_header.setter
    def client_id_header(self, name: str | None) -> None:
        self._client_header = name
        self._refresh_cohorts()

    def _refresh_cohorts(self) -> None:
        """Bind the cohort specs in force to the run's seed (0 with no run or an unseeded one)
        and the client identity; replaced whole, never mutated (decide() may be reading)."""
        run, header = self._run, self._client_header
        seed = None if run is None else run.seed
        if run is not None:
            run.gate = cohort_gate(run.compiled.cohort, seed, header)
        self._adhoc_gate = cohort_gate(self._adhoc.cohort, seed, header)
        self.labels = run.gate if run is not None and run.gate is not None else self._adhoc_gate

    def label(self, view: RequestView) -> str:
        """The request's cohort label: `fault`, `control`, or "" when no cohort is in force."""
        gate = self.labels
        return "" if gate is None else gate.label(view)

    def add_rule(
        self,
        faults: Sequence[Fault],
        match: Callable[[RequestView], bool] | None = None,
        probability: float = 1.0,
        ttl: float | None = None,
    ) -> AdhocRule:
        """An ad-hoc rule from faults built in code (tests, header-free tooling)."""
        return self.add_compiled_rule(rule_from_faults(faults, match, probability), ttl)

    def add_compiled_rule(
        self, rule: CompiledRule, ttl: float | None = None, source: Any = None
    ) -> AdhocRule:
        expires_at = None if ttl is None else self.clock.monotonic() + ttl
        with self.bus.batch():
            adhoc = self._adhoc.add(rule, expires_at, source)
            self._refresh_active()
            self.emit_state(StateKind.RULE_ADDED, details={"rule": adhoc.id})
        self._poke()  # the ticker removes it when its TTL ends
        return adhoc

    def remove_rule(self, rule_id: str) -> bool:
        with self.bus.batch():
            removed = self._adhoc.remove(rule_id)
            self._refresh_active()
            if removed:
                self.emit_state(StateKind.RULE_REMOVED, details={"rule": rule_id})
        return removed

    def clear_rules(self) -> None:
        with self.bus.batch():
            n = self._adhoc.clear()
            self._refresh_active()
            if n:
                self.emit_state(StateKind.RULES_CLEARED, details={"rules": n})

    def adhoc_rules(self) -> list[AdhocRule]:
        return list(self._adhoc.rules)

    # ------------------------------------------------------------ scenarios

    def current(self) -> Running | None:
        """The running scenario and its monotonic start (guardrails and the admin API read it);
        None once its timeline is over, even before the ticker noticed."""
        run = self._run
        if run is None or run.where(self.clock.monotonic())[1]:
            return None
        return Running(run.compiled.scenario, run.start)

    def faults_in_use(self) -> list[tuple[str, Fault]]:
        """(rule id, fault) of every fault that can act now: the live gauges read their state."""
        out = [(r.id, f) for r in self._adhoc.rules for f in r.faults]
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
        repeat: Repeat = FROM_SCENARIO,
        replace: bool = False,
        started_at: float | None = None,
    ) -> CompiledScenario:
        """Compile (ConfigError on a bad definition) and start at phase one.

        `seed` overrides the scenario's own; `repeat` overrides its repeat count (None: forever).
        `started_at` (wall clock, not in the future) backdates the timeline's origin, so a start
        scheduled for an instant runs its phases from that instant even if the timer fired late.
        """
        compiled = _compiled(scenario)
        overridden = repeat is not FROM_SCENARIO
        if not isinstance(repeat, FromScenario):
            compiled = with_repeat(compiled, repeat)
        with self.bus.batch():
            self._check_idle(replace)
            self._advance(self.clock.monotonic())  # report the phases the old run went through
            self._pending = None
            now = self.clock.monotonic()
            wall = self.clock.wall()
            if started_at is not None and started_at <= wall:
                now, wall = now - (wall - started_at), started_at
            run = ScenarioRun(compiled, compiled.scenario.seed if seed is None else seed, now, wall)
            run.repeat_overridden = overridden
            run.unmatched.poke = self._poke
            if self._run is not None:  # one swap: no request sees neither scenario
                self._finish(
                    StateKind.SCENARIO_STOPPED,
                    self.clock.monotonic(),
                    successor=run,
                    reason="replaced",
                )
            else:
                self._run = run
                self._refresh_active()
            self._last = None
            self.emit_state(
                StateKind.SCENARIO_STARTED,
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
                StateKind.PHASE_CHANGED,
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
        repeat: Repeat = FROM_SCENARIO,
        replace: bool = False,
    ) -> CompiledScenario:
        """Start at wall-clock `at` (now when it has passed): phases then line up across every
        proxy given the same instant. A running scenario keeps running until then."""
        compiled = _compiled(scenario)
        if at <= self.clock.wall():
            return self.start_scenario(compiled, seed, repeat, replace, started_at=at)
        with self.bus.batch():
            self._check_idle(replace)
            self._pending = Pending(compiled, at, seed, repeat)
            self.emit_state(StateKind.SCENARIO_SCHEDULED, compiled.name, details={"at": at})
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
                self.emit_state(StateKind.SCENARIO_UNSCHEDULED, pending.compiled.name)
            # What the ticker would have reported by now comes first: phases entered, or the
            # end (then there is nothing left to stop).
            self._advance(self.clock.monotonic())
            if self._run is None:
                return pending is not None
            self._finish(StateKind.SCENARIO_STOPPED, self.clock.monotonic())
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
                compiled = with_repeat(compiled, old.repeat)
            now = self.clock.monotonic()
            run = ScenarioRun(compiled, old.seed, old.start, old.start_wall)
            run.repeat_overridden = old.repeat_overridden
            run.unmatched.poke = self._poke
            run.seek(now)
            self._run = run
            self._refresh_cohorts()
            self.emit_state(StateKind.SCENARIO_REPLACED, compiled.name, run.phase.name)
            if run.phase.name != old.phase.name:
                self.emit_state(
                    StateKind.PHASE_CHANGED,
                    compiled.name,
                    run.phase.name,
                    details={"from": old.phase.name, "to": run.phase.name, "cycle": run.at.cycle},
                )
            self._advance(now)
        self._poke()
        return True

    # ------------------------------------------------------------ the clock

    def tick(self) -> None:
        """Advance the timeline to now: start a due scheduled scenario, emit phase changes and
        the finish, remove expired ad-hoc rules. The only place the timeline moves."""
        with self.bus.batch():
            if self._pending is not None:
                self._start_pending()
            if self._run is not None:
                if self._run.unmatched.pending:
                    self._report_unmatched(self._run)
                self._advance(self.clock.monotonic())
            if self._adhoc:
                for rule_id in self._adhoc.expired(self.clock.monotonic()):
                    self.remove_rule(rule_id)

    def next_boundary(self) -> float | None:
        """Seconds until the next timeline event (phase end, rule expiry), or None."""
        now = self.clock.monotonic()
        expiry = self._adhoc.next_expiry()
        ends = [] if expiry is None else [expiry]
        if self._run is not None:
            ends.append(self._run.at.end)
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

    def _advance(self, now: float) -> None:
        """Move the run to the phase that contains `now`, emitting each change (or the finish)."""
        run = self._run
        if run is None:
            return
        for pos in list(run.steps(now)):
            if pos is None:
                self._finish(StateKind.SCENARIO_FINISHED, run.at.end)
                return
            prev = run.at.phase
            run.at = pos
            offset = pos.start - run.start
            self.emit_state(
                StateKind.PHASE_CHANGED,
                run.compiled.name,
                pos.phase.name,
                t=run.start_wall + offset,
                details={
                    "from": prev.name,
                    "to": pos.phase.name,
                    "cycle": pos.cycle,
                    "offset": offset,
                },
            )

    def _report_unmatched(self, run: ScenarioRun) -> None:
        """Log and emit the warnings `decide()` queued about rules that match no request."""
        pending = run.unmatched.pending
        name = run.compiled.name
        for w in pending:
            log.warning(
                "scenario %s phase %s: %s",
                name,
                w["phase"],
                w["message"],
                extra={"event": StateKind.RULES_UNMATCHED},
            )
            details = {k: v for k, v in public(w).items() if k not in ("kind", "t", "phase")}
            self.bus.post(
                StateChanged(w["t"], StateKind.RULES_UNMATCHED, name, w["phase"], details)
            )
        pending.clear()

    def _finish(
        self, kind: StateKind, at: float, successor: ScenarioRun | None = None, **details: Any
    ) -> None:
        run = self._run
        assert run is not None
        self._last = run_status(run, run.at, at, kind.outcome)
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
        kind: StateKind | str,
        scenario: str = "",
        phase: str = "",
        t: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        kind = StateKind(kind)
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
        """The faults for one request, from the ad-hoc rules then the phase in force now.
        Pure but for rule counters: it neither moves the timeline nor emits."""
        now = self.clock.monotonic()
        adhoc = self._adhoc.index  # read once: rules and their index change together
        labels = self.labels
        if adhoc.rules:
            gate = self._adhoc_gate
            candidates = adhoc.candidates(view.path, view.method)
            d = decide_adhoc(candidates, view, now, self.load, self.rng, gate, labels)
            if d is not None:
                return d
        run = self._run
        if run is None or (now < run.at.end and not run.at.phase.rules):
            return None  # the common idle case, without a call
        return decide_run(run, view, now, self.load, self.rng, labels)

    # ------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        """JSON-ready view of what is active: scenario timeline, per-rule counts, ad-hoc rules.
        A run whose timeline is over shows as finished even before the ticker noticed."""
        now = self.clock.monotonic()
        run = self._run
        scenario = self._last
        running = False
        if run is not None:
            pos, ended = run.where(now)
            running = not ended
            scenario = (
                run_status(run, pos, pos.end, "finished") if ended else run_status(run, pos, now)
            )
        pending = self._pending
        return {
            "active": bool(self._adhoc) or running,
            "scenario": scenario,
            "scheduled": None
            if pending is None
            else {"name": pending.compiled.name, "at": pending.at},
            "rules": [r.status(now) for r in self._adhoc.rules],
            **{name: part for name, read in self.sections.items() if (part := read())},
        }


def _compiled(scenario: Scenario | CompiledScenario) -> CompiledScenario:
    return scenario if isinstance(scenario, CompiledScenario) else compile_scenario(scenario)


def _human(value: Any) -> Any:
    """A value for a log line people read: seconds to the millisecond (25.644, not 25.64357…)."""
    return round(value, 3) if isinstance(value, float) else value
