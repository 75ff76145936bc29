"""The per-request decision: sync, allocation-light, a flat chain of early returns.

Ad-hoc rules first (an operator's explicit rule wins), then the running scenario's phase in
force. Within a phase the first rule whose `match` and `when` hold decides the request; its
count pattern (`first`/`every`/`after`) and probability say whether it injects. With
`continue: true` the next matching rules are consulted too and their faults added.

Nothing here moves the timeline or emits events: the phase in force is computed from the clock
(`ScenarioRun.where`), and only rule counters (the request was counted) change, and the run's
watch for rules that match nothing (`unmatched.py`), which the ticker reports.

A rule with a `cohort` matches only the requests of the run's cohort members (`CohortGate`,
asked at most once per request, and only when such a rule is reached).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chaosproxy.common.cohort import CONTROL, FAULT
from chaosproxy.engine.load_signals import LoadSignals
from chaosproxy.engine.matching import CohortGate, RequestView
from chaosproxy.engine.rule_match import GOLDEN, admits, draw, mix, seed_key, when_holds
from chaosproxy.engine.timeline import ScenarioRun
from chaosproxy.faults.base import Fault

_LABEL = {True: FAULT, False: CONTROL}

if TYPE_CHECKING:
    from chaosproxy.engine.adhoc import AdhocRule


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
    cohort: str = ""  # the request's cohort label (`fault`/`control`) when the run has one

    def rule_of(self, fault: Fault) -> str:
        """The rule that owns this very fault object (identity: two rules may hold equal
        faults of one kind)."""
        for f, rule in zip(self.faults, self.fault_rules, strict=False):
            if f is fault:
                return rule
        return self.rule


def decide_adhoc(
    rules: Sequence[AdhocRule],
    view: RequestView,
    now: float,
    load: LoadSignals,
    rng: random.Random,
    gate: CohortGate | None = None,
    labels: CohortGate | None = None,
) -> Decision | None:
    """The ad-hoc rules that fire; `gate` decides their cohort conditions, `labels` the label
    the decision carries (the running scenario's cohort when it has one)."""
    method = view.method
    faults: tuple[Fault, ...] = ()
    ids: list[str] = []
    owners: list[str] = []
    for a in rules:
        if a.expires_at is not None and now >= a.expires_at:
            continue  # the ticker removes it
        rule = a.rule
        if rule.methods is not None and method not in rule.methods:
            continue
        if not admits(rule, view, load):
            continue
        if rule.cohort is not None and (gate is None or not gate.member(view)):
            continue
        chosen, _ = draw(rule, a.counter, rule.probability, rng)
        if chosen is None:
            continue
        if not rule.continue_ and not ids:
            cohort = "" if labels is None else labels.label(view)
            return Decision("", "", a.id, chosen.faults, cohort=cohort)
        # `continue: true` (every TCP toxic is such a rule): the later rules add their faults.
        faults = (*faults, *chosen.faults)
        owners.extend(a.id for _ in chosen.faults)
        ids.append(a.id)
        if not rule.continue_:
            break
    if not ids:
        return None
    cohort = "" if labels is None else labels.label(view)
    if len(ids) == 1:
        return Decision("", "", ids[0], faults, cohort=cohort)
    pairs = sorted(zip(faults, owners, strict=True), key=lambda p: p[0].order)
    return Decision(
        "",
        "",
        "+".join(ids),
        tuple(f for f, _ in pairs),
        None,
        tuple(r for _, r in pairs),
        cohort,
    )


def decide_run(
    run: ScenarioRun,
    view: RequestView,
    now: float,
    load: LoadSignals,
    rng: random.Random,
    labels: CohortGate | None = None,
) -> Decision | None:
    pos = run.at
    if now >= pos.end:  # the ticker has not moved the run yet: compute, don't move
        pos, ended = run.where(now)
        if ended:
            return None
    phase = pos.phase
    if not phase.rules:
        return None
    counters = run.counters
    seeded = run.seed is not None
    dice = None if seeded else rng
    faults: tuple[Fault, ...] = ()
    ids: list[str] = []
    owners: list[str] = []
    seed: int | None = None
    method = view.method
    hit = False  # some rule's `match` held (for the watch of rules that match nothing)
    member: bool | None = None  # the request is in the run's cohort (asked once, if needed)
    for rule in phase.candidates(method, view.path):
        if rule.methods is not None and method not in rule.methods:
            continue
        if rule.match is not None and not rule.match(view):
            continue
        if rule.cohort is not None:
            if member is None:
                gate = run.gate
                member = gate is not None and gate.member(view)
            if not member:
                continue
        hit = True
        if not when_holds(rule, load):
            continue
        c = counters[rule.slot]
        if rule.scope != "*" and c.window != pos.window:
            # First match since this phase was entered: its count restarts (once per entry).
            c.window, c.k = pos.window, 0
            if seeded:
                c.base = seed_key(run.seed, run.compiled.name, phase.name, rule.id, pos.cycle)
        p = rule.probability
        if rule.ramp is not None:
            start, end = rule.ramp
            frac = (now - pos.start) / phase.duration
            p = start + (end - start) * min(1.0, max(0.0, frac))
        chosen, x = draw(rule, c, p, dice)
        if chosen is not None:
            faults = chosen.faults if not faults else (*faults, *chosen.faults)
            owners.extend(rule.id for _ in chosen.faults)
            ids.append(rule.id)
            if seeded and seed is None:
                seed = mix(x ^ (GOLDEN >> 1))
        if not rule.continue_:
            break
    watch = run.unmatched
    if watch.watching or watch.entry != pos.start:  # a phase entry's first request, or watched
        watch.saw(pos, hit, view.path, now)
    if not faults:
        return None
    cohort = ""
    if labels is not None:  # the run's own gate answered already: no second lookup
        cohort = labels.label(view) if member is None or labels is not run.gate else _LABEL[member]
    if len(ids) > 1:
        pairs = sorted(zip(faults, owners, strict=True), key=lambda p: p[0].order)
        return Decision(
            run.compiled.name,
            phase.name,
            "+".join(ids),
            tuple(f for f, _ in pairs),
            seed,
            tuple(r for _, r in pairs),
            cohort,
        )
    return Decision(run.compiled.name, phase.name, ids[0], faults, seed, cohort=cohort)
