"""The engine: what is active now, and the per-request `decide()` (pure, sync, no aiohttp)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from chaosproxy._clock import SYSTEM_CLOCK, Clock
from chaosproxy.engine.events import EventBus, StateChanged
from chaosproxy.faults.base import Fault


class RequestView(Protocol):
    """What matching may look at: the proxy's exchange satisfies it."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def query_string(self) -> str: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def client_ip(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Decision:
    """The faults to apply to one request, and where they came from (for events)."""

    scenario: str
    phase: str
    rule: str
    faults: tuple[Fault, ...]


@dataclass
class AdhocRule:
    """A rule added at runtime (admin API or tests), outside any scenario."""

    id: str
    faults: tuple[Fault, ...]
    match: Callable[[RequestView], bool] | None = None
    probability: float = 1.0
    expires_at: float | None = None


class Engine:
    """Holds what is active; `decide` is called once per request and must stay cheap."""

    def __init__(
        self, bus: EventBus | None = None, clock: Clock = SYSTEM_CLOCK, seed: int | None = None
    ) -> None:
        self.bus = bus or EventBus()
        self.clock = clock
        self.rng = random.Random(seed)
        self._adhoc: list[AdhocRule] = []
        self._ids = itertools.count(1)

    @property
    def active(self) -> bool:
        return bool(self._adhoc)

    def add_rule(
        self,
        faults: Sequence[Fault],
        match: Callable[[RequestView], bool] | None = None,
        probability: float = 1.0,
        ttl: float | None = None,
    ) -> AdhocRule:
        rule = AdhocRule(
            id=f"r{next(self._ids)}",
            faults=tuple(sorted(faults, key=lambda f: f.order)),
            match=match,
            probability=probability,
            expires_at=None if ttl is None else self.clock.monotonic() + ttl,
        )
        self._adhoc.append(rule)
        self.bus.emit(StateChanged(self.clock.wall(), "rule_added", details={"rule": rule.id}))
        return rule

    def clear_rules(self) -> None:
        self._adhoc.clear()

    def decide(self, view: RequestView) -> Decision | None:
        if not self._adhoc:
            return None
        now = self.clock.monotonic()
        for rule in self._adhoc:
            if rule.expires_at is not None and now >= rule.expires_at:
                continue
            if rule.match is not None and not rule.match(view):
                continue
            if rule.probability < 1.0 and self.rng.random() >= rule.probability:
                continue
            return Decision("", "", rule.id, rule.faults)
        return None
