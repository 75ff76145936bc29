"""Small factories for engine tests: scenarios from YAML text, a request view, an event log."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any

from multidict import CIMultiDict

from chaosproxy.common.clock import FakeClock
from chaosproxy.common.events import EventBus, StateChanged
from chaosproxy.config.loader import load_scenario_text
from chaosproxy.config.model import Scenario
from chaosproxy.engine.core import Engine
from chaosproxy.engine.load_signals import LoadSignals


@dataclass
class View:
    method: str = "GET"
    path: str = "/"
    query_string: str = ""
    headers: CIMultiDict[str] = field(default_factory=CIMultiDict)
    client_ip: str = "127.0.0.1"


def scenario(text: str, source: str = "test.yaml") -> Scenario:
    return load_scenario_text(textwrap.dedent(text), source)


@dataclass
class Rig:
    clock: FakeClock
    load: LoadSignals
    engine: Engine
    states: list[StateChanged]

    def kinds(self) -> list[str]:
        return [s.kind for s in self.states]

    def phase_changes(self) -> list[tuple[str, Any]]:
        return [(s.phase, s.details.get("cycle")) for s in self.states if s.kind == "phase_changed"]

    def rule_of(self, view: View | None = None) -> str | None:
        d = self.engine.decide(view or View())
        return None if d is None else d.rule


def rig(seed: int | None = None) -> Rig:
    clock = FakeClock()
    bus = EventBus()
    states: list[StateChanged] = []
    bus.subscribe(StateChanged, states.append)
    load = LoadSignals(clock)
    return Rig(clock, load, Engine(bus, clock, seed=seed, load=load), states)
