"""The scenario model: typed, frozen, built once from YAML by `config.loader`.

This is the contract between the loader (YAML → model, all structural validation) and the engine
(model → compiled rules; fault parameters are validated there by the fault registry). Every node
keeps the key path it came from (`phases[1].rules[0]`); `Scenario.locations` maps key paths to
file positions so errors found later (fault parameters) still name file, line and column.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Loc:
    file: str
    line: int  # 1-based; 0 when unknown
    col: int  # 1-based


@dataclass(frozen=True, slots=True)
class FieldCond:
    """A condition on one header or query parameter: exactly one of equals/regex/present."""

    name: str
    equals: str | None = None
    regex: str | None = None
    present: bool | None = None  # True: must be present; False: must be absent


@dataclass(frozen=True, slots=True)
class CohortSpec:
    """`match: {cohort: {share, by}}`: the clients whose position (`common/cohort.py`) is below
    `share`. `by` is `client` (the proxy's client identity), `address` or `header <Name>`."""

    share: float
    by: str = "client"

    @property
    def header(self) -> str | None:
        """The header named by `by: header <Name>`, else None."""
        kind, _, name = self.by.partition(" ")
        return name if kind == "header" else None


@dataclass(frozen=True, slots=True)
class MatchSpec:
    """All given conditions must hold. Empty fields mean "any"."""

    methods: tuple[str, ...] = ()  # upper-case
    path: str | None = None  # glob: `*` one segment, `**` any depth
    path_regex: str | None = None
    host: str | None = None  # glob on the Host header, port ignored
    headers: tuple[FieldCond, ...] = ()
    query: tuple[FieldCond, ...] = ()
    user_agent: str | None = None  # a regex, or a preset name: mobile | desktop | bot
    client_ip: tuple[str, ...] = ()  # CIDRs (single addresses allowed)
    cohort: CohortSpec | None = None  # a share of the clients, the same ones all run long
    tcp: str | None = None  # a TCP proxy's name: the rule acts on its connections (docs/tcp.md)
    grpc: GrpcMatch | None = None  # gRPC calls (content-type application/grpc*) to a service/method


@dataclass(frozen=True, slots=True)
class GrpcMatch:
    """`grpc: {service: pkg.Service, method: Get}`: globs (`*`) on the two parts of a gRPC
    call's path `/pkg.Service/Method`; an absent part matches any."""

    service: str | None = None
    method: str | None = None


@dataclass(frozen=True, slots=True)
class Ramp:
    """A probability ramped linearly from `start` to `end` across the phase."""

    start: float
    end: float


@dataclass(frozen=True, slots=True)
class When:
    """Load conditions: the rule applies only while the signal is above the bound."""

    inflight_above: int | None = None
    rps_above: float | None = None
    window: float = 5.0  # seconds, for rps_above


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One fault as written: its registry name and raw parameters (validated by the engine)."""

    name: str
    params: Any
    path: str  # key path of the fault's mapping, e.g. phases[1].rules[0].fault


@dataclass(frozen=True, slots=True)
class Outcome:
    """One weighted alternative of a rule: the faults applied together when it is drawn."""

    weight: float
    faults: tuple[FaultSpec, ...]


@dataclass(frozen=True, slots=True)
class Counting:
    """Count-based patterns over the requests a rule matches (1-based counts)."""

    first: int | None = None  # only the first N matching requests are faulted
    every: int | None = None  # every Nth matching request is faulted
    after: int | None = None  # faulted once N matching requests have passed


@dataclass(frozen=True, slots=True)
class RuleSpec:
    id: str  # the rule's `name`, or its key path when unnamed
    path: str  # key path, e.g. phases[1].rules[0]
    match: MatchSpec = MatchSpec()
    probability: float | Ramp = 1.0
    when: When | None = None
    counting: Counting | None = None
    outcomes: tuple[Outcome, ...] = ()  # one outcome of weight 1 for a plain `fault:`
    continue_: bool = False  # `continue: true`: later rules are evaluated too


@dataclass(frozen=True, slots=True)
class PhaseSpec:
    name: str
    duration: float  # seconds
    path: str
    rules: tuple[RuleSpec, ...] = ()
    description: str = ""  # a note for readers, written back by `scenarios show`


@dataclass(frozen=True, slots=True)
class AbortIf:
    """Blast-radius brake: stop injecting when the proxy-observed signal stays above a bound."""

    error_rate_above: float | None = None  # fraction 0..1 of responses that are errors
    p99_above: float | None = None  # seconds
    window: float = 10.0  # seconds the bound must be exceeded


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    phases: tuple[PhaseSpec, ...]
    rules: tuple[RuleSpec, ...] = ()  # scenario-wide: apply in every phase, after phase rules
    seed: int | None = None
    repeat: int | None = 1  # how many times the phases run; None = forever
    max_duration: float | None = None  # seconds; injection stops by itself after it
    max_active_faults: int | None = None  # concurrent faulted requests at most
    abort_if: AbortIf | None = None
    source: str = "<input>"  # file the scenario came from
    locations: Mapping[str, Loc] = field(default_factory=dict, compare=False, repr=False)

    @property
    def cycle_duration(self) -> float:
        return sum(p.duration for p in self.phases)

    @property
    def total_duration(self) -> float | None:
        """None when the scenario repeats forever."""
        return None if self.repeat is None else self.cycle_duration * self.repeat

    def locate(self, path: str) -> Loc:
        """The position of `path`, or of its nearest enclosing key that has one."""
        return locate(self.locations, path, self.source)


def locate(locations: Mapping[str, Loc], path: str, source: str) -> Loc:
    """The position of key `path`, or of its nearest enclosing key that has one."""
    p = path
    while p:
        loc = locations.get(p)
        if loc is not None:
            return loc
        cut = max(p.rfind("."), p.rfind("["))
        p = p[:cut] if cut > 0 else ""
    return Loc(source, 0, 0)
