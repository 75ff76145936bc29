"""Compile a scenario once: faults built, matchers compiled, every problem located and reported.

The result is immutable; the engine keeps per-rule counters beside it, indexed by `slot`.
A rule's `cohort` stays beside its `match` predicate: membership needs the run's seed, so each
run binds the scenario's one cohort spec (`CompiledScenario.cohort`) into a `CohortGate`.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from chaosproxy.common.errors import ConfigError, Problem
from chaosproxy.config.match_spec import cohorts, one_cohort
from chaosproxy.config.model import CohortSpec, FieldCond, MatchSpec, Ramp, RuleSpec, Scenario
from chaosproxy.engine.matching import Predicate, compile_match
from chaosproxy.faults.base import Fault, build


@dataclass(frozen=True, slots=True)
class CompiledOutcome:
    weight: float
    cum: float  # cumulative weight / total, in (0, 1]: the outcome is drawn when u < cum
    faults: tuple[Fault, ...]  # sorted by `order`


# Seconds of request rate `when: {rps_above}` looks at when the rule gives no `window`.
DEFAULT_RPS_WINDOW = 5


@dataclass(frozen=True, slots=True)
class CompiledRule:
    id: str
    path: str
    slot: int  # index of this rule's counters in the engine
    scope: str  # the phase name, or "*" for a scenario-wide rule (part of the seed key)
    match: Predicate | None
    outcomes: tuple[CompiledOutcome, ...]
    probability: float = 1.0  # used when `ramp` is None
    ramp: tuple[float, float] | None = None
    inflight_above: int | None = None
    rps_above: float | None = None
    rps_window: int = DEFAULT_RPS_WINDOW
    first: int | None = None
    every: int | None = None
    after: int | None = None
    continue_: bool = False
    methods: frozenset[str] | None = None  # the methods `match` allows; None: any
    # The literal first path segment `match.path` (or a `^/seg/` path_regex) needs; None: any.
    segment: str | None = None
    shown: str = "every request"  # its `match`, as a warning names it (`GET /api/**`)
    cohort: CohortSpec | None = None  # `match.cohort`: only the run's cohort members match

    def describe(self) -> list[str]:
        return [f.describe() for o in self.outcomes for f in o.faults]


R = TypeVar("R")

# References a rule index may hold in precomputed candidate lists: (segments named) x (rules
# that name none). Past it the lists are merged per request instead (still only the rules a
# request's segment can reach), so memory stays linear in the rule count.
MERGE_BUDGET = 16_384


def first_segment(path: str) -> str:
    """`/api/items/3` → `api`; a path not starting with `/` is its own segment."""
    if not path.startswith("/"):
        return path
    end = path.find("/", 1)
    return path[1:] if end < 0 else path[1:end]


class RuleIndex(Generic[R]):
    """Rules by the first path segment they need, order kept: a request is only walked past
    the rules its segment can match (those naming its segment, and those naming none). Memory
    is linear in the rules (see MERGE_BUDGET); methods are checked in the walk."""

    __slots__ = ("_anywhere", "_by_segment", "_merged", "_order", "rules")

    def __init__(self, rules: Sequence[R], segment: Callable[[R], str | None]) -> None:
        self.rules = tuple(rules)
        by: dict[str, list[R]] = {}
        anywhere: list[R] = []
        for r in self.rules:
            seg = segment(r)
            (anywhere if seg is None else by.setdefault(seg, [])).append(r)
        self._anywhere = tuple(anywhere)
        self._by_segment = {k: tuple(v) for k, v in by.items()}
        order = {id(r): i for i, r in enumerate(self.rules)}
        self._order = order
        self._merged: dict[str, tuple[R, ...]] | None = None
        if anywhere and len(by) * len(anywhere) <= MERGE_BUDGET:
            self._merged = {k: self._merge(v) for k, v in self._by_segment.items()}

    def _merge(self, own: tuple[R, ...]) -> tuple[R, ...]:
        order = self._order  # both are in rule order already: a linear merge, not a sort
        return tuple(heapq.merge(own, self._anywhere, key=lambda r: order[id(r)]))

    def candidates(self, path: str, method: str = "GET") -> tuple[R, ...]:
        """The rules a request for `path` can match, in their order. A view with no method is
        a TCP connection (`chaosproxy/tcp/`): only the rules keyed to its path (`tcp:NAME`)."""
        if not method:
            return self._by_segment.get(path, ())
        if not self._by_segment:
            return self._anywhere
        segment = first_segment(path)
        own = self._by_segment.get(segment)
        if own is None:
            return self._anywhere
        if not self._anywhere:
            return own
        merged = self._merged
        return merged[segment] if merged is not None else self._merge(own)

    def __len__(self) -> int:
        return len(self.rules)


def _segment_of(rule: CompiledRule) -> str | None:
    return rule.segment


@dataclass(frozen=True, slots=True)
class CompiledPhase:
    name: str
    index: int
    start: float  # offset within one cycle, seconds
    end: float
    duration: float
    rules: tuple[CompiledRule, ...]  # the phase's own rules, then the scenario-wide rules
    own_slots: tuple[int, ...]  # counters reset each time the phase is entered
    # `rules` by first path segment, order kept: a rule limited to another top-level path can
    # never match, so decide() never looks at it (a rule limited to other methods is skipped
    # in the walk, one set lookup).
    lookup: RuleIndex[CompiledRule]

    def candidates(self, method: str, path: str) -> tuple[CompiledRule, ...]:
        """The rules that may match (`method` is checked by the caller, rule by rule)."""
        return self.lookup.candidates(path, method)


@dataclass(frozen=True, slots=True)
class CompiledScenario:
    scenario: Scenario
    name: str
    phases: tuple[CompiledPhase, ...]
    rules: tuple[CompiledRule, ...]  # every rule, by slot
    cycle_duration: float
    repeat: int | None  # None: forever
    # The one cohort spec of its rules: every request of a run is labelled by it, in every phase.
    cohort: CohortSpec | None = None

    @property
    def total_duration(self) -> float | None:
        return None if self.repeat is None else self.cycle_duration * self.repeat


def compile_scenario(scenario: Scenario) -> CompiledScenario:
    """Build every fault and matcher; raise one ConfigError carrying every located problem."""
    problems: list[Problem] = []
    all_rules: list[CompiledRule] = []

    def rule(spec: RuleSpec, scope: str) -> CompiledRule | None:
        r = _compile_rule(spec, scope, len(all_rules), problems)
        if r is not None:
            all_rules.append(r)
        return r

    wide = [r for spec in scenario.rules if (r := rule(spec, "*")) is not None]
    phases: list[CompiledPhase] = []
    offset = 0.0
    for i, ph in enumerate(scenario.phases):
        own = [r for spec in ph.rules if (r := rule(spec, ph.name)) is not None]
        if ph.duration <= 0:
            problems.append(Problem("a phase needs a duration > 0", f"{ph.path}.duration"))
        rules = (*own, *wide)
        phases.append(
            CompiledPhase(
                name=ph.name,
                index=i,
                start=offset,
                end=offset + ph.duration,
                duration=ph.duration,
                rules=rules,
                own_slots=tuple(r.slot for r in own),
                lookup=RuleIndex(rules, _segment_of),
            )
        )
        offset += ph.duration
    if not scenario.phases:
        problems.append(Problem("a scenario needs at least one phase", "phases"))
    if scenario.repeat is not None and scenario.repeat < 1:
        problems.append(Problem("repeat must be ≥ 1 or forever", "repeat"))
    specs = cohorts(scenario)
    problems += one_cohort(specs)  # the loader checked a file already; a model built in code
    if problems:
        raise ConfigError([_locate(scenario, p) for p in problems])
    return CompiledScenario(
        scenario=scenario,
        name=scenario.name,
        phases=tuple(phases),
        rules=tuple(all_rules),
        cycle_duration=offset,
        repeat=scenario.repeat,
        cohort=specs[0][0] if specs else None,
    )


def compile_rule(spec: RuleSpec, scope: str = "adhoc") -> CompiledRule:
    """One rule outside any scenario (ad-hoc rules); ConfigError lists every problem."""
    problems: list[Problem] = []
    rule = _compile_rule(spec, scope, 0, problems)
    if rule is None:
        raise ConfigError(problems)
    return rule


def rule_from_faults(
    faults: Iterable[Fault], match: Predicate | None = None, probability: float = 1.0
) -> CompiledRule:
    """An ad-hoc rule from faults built in code (tests, tooling): one outcome, every other
    setting at its default."""
    outcome = CompiledOutcome(1.0, 1.0, _ordered(faults))
    return CompiledRule("adhoc", "rule", 0, "adhoc", match, (outcome,), probability)


def _ordered(faults: Iterable[Fault]) -> tuple[Fault, ...]:
    """A rule's faults outermost first."""
    return tuple(sorted(faults, key=lambda f: f.order))


def _compile_rule(
    spec: RuleSpec, scope: str, slot: int, problems: list[Problem]
) -> CompiledRule | None:
    before = len(problems)
    match: Predicate | None = None
    try:
        match = compile_match(spec.match, f"{spec.path}.match")
    except ConfigError as e:
        problems.extend(e.problems)

    outcomes: list[tuple[float, tuple[Fault, ...]]] = []
    make = build
    if spec.match.tcp is not None:  # a rule for a TCP proxy: its faults are TCP faults
        # (a module, not `from ... import build as make`: compiled, that binds no local)
        import chaosproxy.faults.tcp as tcp_faults

        make = tcp_faults.build
    for j, outcome in enumerate(spec.outcomes):
        faults: list[Fault] = []
        for fs in outcome.faults:
            try:
                faults.append(make(fs.name, fs.params, fs.path))
            except ConfigError as e:
                problems.extend(e.problems)
        if outcome.weight <= 0:
            problems.append(Problem("weight must be > 0", f"{spec.path}.outcomes[{j}].weight"))
        outcomes.append((outcome.weight, _ordered(faults)))
    if not spec.outcomes:
        problems.append(Problem("a rule needs a fault or outcomes", spec.path))

    ramp: tuple[float, float] | None = None
    probability = 1.0
    if isinstance(spec.probability, Ramp):
        ramp = (spec.probability.start, spec.probability.end)
        bad = [v for v in ramp if not 0.0 <= v <= 1.0]
    else:
        probability = float(spec.probability)
        bad = [] if 0.0 <= probability <= 1.0 else [probability]
    if bad:
        problems.append(Problem(f"probability must be within 0..1, got {bad[0]!r}", spec.path))

    counting = spec.counting
    for key in ("first", "every", "after"):
        n = getattr(counting, key) if counting else None
        if n is not None and n < (0 if key == "after" else 1):
            problems.append(Problem(f"{key} must be ≥ 1, got {n}", f"{spec.path}.{key}"))

    if len(problems) > before:
        return None
    total = sum(w for w, _ in outcomes)
    cum = 0.0
    compiled: list[CompiledOutcome] = []
    for w, fl in outcomes:
        cum += w / total
        compiled.append(CompiledOutcome(w, cum, fl))
    # Guard against float rounding: the last outcome always catches u < 1.
    last = compiled[-1]
    compiled[-1] = CompiledOutcome(last.weight, 1.0, last.faults)
    when = spec.when
    return CompiledRule(
        id=spec.id,
        path=spec.path,
        slot=slot,
        scope=scope,
        match=match,
        probability=probability,
        ramp=ramp,
        inflight_above=when.inflight_above if when else None,
        rps_above=when.rps_above if when else None,
        rps_window=max(1, round(when.window)) if when else DEFAULT_RPS_WINDOW,
        first=counting.first if counting else None,
        every=counting.every if counting else None,
        after=counting.after if counting else None,
        outcomes=tuple(compiled),
        continue_=spec.continue_,
        methods=_methods(spec.match),
        segment=_segment(spec.match),
        shown=describe_match(spec.match),
        cohort=spec.match.cohort,
    )


def _methods(m: MatchSpec) -> frozenset[str] | None:
    """The methods a rule allows; a TCP proxy's rule only the empty one (connections have
    none), so no HTTP request ever walks past it."""
    if m.tcp is not None:
        return frozenset({""})
    return frozenset(x.upper() for x in m.methods) or None


def _segment(m: MatchSpec) -> str | None:
    """The index key: a TCP proxy's rule is keyed to its connections' path (`tcp:NAME`)."""
    if m.tcp is not None:
        return f"tcp:{m.tcp}"
    return _first_segment(m.path) or _regex_segment(m.path_regex)


def describe_match(m: MatchSpec) -> str:
    """A rule's `match` in a few words: `GET|POST /api/**`, `path ~ ^/v[12]/`, `header X-Beta`;
    `every request` when it has none."""
    parts = ["|".join(m.methods)] if m.methods else []
    if m.tcp is not None:
        parts.append(f"tcp {m.tcp}")
    if m.path is not None:
        parts.append(m.path)
    if m.path_regex is not None:
        parts.append(f"path ~ {m.path_regex}")
    if m.host is not None:
        parts.append(f"host {m.host}")
    parts += [_field("header", c) for c in m.headers]
    parts += [_field("query", c) for c in m.query]
    if m.user_agent is not None:
        parts.append(f"user-agent {m.user_agent}")
    if m.client_ip:
        parts.append(f"client {','.join(m.client_ip)}")
    if m.cohort is not None:
        parts.append(f"cohort {m.cohort.share * 100:g}% by {m.cohort.by}")
    return " ".join(parts) or "every request"


def _field(kind: str, c: FieldCond) -> str:
    if c.equals is not None:
        return f"{kind} {c.name}={c.equals}"
    if c.regex is not None:
        return f"{kind} {c.name} ~ {c.regex}"
    return f"no {kind} {c.name}" if c.present is False else f"{kind} {c.name}"


def _first_segment(glob: str | None) -> str | None:
    """The first segment of a path glob when it is literal (`/api/**` → `api`), else None."""
    if glob is None or not glob.startswith("/"):
        return None
    first = glob.split("/", 2)[1]
    return None if not first or any(c in first for c in "*?[]{}") else first


# `^/api/…` or `^/api$`: a regex that needs this first segment. Only the plainest form is read
# (letters, digits, `_`, `~`, `-`, then a `/` that is not optional or the end; no alternation
# anywhere); anything else indexes as "any".
_REGEX_SEGMENT = re.compile(r"\^/([A-Za-z0-9_~-]+)(?:\\?/(?![*?{])|\$\Z|\\[zZ]\Z)")


def _regex_segment(pattern: str | None) -> str | None:
    if pattern is None or "|" in pattern:
        return None
    m = _REGEX_SEGMENT.match(pattern)
    return m.group(1) if m else None


def _locate(scenario: Scenario, p: Problem) -> Problem:
    if p.line:
        return p
    loc = scenario.locate(p.path)
    return Problem(p.message, p.path, loc.file or scenario.source, loc.line, loc.col)
