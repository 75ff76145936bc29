"""Ad-hoc rules: added at runtime (admin API, tests), outside any scenario, evaluated before
the scenario's rules. This is the registry; the engine emits the events for its changes."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from chaosproxy.common.errors import ChaosProxyError
from chaosproxy.config.model import CohortSpec
from chaosproxy.engine.compile import CompiledRule, RuleIndex
from chaosproxy.engine.rule_match import Counter
from chaosproxy.faults.base import Fault

# Ad-hoc rules active at once: each request is walked past the ones its path can match, so the
# count bounds that walk (and the memory) whatever a client of the admin API sends.
MAX_ADHOC_RULES = 1000


class TooManyRules(ChaosProxyError):
    """Adding a rule would pass MAX_ADHOC_RULES (the admin API answers 409 Conflict)."""


class CohortMismatch(TooManyRules):
    """The rule's cohort differs from the one the active ad-hoc rules split clients by: like
    a scenario, the ad-hoc rules have one cohort spec (answered 409 Conflict too)."""


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


def _segment_of(rule: AdhocRule) -> str | None:
    return rule.rule.segment


class AdhocRules:
    """The rules in the order they were added; ids `r1`, `r2`, … never reused. At most
    `limit` at once (TooManyRules)."""

    def __init__(self, limit: int = MAX_ADHOC_RULES) -> None:
        self.limit = limit
        # Replaced whole on every change (decide() may be walking the old one): the rules and
        # their index by path segment, one object, so a reader never sees one without the other.
        self.index: RuleIndex[AdhocRule] = RuleIndex((), _segment_of)
        self._ids = itertools.count(1)

    @property
    def rules(self) -> tuple[AdhocRule, ...]:
        return self.index.rules

    def __bool__(self) -> bool:
        return bool(self.index.rules)

    def _set(self, rules: tuple[AdhocRule, ...]) -> None:
        self.index = RuleIndex(rules, _segment_of)

    @property
    def cohort(self) -> CohortSpec | None:
        """The cohort spec of the ad-hoc rules (they have at most one), or None."""
        return next((r.rule.cohort for r in self.rules if r.rule.cohort is not None), None)

    def add(self, rule: CompiledRule, expires_at: float | None, source: Any) -> AdhocRule:
        if len(self.rules) >= self.limit:
            raise TooManyRules(
                f"{self.limit} ad-hoc rules are active already (the limit); delete some first"
            )
        have = self.cohort
        if rule.cohort is not None and have is not None and rule.cohort != have:
            raise CohortMismatch(
                f"the ad-hoc rules split clients by cohort share {have.share:g} by {have.by}; "
                f"this rule asks share {rule.cohort.share:g} by {rule.cohort.by} (one cohort "
                "spec at a time: delete those rules first)"
            )
        adhoc = AdhocRule(f"r{next(self._ids)}", rule, expires_at, source)
        self._set((*self.rules, adhoc))
        return adhoc

    def remove(self, rule_id: str) -> bool:
        before = len(self.rules)
        self._set(tuple(r for r in self.rules if r.id != rule_id))
        return len(self.rules) < before

    def clear(self) -> int:
        n = len(self.rules)
        self._set(())
        return n

    def expired(self, now: float) -> list[str]:
        return [r.id for r in self.rules if r.expires_at is not None and now >= r.expires_at]

    def next_expiry(self) -> float | None:
        ends = [r.expires_at for r in self.rules if r.expires_at is not None]
        return min(ends) if ends else None
