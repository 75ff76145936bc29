"""Verdicts: pure functions over per-second series. No I/O, no clock: collection happens elsewhere.

A run is a list of `Second`s (one per Unix second, labelled with the phase in force as it began)
holding two views — what the clients saw (Locust) and what the proxy saw — plus any Prometheus
values. Each check becomes a `CheckResult`; `judge` adds the run-level rules: the baseline gate,
"no traffic reached the proxy", "the scenario injected nothing", halts and interruptions.

Time to recover, for `after_phase: P, within: W, for: F`: the seconds from the end of P to the
start of the first run of F consecutive seconds in bound (a second without samples is not in
bound: no evidence is not recovery). PASS when it is ≤ W; FAIL when no such run started within
W although the data covers W + F seconds; INCONCLUSIVE when the run ended too soon to tell.

Over 400 lines on purpose: one concept, the judgement. The run-level rules (baseline gate, no
traffic, nothing injected, halts) decide how each check's own rules (during a phase, time to
recover, INCONCLUSIVE limits) are read, and they are reviewed together against docs/experiments.md;
the collection that feeds them lives elsewhere (`collect.py`, `gather.py`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from chaosproxy.experiment import sketch
from chaosproxy.experiment.model import LATENCY, BaselineSpec, CheckSpec
from chaosproxy.stats import BOUNDS, quantile

PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"
WARMUP, COOLDOWN = "warmup", "cooldown"
_NB = len(BOUNDS) + 1
_DEFAULT_BASELINE = BaselineSpec()


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

    def add(self, other: View) -> None:
        self.requests += other.requests
        self.failures += other.failures
        self.injected += other.injected
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


@dataclass(frozen=True)
class PhaseWindow:
    name: str
    start: float
    end: float
    has_rules: bool


@dataclass
class CheckResult:
    spec: CheckSpec
    status: str
    value: float | None
    samples: int
    message: str
    recovered_after_s: float | None = None
    halted: bool = False

    @property
    def margin(self) -> float | None:
        if self.value is None or math.isinf(self.value):
            return None if self.value is None else -math.inf
        b = self.spec.bound
        return b - self.value if self.spec.comparison == "below" else self.value - b

    def to_json(self) -> dict[str, Any]:
        s = self.spec
        return {
            "name": s.name,
            "status": self.status,
            "metric": s.metric,
            "source": s.source,
            "query": s.prometheus.query if s.prometheus else None,
            "during_phase": s.during_phase,
            "after_phase": s.after_phase,
            "compare_to": s.compare_to,
            "comparison": s.comparison,
            "value": _num(self.value),
            "bound": s.bound,
            "margin": _num(self.margin),
            "unit": unit_of(s),
            "recovered_after_s": self.recovered_after_s,
            "within": s.within,
            "for": s.for_ if s.after_phase else None,
            "samples": self.samples,
            "halt": s.halt,
            "halted": self.halted,
            "message": self.message,
        }


@dataclass
class Verdict:
    status: str
    reasons: list[str]
    checks: list[CheckResult]
    phases: list[dict[str, Any]]
    baseline: str | None


def _num(x: float | None) -> float | None:
    if x is None:
        return None
    if math.isinf(x) or math.isnan(x):
        return None
    return round(x, 6)


def unit_of(spec: CheckSpec) -> str:
    """The unit of the check's judged value (a ratio to another phase is `x`)."""
    if spec.compare_to:
        return "x"
    return unit_of_metric(spec)


def unit_of_metric(spec: CheckSpec) -> str:
    """The unit of the metric itself."""
    if spec.metric == "retry_amplification":
        return "x"
    if spec.metric in LATENCY:
        return "seconds"
    if spec.metric == "throughput":
        return "req/s"
    if spec.source == "prometheus":
        return "value"
    return "ratio"


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "no data"
    if math.isinf(value):
        return "∞"
    if unit == "seconds":
        return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.2f}s"
    if unit == "ratio":
        return f"{value:.2%}" if value >= 0.0001 or value == 0 else f"{value:.4%}"
    if unit == "req/s":
        return f"{value:.1f} req/s"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:.4g}"


# ---------------------------------------------------------------- metrics over windows


def merged(seconds: Iterable[Second], source: str) -> View:
    total = View()
    for s in seconds:
        total.add(s.client if source == "client" else s.proxy)
    return total


def metric_value(
    spec: CheckSpec, seconds: Sequence[Second], reference: float | None = None
) -> tuple[float | None, int]:
    """The check's metric over `seconds`, and how many samples it rests on (requests, or data
    points for Prometheus). `reference` is the baseline throughput for retry_amplification."""
    if not seconds:
        return None, 0
    if spec.source == "prometheus":
        values = [s.prom[spec.name] for s in seconds if spec.name in s.prom]
        return (sum(values) / len(values) if values else None), len(values)
    v = merged(seconds, spec.source)
    m = spec.metric
    n = v.requests
    if m == "error_rate":
        return v.error_rate, n
    if m == "served":
        er = v.error_rate
        return (None if er is None else 1.0 - er), n
    if m in LATENCY:
        q = {"latency_p50": 0.50, "latency_p95": 0.95, "latency_p99": 0.99}[m]
        return v.quantile(q), n
    if m == "throughput":
        return n / len(seconds), n
    if m == "early_retry_share":
        judged = v.retried_early + v.retried_waited
        return (v.retried_early / judged if judged else None), judged
    if m == "retry_amplification":
        if not reference or not n:
            return None, n
        return amplification(seconds, reference), n
    raise ValueError(f"unknown metric {m!r}")


def amplification(seconds: Sequence[Second], reference: float) -> float:
    """Proxy requests per client request, against the same ratio in the baseline phase (so a
    load shape that adds users is not mistaken for retries). Without client data: proxy
    requests per second against the baseline's."""
    client = merged(seconds, "client").requests
    proxy = merged(seconds, "proxy").requests
    if client:
        return (proxy / client) / reference
    return (proxy / len(seconds)) / reference


def reference_rate(seconds: Sequence[Second]) -> float | None:
    """The baseline's proxy requests per client request (or per second without client data)."""
    if not seconds:
        return None
    client = merged(seconds, "client").requests
    proxy = merged(seconds, "proxy").requests
    if client:
        return proxy / client if proxy else None
    return proxy / len(seconds) if proxy else None


def in_bound(spec: CheckSpec, value: float | None) -> bool:
    if value is None:
        return False
    return value < spec.bound if spec.comparison == "below" else value > spec.bound


# ---------------------------------------------------------------- one check


def during(
    spec: CheckSpec,
    rows: Sequence[Second],
    phase: str,
    reference: float | None = None,
) -> CheckResult:
    window = [s for s in rows if s.phase == phase]
    if not window:
        return CheckResult(spec, INCONCLUSIVE, None, 0, f"phase {phase} never ran")
    value, n = metric_value(spec, window, reference)
    unit = unit_of(spec)
    if spec.compare_to:
        other = [s for s in rows if s.phase == spec.compare_to]
        ref_value, ref_n = metric_value(spec, other, reference)
        if not other or ref_n < _min(spec) or ref_value is None:
            return CheckResult(
                spec,
                INCONCLUSIVE,
                None,
                min(n, ref_n),
                f"too few samples in {spec.compare_to} to compare against ({ref_n} < {_min(spec)})",
            )
        if n < _min(spec) or value is None:
            return CheckResult(
                spec, INCONCLUSIVE, None, n, f"too few samples in {phase} ({n} < {_min(spec)})"
            )
        ratio = (1.0 if value == 0 else math.inf) if ref_value == 0 else value / ref_value
        ok = in_bound(spec, ratio)
        base = fmt(ref_value, unit_of_metric(spec))
        now = fmt(value, unit_of_metric(spec))
        msg = (
            f"{spec.metric} in {phase} {now} is {fmt(ratio, 'x')} of {spec.compare_to} "
            f"({base}); {spec.comparison} {fmt(spec.bound, 'x')}"
        )
        return CheckResult(spec, PASS if ok else FAIL, ratio, n, msg)
    if n < _min(spec) or value is None:
        what = "data points" if spec.source == "prometheus" else "requests"
        return CheckResult(
            spec,
            INCONCLUSIVE,
            value,
            n,
            f"too few {what} in {phase} ({n} < {_min(spec)})"
            if n < _min(spec)
            else f"no {spec.metric} in {phase}",
        )
    ok = in_bound(spec, value)
    msg = f"{spec.metric} in {phase} {fmt(value, unit)}; {spec.comparison} {fmt(spec.bound, unit)}"
    return CheckResult(spec, PASS if ok else FAIL, value, n, msg)


def _min(spec: CheckSpec) -> int:
    return 1 if spec.source == "prometheus" else spec.min_samples


def recovery(
    spec: CheckSpec,
    rows: Sequence[Second],
    phase: PhaseWindow,
    reference: float | None = None,
) -> CheckResult:
    """Time to recover after `phase` ended (see the module docstring)."""
    assert spec.within is not None
    unit = unit_of(spec)
    end = phase.end
    after = [s for s in rows if s.t >= math.ceil(end - 1e-6) and s.phase != phase.name]
    need = max(1, round(spec.for_))
    horizon = end + spec.within + need  # data up to here decides FAIL vs INCONCLUSIVE
    if not after:
        return CheckResult(spec, INCONCLUSIVE, None, 0, f"no data after {phase.name} ended")
    per_second = [metric_value(spec, [s], reference) for s in after]
    samples = sum(n for _, n in per_second)
    run = 0
    for i, (value, n) in enumerate(per_second):
        contiguous = i == 0 or after[i].t == after[i - 1].t + 1
        if not contiguous:
            run = 0
        ok = n > 0 and in_bound(spec, value)
        run = run + 1 if ok else 0
        if run == need:
            first = i - need + 1
            ttr = max(0.0, after[first].t - end)
            settled = after[first : i + 1]
            svalue, sn = metric_value(spec, settled, reference)
            if sum(n for _, n in per_second[: i + 1]) < _min(spec):
                return CheckResult(
                    spec,
                    INCONCLUSIVE,
                    svalue,
                    samples,
                    f"too few samples after {phase.name} ({samples} < {_min(spec)})",
                )
            passed = ttr <= spec.within + 1e-9
            msg = (
                f"recovered {ttr:.0f}s after {phase.name} ended (within {spec.within:.0f}s): "
                f"{spec.metric} {fmt(svalue, unit)} {spec.comparison} {fmt(spec.bound, unit)} "
                f"for {need}s"
            )
            if not passed:
                msg = (
                    f"recovered only {ttr:.0f}s after {phase.name} ended; the bound is "
                    f"{spec.within:.0f}s"
                )
            return CheckResult(spec, PASS if passed else FAIL, svalue, sn, msg, ttr)
    window = [s for s in after if s.t < horizon]
    value, _ = metric_value(spec, window, reference)
    covered = after[-1].t + 1 >= horizon
    if samples < _min(spec):
        return CheckResult(
            spec,
            INCONCLUSIVE,
            value,
            samples,
            f"too few samples after {phase.name} ({samples} < {_min(spec)})",
        )
    if not covered:
        return CheckResult(
            spec,
            INCONCLUSIVE,
            value,
            samples,
            f"the run ended {after[-1].t + 1 - end:.0f}s after {phase.name}: too soon to "
            f"tell recovery within {spec.within:.0f}s for {need}s",
        )
    return CheckResult(
        spec,
        FAIL,
        value,
        samples,
        f"never recovered within {spec.within:.0f}s after {phase.name} ended: {spec.metric} "
        f"{fmt(value, unit)}, needed {spec.comparison} {fmt(spec.bound, unit)} for {need}s",
        None,
    )


# ---------------------------------------------------------------- the run


def baseline_phase(phases: Sequence[PhaseWindow], spec: BaselineSpec) -> str | None:
    """The phase that shows the system before any fault: named, or the one before the first
    phase with rules (None when the scenario starts with faults)."""
    if spec.phase is not None:
        return spec.phase
    for i, p in enumerate(phases):
        if p.has_rules:
            return phases[i - 1].name if i > 0 else None
    return phases[0].name if phases else None


def phase_summary(
    rows: Sequence[Second], phase: PhaseWindow, reference: float | None
) -> dict[str, Any]:
    window = [s for s in rows if s.phase == phase.name]
    secs = len(window) or 1
    c = merged(window, "client")
    p = merged(window, "proxy")
    absorbed = max(0, p.injected - c.failures)
    amp = amplification(window, reference) if window and reference and p.requests else None
    judged = p.retried_early + p.retried_waited
    return {
        "name": phase.name,
        "start": phase.start,
        "end": phase.end,
        "has_rules": phase.has_rules,
        "seconds": len(window),
        "client": {
            "requests": c.requests,
            "failures": c.failures,
            "error_rate": _num(c.error_rate),
            "throughput": _num(c.requests / secs),
            "p50": c.quantile(0.50),
            "p95": c.quantile(0.95),
            "p99": c.quantile(0.99),
            "histogram": c.histogram(),
        },
        "proxy": {
            "requests": p.requests,
            "errors": p.failures,
            "error_rate": _num(p.error_rate),
            "injected": p.injected,
            "throughput": _num(p.requests / secs),
            "p50": p.quantile(0.50),
            "p95": p.quantile(0.95),
            "p99": p.quantile(0.99),
            "retry_after": p.retry_after,
            "retried_early": p.retried_early,
            "retried_after_waiting": p.retried_waited,
            "histogram": p.histogram(),
        },
        "resilience": {
            "injected": p.injected,
            "client_failures": c.failures,
            "absorbed": absorbed,
            "absorbed_share": _num(absorbed / p.injected) if p.injected else None,
        },
        "client_behaviour": {
            "retry_amplification": _num(amp),
            "early_retry_share": _num(p.retried_early / judged) if judged else None,
        },
    }


def judge(
    checks: Sequence[CheckSpec],
    rows: Sequence[Second],
    phases: Sequence[PhaseWindow],
    baseline: BaselineSpec = _DEFAULT_BASELINE,
    *,
    halted: str | None = None,
    interrupted: bool = False,
    problems: Sequence[str] = (),
) -> Verdict:
    """Every check, then the run-level rules, into one verdict."""
    base = baseline_phase(phases, baseline)
    base_rows = [s for s in rows if s.phase == base] if base else []
    reference = reference_rate(base_rows)
    by_name = {p.name: p for p in phases}
    ran = {s.phase for s in rows}
    reasons: list[str] = []

    # Phases whose rules never acted prove nothing about the checks that name them.
    idle: dict[str, str] = {}
    for p in phases:
        if not p.has_rules or p.name not in ran:
            continue
        v = merged([s for s in rows if s.phase == p.name], "proxy")
        if v.requests == 0:
            idle[p.name] = f"no traffic reached the proxy during {p.name}"
        elif v.injected == 0:
            idle[p.name] = f"phase {p.name} has rules but the scenario injected nothing"
    reasons.extend(idle.values())

    results: list[CheckResult] = []
    for spec in checks:
        if spec.during_phase is not None:
            r = during(spec, rows, spec.during_phase, reference)
        elif spec.after_phase not in ran:
            r = CheckResult(spec, INCONCLUSIVE, None, 0, f"phase {spec.after_phase} never ran")
        else:
            assert spec.after_phase is not None
            r = recovery(spec, rows, by_name[spec.after_phase], reference)
        if spec.name == halted:
            r.halted = True
            if r.status != FAIL:
                r.status = FAIL
            r.message = f"halted the run: {r.message}"
        elif spec.phase in idle and r.status != INCONCLUSIVE:
            r.status = INCONCLUSIVE
            r.message = f"{idle[spec.phase]}; {r.message}"
        results.append(r)

    gate = False
    if base is not None and base in ran:
        named = [r for r in results if r.spec.during_phase == base and r.status == FAIL]
        er = merged(base_rows, "client").error_rate
        if named:
            gate = True
            reasons.insert(
                0,
                f"the baseline phase {base} already breaks "
                + ", ".join(repr(r.spec.name) for r in named)
                + ": the system was unhealthy before any fault",
            )
        elif er is not None and er > baseline.error_rate_above:
            gate = True
            reasons.insert(
                0,
                f"the baseline phase {base} already had a client error rate of {er:.1%} "
                f"(above {baseline.error_rate_above:.0%}): the system was unhealthy before "
                "any fault",
            )
        elif not merged(base_rows, "client").requests and any(
            r.spec.source == "client" for r in results
        ):
            gate = True
            reasons.insert(0, f"no client requests completed in the baseline phase {base}")
    with_rules = [p for p in phases if p.has_rules and p.name in ran]
    if with_rules and all(p.name in idle for p in with_rules):
        gate = True  # a chaos run whose faults never fired proves nothing
    if halted:
        reasons.insert(0, f"halted: check {halted!r} breached while running; injection stopped")
    if interrupted:
        reasons.insert(0, "interrupted before the scenario finished")
    if problems:  # the run did not go as planned: what it measured cannot PASS
        gate = True
        reasons[0:0] = [f"the run did not go as planned: {p}" for p in problems]

    statuses = {r.status for r in results}
    if gate:
        status = INCONCLUSIVE
    elif FAIL in statuses:
        status = FAIL
    elif interrupted or INCONCLUSIVE in statuses or idle:
        status = INCONCLUSIVE
    else:
        status = PASS
    if status != PASS:
        reasons.extend(
            f"check {r.spec.name!r} is {r.status}: {r.message}"
            for r in results
            if r.status != PASS and not r.halted
        )
    summaries = [phase_summary(rows, p, reference) for p in phases]
    return Verdict(status, reasons, results, summaries, base)


def live_breach(
    spec: CheckSpec, rows: Sequence[Second], reference: float | None = None
) -> CheckResult | None:
    """For `halt: true` checks while the run goes on: the failing result when the phase so far
    already breaks the bound on enough samples, else None."""
    if spec.during_phase is None or not any(s.phase == spec.during_phase for s in rows):
        return None
    r = during(spec, rows, spec.during_phase, reference)
    return r if r.status == FAIL else None
