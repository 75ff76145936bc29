"""The recorded data of a run: per-second `Second`s with two views (what the clients saw, what
the proxy saw), and the phase windows as the proxy ran them. Collection fills them
(`align.py`); estimates and the verdict read them."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from chaosproxy.common import sketch
from chaosproxy.faults.grpc_abort import GRPC_CODES
from chaosproxy.observe.stats import BOUNDS, quantile

_NB = len(BOUNDS) + 1


@dataclass
class View:
    """One second (or a window) of one point of view."""

    requests: int = 0
    failures: int = 0  # client: what Locust counted failed; proxy: 5xx and resets
    injected: int = 0  # proxy only
    hist: dict[int, int] = field(default_factory=dict)  # latency bucket index -> count
    retry_after: int = 0
    retried_early: int = 0
    retried_waited: int = 0
    # Client view only (the load plugin): latency sketch keys at 1 % relative error
    # (`sketch.py`), and requests and failures per tenth of the second they started in.
    sketch: dict[int, int] = field(default_factory=dict)
    tenths: dict[int, list[int]] = field(default_factory=dict)  # 0..9 -> [requests, failures]
    tcp_faults: int = 0  # proxy only: faults applied to TCP proxies' connections (no requests)
    grpc: dict[str, int] = field(default_factory=dict)  # gRPC calls by status name (OK, ...)

    def add(self, other: View) -> None:
        self.requests += other.requests
        self.failures += other.failures
        self.injected += other.injected
        self.tcp_faults += other.tcp_faults
        for k, v in other.hist.items():
            self.hist[k] = self.hist.get(k, 0) + v
        self.retry_after += other.retry_after
        self.retried_early += other.retried_early
        self.retried_waited += other.retried_waited
        for k, v in other.sketch.items():
            self.sketch[k] = self.sketch.get(k, 0) + v
        for d, (n, f) in other.tenths.items():
            slot = self.tenths.setdefault(d, [0, 0])
            slot[0] += n
            slot[1] += f
        for name, n in other.grpc.items():
            self.grpc[name] = self.grpc.get(name, 0) + n

    @property
    def error_rate(self) -> float | None:
        return self.failures / self.requests if self.requests else None

    def quantile(self, q: float) -> float | None:
        if not self.requests:
            return None
        if self.sketch:
            n = sketch.count(self.sketch)
            return sketch.at_rank(self.sketch, max(1, math.ceil(q * n)))
        hist = self.histogram()
        n = sum(hist)
        return quantile(hist, n, q) if n else None

    def histogram(self) -> list[int]:
        hist = [0] * _NB
        for k, v in self.hist.items():
            if 0 <= k < _NB:
                hist[k] += v
        return hist


@dataclass
class Second:
    t: int
    phase: str
    client: View = field(default_factory=View)
    proxy: View = field(default_factory=View)
    prom: dict[str, float] = field(default_factory=dict)  # check name -> value
    users: int | None = None
    # The same second split by cohort (`fault` / `control`, `control.py`) when the scenario
    # has a control group: the client view as the load labelled its users, the proxy view as
    # the proxy did. Empty: no split (no cohort, or a view that cannot tell).
    client_cohorts: dict[str, View] = field(default_factory=dict)
    proxy_cohorts: dict[str, View] = field(default_factory=dict)

    def cohort(self, source: str, name: str) -> View | None:
        """One cohort's view of this second, None when that view has no cohort split."""
        split = self.client_cohorts if source == "client" else self.proxy_cohorts
        if not split:
            return None
        return split.get(name) or View()


@dataclass(frozen=True)
class PhaseWindow:
    name: str
    start: float
    end: float
    has_rules: bool


def merged(seconds: Iterable[Second], source: str, cohort: str | None = None) -> View:
    """One view summed over seconds; with `cohort`, only that cohort's requests."""
    total = View()
    for s in seconds:
        if cohort is None:
            total.add(s.client if source == "client" else s.proxy)
        else:
            v = s.cohort(source, cohort)
            if v is not None:
                total.add(v)
    return total


def has_cohorts(seconds: Iterable[Second], source: str) -> bool:
    """Whether any of these seconds has a cohort split in that view."""
    return any(s.client_cohorts if source == "client" else s.proxy_cohorts for s in seconds)


# ---------------------------------------------------------------- saved runs (series.jsonl)

_VIEW_INTS = (
    "requests",
    "failures",
    "injected",
    "tcp_faults",
    "retry_after",
    "retried_early",
    "retried_waited",
)


def view_to_json(v: View) -> dict[str, object]:
    out: dict[str, object] = {k: getattr(v, k) for k in _VIEW_INTS if getattr(v, k)}
    if v.hist:
        out["hist"] = {str(k): c for k, c in sorted(v.hist.items())}
    if v.sketch:
        out["sketch"] = {str(k): c for k, c in sorted(v.sketch.items())}
    if v.tenths:
        out["tenths"] = {str(k): list(c) for k, c in sorted(v.tenths.items())}
    if v.grpc:
        out["grpc"] = dict(sorted(v.grpc.items()))
    return out


def view_from_json(doc: object) -> View:
    """A saved view; anything malformed raises ValueError (the caller names the line)."""
    if not isinstance(doc, dict):
        raise ValueError("a view must be an object")
    v = View()
    for k in _VIEW_INTS:
        setattr(v, k, _count(doc.get(k, 0)))
    v.hist = {int(k): _count(c) for k, c in _mapping(doc.get("hist")).items()}
    v.sketch = {int(k): _count(c) for k, c in _mapping(doc.get("sketch")).items()}
    for k, pair in _mapping(doc.get("tenths")).items():
        if not isinstance(pair, list) or len(pair) != 2 or not 0 <= int(k) <= 9:
            raise ValueError("tenths are [requests, failures] by tenth 0..9")
        v.tenths[int(k)] = [_count(pair[0]), _count(pair[1])]
    v.grpc = grpc_counts(doc.get("grpc"))
    return v


def grpc_counts(m: object) -> dict[str, int]:
    """`{gRPC status name: calls}` read from outside (a proxy's row, the plugin, a saved run):
    names other than gRPC's 17 are dropped, so what is kept stays bounded."""
    if m is None:
        return {}
    if not isinstance(m, dict):
        raise ValueError("gRPC statuses must be an object")
    return {str(k): _count(c) for k, c in m.items() if k in GRPC_CODES}


def second_to_json(s: Second) -> dict[str, object]:
    out: dict[str, object] = {"t": s.t, "phase": s.phase}
    if s.users is not None:
        out["users"] = s.users
    out["client"] = view_to_json(s.client)
    out["proxy"] = view_to_json(s.proxy)
    if s.prom:
        out["prom"] = dict(s.prom)
    if s.client_cohorts:
        out["client_cohorts"] = {k: view_to_json(v) for k, v in sorted(s.client_cohorts.items())}
    if s.proxy_cohorts:
        out["proxy_cohorts"] = {k: view_to_json(v) for k, v in sorted(s.proxy_cohorts.items())}
    return out


def second_from_json(doc: object) -> Second:
    if not isinstance(doc, dict) or not isinstance(doc.get("phase"), str):
        raise ValueError("a second must be an object with t and phase")
    prom = _mapping(doc.get("prom"))
    users = doc.get("users")
    return Second(
        _count(doc.get("t")),
        doc["phase"],
        view_from_json(doc.get("client", {})),
        view_from_json(doc.get("proxy", {})),
        {str(k): _finite(x) for k, x in prom.items()},
        None if users is None else _count(users),
        _cohorts(doc.get("client_cohorts")),
        _cohorts(doc.get("proxy_cohorts")),
    )


def _cohorts(doc: object) -> dict[str, View]:
    return {str(k): view_from_json(v) for k, v in _mapping(doc).items()}


def _mapping(x: object) -> dict[str, object]:
    if x is None:
        return {}
    if not isinstance(x, dict):
        raise ValueError("expected an object")
    return x


def _count(x: object) -> int:
    if isinstance(x, bool) or not isinstance(x, int) or x < 0:
        raise ValueError(f"expected a count, got {x!r}")
    return x


def _finite(x: object) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        raise ValueError(f"expected a finite number, got {x!r}")
    return float(x)
