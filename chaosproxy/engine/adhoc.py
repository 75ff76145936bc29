"""Ad-hoc rules: added at runtime (admin API, tests), outside any scenario, evaluated before
the scenario's rules. This is the registry; the engine emits the events for its changes."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from chaosproxy.engine.compile import CompiledRule
from chaosproxy.engine.draw import Counter
from chaosproxy.faults.base import Fault


@dataclass
class AdhocRule:
    """A rule compiled like a scenario rule and evaluated the same way (match, when,
    first/every/after, probability, weighted outcomes)."""

    id: str
    rule: CompiledRule
    expires_at: float | None = None
    source: Any = None  # the rule as it was posted, for GET /rules
    counter: Counter = field(default_factory=Counter)

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

    def status(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "faults": [f.describe() for f in self.faults],
            "probability": self.probability,
            "expires_in": None if self.expires_at is None else max(0.0, self.expires_at - now),
            "matched": self.matched,
            "injected": self.injected,
        }


class AdhocRules:
    """The rules in the order they were added; ids `r1`, `r2`, … never reused."""

    def __init__(self) -> None:
        self.rules: list[AdhocRule] = []
        self._ids = itertools.count(1)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def add(self, rule: CompiledRule, expires_at: float | None, source: Any) -> AdhocRule:
        adhoc = AdhocRule(f"r{next(self._ids)}", rule, expires_at, source)
        self.rules = [*self.rules, adhoc]  # a new list: decide() may be iterating the old
        return adhoc

    def remove(self, rule_id: str) -> bool:
        before = len(self.rules)
        self.rules = [r for r in self.rules if r.id != rule_id]
        return len(self.rules) < before

    def clear(self) -> int:
        n = len(self.rules)
        self.rules = []
        return n

    def expired(self, now: float) -> list[str]:
        return [r.id for r in self.rules if r.expires_at is not None and now >= r.expires_at]

    def next_expiry(self) -> float | None:
        ends = [r.expires_at for r in self.rules if r.expires_at is not None]
        return min(ends) if ends else None
