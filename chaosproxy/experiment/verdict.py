"""Verdicts: pure functions over per-second series. No I/O, no clock: collection happens elsewhere.

A run is a list of `Second`s (`series.py`: one per Unix second, labelled with the phase in force
as it began) holding what the clients saw (Locust), what the proxy saw, and any Prometheus
values. Each check becomes a `CheckResult` with its value, the interval around it and a
three-valued status decided from that interval (`estimate.py`, `inference.py`): PASS when the
interval lies inside the bound at the experiment's confidence, FAIL when it lies outside,
INCONCLUSIVE when it straddles (with the requests that would decide it) or rests on too little.

Time to recover, for `after_phase: P, within: W, for: F`: from the end of P, the most likely
moment the failing process became a healthy one (a change point over the finest bins the data
has: tenths of a second for the client view), with its interval, judged over W + F seconds.
PASS when the interval ends by W and the metric since is shown inside the bound; FAIL when it
starts after W, or nothing after P is back in bound; INCONCLUSIVE when it straddles W, the
metric since is not yet shown inside the bound, or the run ended too soon to tell.

`judge` adds the run-level rules: a run that did not go as planned, the baseline gate, "no
traffic reached the proxy", "the scenario injected nothing", halts and interruptions.
`live_breach` is the anytime-valid form for `halt: true` checks judged every second.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from chaosproxy.experiment import inference
from chaosproxy.experiment.estimate import (
    Estimate,
    amplification,
    decide,
    estimate,
    needed,
    point,
    proportion,
    quantile_estimate,
    ratio_estimate,
    reference_rate,
    share_bound,
    tail_of,
)
from chaosproxy.experiment.model import (
    DEFAULT_CONFIDENCE,
    DEFAULT_HALT_FALSE_ALARM,
    DEFAULT_MIN_SAMPLES,
    LATENCY,
    BaselineSpec,
    CheckSpec,
)
from chaosproxy.experiment.series import PhaseWindow, Second, View, merged

PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"
WARMUP, COOLDOWN = "warmup", "cooldown"
DEFAULT_HALT_ALPHA = DEFAULT_HALT_FALSE_ALARM
_DEFAULT_BASELINE = BaselineSpec()

__all__ = [
    "COOLDOWN",
    "FAIL",
    "INCONCLUSIVE",
    "PASS",
    "WARMUP",
    "CheckResult",
    "PhaseWindow",
    "Second",
    "Verdict",
    "View",
    "amplification",
    "judge",
    "live_breach",
    "merged",
    "reference_rate",
]


@dataclass
class CheckResult:
    spec: CheckSpec
    status: str
    value: float | None
    samples: int
    message: str
    recovered_after_s: float | None = None
    halted: bool = False
    lo: float | None = None  # the interval around `value`, each side at `confidence`
    hi: float | None = None
    confidence: float = DEFAULT_CONFIDENCE
    needs: int | None = None  # more requests that would decide an INCONCLUSIVE at this rate
    recovered_lo: float | None = None  # the interval around `recovered_after_s`
    recovered_hi: float | None = None
    false_alarm: dict[str, Any] | None = None  # how often it would FAIL on the baseline alone

    @property
    def margin(self) -> float | None:
        """How far inside the bound: for a recovery check (decided by its time) the time left,
        `within` - `recovered_after_s`, negative when late, None when it never recovered."""
        s = self.spec
        if s.after_phase is not None and s.within is not None:
            got = self.recovered_after_s
            return None if got is None else s.within - got
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
            "interval": [_num(self.lo), _num(self.hi)],
            "confidence": self.confidence,
            "needs_more_requests": self.needs,
            "recovered_after_interval": (
                [_num(self.recovered_lo), _num(self.recovered_hi)]
                if self.recovered_after_s is not None
                else None
            ),
            "false_alarm": self.false_alarm,
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
    confidence: float = DEFAULT_CONFIDENCE
    false_alarm: dict[str, Any] | None = None


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


def fmt_interval(lo: float | None, hi: float | None, unit: str) -> str:
    """`[lo, hi]`, an open side as `…`."""
    if lo is None and hi is None:
        return ""
    a = "…" if lo is None else fmt(lo, unit)
    b = "…" if hi is None else fmt(hi, unit)
    return f"[{a}, {b}]"


def metric_value(
    spec: CheckSpec, seconds: Sequence[Second], reference: float | None = None
) -> tuple[float | None, int]:
    """The check's metric over `seconds` and how many samples it rests on (no interval)."""
    e = estimate(spec, seconds, reference, DEFAULT_CONFIDENCE)
    return e.value, e.samples


def in_bound(spec: CheckSpec, value: float | None) -> bool:
    if value is None:
        return False
    return value < spec.bound if spec.comparison == "below" else value > spec.bound


PROMETHEUS_MIN_POINTS = 5  # unless the check sets min_samples


def _min(spec: CheckSpec) -> int:
    if spec.source == "prometheus" and spec.min_samples == DEFAULT_MIN_SAMPLES:
        return PROMETHEUS_MIN_POINTS
    return spec.min_samples


# ---------------------------------------------------------------- one check


def during(
    spec: CheckSpec,
    rows: Sequence[Second],
    phase: str,
    reference: float | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
    lag: float = 0.0,
) -> CheckResult:
    window = [s for s in rows if s.phase == phase]
    if not window:
        return CheckResult(spec, INCONCLUSIVE, None, 0, f"phase {phase} never ran")
    if lag > 0 and spec.source == "prometheus":
        # a range query's first `lag` seconds still average the phase before
        skip = window[0].t + math.ceil(lag)
        window = [s for s in window if s.t >= skip] or window[-1:]
    if spec.compare_to:
        return _compare(spec, rows, window, phase, reference, confidence, lag)
    e = estimate(spec, window, reference, confidence, lag)
    unit = unit_of(spec)
    what = "data points" if spec.source == "prometheus" else "requests"
    base = CheckResult(spec, INCONCLUSIVE, e.value, e.samples, "", lo=e.lo, hi=e.hi)
    base.confidence = confidence
    if e.samples < _min(spec) or e.value is None:
        base.message = (
            f"too few {what} in {phase} ({e.samples} < {_min(spec)})"
            if e.samples < _min(spec)
            else f"no {spec.metric} in {phase}"
        )
        return base
    status = decide(spec, e.lo, e.hi, spec.bound)
    shown = f"{fmt(e.value, unit)} {fmt_interval(e.lo, e.hi, unit)}".rstrip()
    lagged = f" (first {math.ceil(lag)}s of the phase left out: the query's range)" if lag else ""
    msg = f"{spec.metric} in {phase} {shown}; {spec.comparison} {fmt(spec.bound, unit)}{lagged}"
    if status is None:
        base.needs = needed(e, confidence) or None  # 0: the share decides, the rank bound not
        more = f"; needs about {base.needs} more {what} to decide" if base.needs else ""
        base.message = f"{msg}: the {confidence:.0%} interval straddles the bound{more}"
        return base
    base.status = status
    base.message = msg
    return base


def _compare(
    spec: CheckSpec,
    rows: Sequence[Second],
    window: Sequence[Second],
    phase: str,
    reference: float | None,
    confidence: float,
    lag: float = 0.0,
) -> CheckResult:
    other = [s for s in rows if s.phase == spec.compare_to]
    if lag > 0 and other:  # the other phase's first seconds lag too
        other = [s for s in other if s.t >= other[0].t + math.ceil(lag)] or other[-1:]
    mine, ref, ratio = ratio_estimate(spec, window, other, reference, confidence)
    if not other or ref.samples < _min(spec) or ref.value is None:
        return CheckResult(
            spec,
            INCONCLUSIVE,
            None,
            min(mine.samples, ref.samples),
            f"too few samples in {spec.compare_to} to compare against "
            f"({ref.samples} < {_min(spec)})",
            confidence=confidence,
        )
    if mine.samples < _min(spec) or mine.value is None or ratio.value is None:
        return CheckResult(
            spec,
            INCONCLUSIVE,
            None,
            mine.samples,
            f"too few samples in {phase} ({mine.samples} < {_min(spec)})",
            confidence=confidence,
        )
    unit = unit_of_metric(spec)
    if ref.value == 0:
        return CheckResult(
            spec,
            INCONCLUSIVE,
            None,
            mine.samples,
            f"{spec.metric} in {spec.compare_to} is 0: a ratio to nothing bounds nothing "
            f"({spec.metric} in {phase} {fmt(mine.value, unit)}); bound the metric itself",
            confidence=confidence,
        )
    status = decide(spec, ratio.lo, ratio.hi, spec.bound)
    msg = (
        f"{spec.metric} in {phase} {fmt(mine.value, unit)} is {fmt(ratio.value, 'x')} "
        f"{fmt_interval(ratio.lo, ratio.hi, 'x')} of {spec.compare_to} "
        f"({fmt(ref.value, unit)}); {spec.comparison} {fmt(spec.bound, 'x')}"
    )
    if status is None:
        msg += f": the {confidence:.0%} interval straddles the bound"
    return CheckResult(
        spec,
        status or INCONCLUSIVE,
        ratio.value,
        mine.samples,
        msg,
        lo=ratio.lo,
        hi=ratio.hi,
        confidence=confidence,
    )


def _bins(spec: CheckSpec, after: Sequence[Second]) -> list[inference.Bin] | None:
    """The data after a phase as bins of (requests, requests out of bound): tenths of a second
    where the client view has them, else seconds. None for metrics that are not a share."""
    if spec.source == "prometheus" or spec.compare_to:
        return None
    bins: list[inference.Bin] = []
    for s in after:
        v = s.client if spec.source == "client" else s.proxy
        tail = tail_of(spec, v)
        if tail is None:
            return None
        if spec.metric in ("error_rate", "served") and v.tenths:
            for d in sorted(v.tenths):
                n, f = v.tenths[d]
                bins.append(inference.Bin(s.t + d / 10, n, f))
        else:
            bins.append(inference.Bin(float(s.t), tail[1], tail[0]))
    return bins


def recovery(
    spec: CheckSpec,
    rows: Sequence[Second],
    phase: PhaseWindow,
    reference: float | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
    faulted: frozenset[str] = frozenset(),
) -> CheckResult:
    """Time to recover after `phase` ended (see the module docstring). The estimate and the
    claim "back in bound since" read on past W + F (more data, surer; a late recovery is
    reported when it came) until a phase in `faulted` other than the one right after P: when
    that starts before W + F, the run did not leave the time to tell."""
    assert spec.within is not None
    end = phase.end
    hold = max(1.0, spec.for_)
    horizon = end + spec.within + hold  # data up to here decides
    after: list[Second] = []
    for s in rows:
        if s.t < math.floor(end) or s.phase == phase.name:
            continue
        # The phase right after P is what the check is about (a rollback may fade its errors
        # out by rules of its own); a fault phase after that is not P's to recover from.
        if s.phase in faulted and after and s.phase != after[0].phase:
            break
        after.append(s)
    if not after:
        return CheckResult(spec, INCONCLUSIVE, None, 0, f"no data after {phase.name} ended")
    covered = after[-1].t + 1 >= horizon
    bins = _bins(spec, after)
    if bins is None:
        return _recovery_by_runs(spec, rows, phase, reference, confidence)
    b = share_bound(spec)
    assert b is not None  # _bins gave bins: the check is a share
    samples = sum(x.n for x in bins)
    unit = unit_of(spec)
    if samples < _min(spec):
        return CheckResult(
            spec,
            INCONCLUSIVE,
            None,
            samples,
            f"too few samples after {phase.name} ({samples} < {_min(spec)})",
            confidence=confidence,
        )
    rp = inference.recovery_point(bins, end, b, confidence)
    assert rp is not None
    settled = [s for s in after if s.t >= math.floor(end + rp.seconds)]
    e = _since(spec, settled, rp, reference, confidence)
    post_lo, _ = inference.wilson(rp.after_events, rp.after_n, confidence)
    r = CheckResult(
        spec,
        INCONCLUSIVE,
        e.value,
        samples,
        "",
        lo=e.lo,
        hi=e.hi,
        confidence=confidence,
    )
    within = spec.within
    if post_lo > b:  # still out of bound after the best split: never recovered here
        e_all = estimate(spec, after, reference, confidence)
        r.value, r.lo, r.hi = e_all.value, e_all.lo, e_all.hi
        shown = f"{fmt(e_all.value, unit)} {fmt_interval(e_all.lo, e_all.hi, unit)}".rstrip()
        if covered:
            r.status = FAIL
            r.message = (
                f"never recovered within {within:.0f}s after {phase.name} ended: "
                f"{spec.metric} {shown}, needed {spec.comparison} {fmt(spec.bound, unit)}"
            )
        else:
            r.message = (
                f"not recovered by the end of the run, {after[-1].t + 1 - end:.0f}s after "
                f"{phase.name}: too soon to tell recovery within {within:.0f}s"
            )
        return r
    r.recovered_after_s = round(rp.seconds, 3)
    r.recovered_lo, r.recovered_hi = round(rp.lo, 3), round(rp.hi, 3)
    when = f"{rp.seconds:.1f}s [{rp.lo:.1f}s, {rp.hi:.1f}s]"
    shown = f"{fmt(e.value, unit)} {fmt_interval(e.lo, e.hi, unit)}".rstrip()
    if rp.lo > within + 1e-9:
        r.status = FAIL
        r.message = f"recovered only {when} after {phase.name} ended; the bound is {within:.0f}s"
    elif rp.hi <= within + 1e-9:
        if after[-1].t + 1 < end + rp.hi + hold:
            r.message = (
                f"recovered {when} after {phase.name}, but the run ended before it held for "
                f"{hold:.0f}s"
            )
        elif inference.wilson(rp.after_events, rp.after_n, confidence)[1] >= b:
            # back in time, but not yet shown inside the bound since: not a PASS yet
            total = inference.needed_for_proportion(rp.after_events, rp.after_n, b, confidence)
            r.needs = None if total is None else max(0, total - rp.after_n)
            more = f": needs about {r.needs} more requests" if r.needs else ""
            r.message = (
                f"recovered {when} after {phase.name} ended, but {spec.metric} since, "
                f"{shown}, is not yet shown {spec.comparison} {fmt(spec.bound, unit)}{more}"
            )
        else:
            r.status = PASS
            r.message = (
                f"recovered {when} after {phase.name} ended (within {within:.0f}s): "
                f"{spec.metric} then {shown} {spec.comparison} {fmt(spec.bound, unit)}"
            )
    else:
        r.message = (
            f"recovered {when} after {phase.name} ended: the {confidence:.0%} interval "
            f"straddles the {within:.0f}s bound"
        )
    return r


def _since(
    spec: CheckSpec,
    settled: Sequence[Second],
    rp: inference.Recovery,
    reference: float | None,
    confidence: float,
) -> Estimate:
    """The metric since the recovery point: for error rate and served, exactly the requests
    after it (tenths); otherwise the seconds from the one it fell in."""
    if spec.metric in ("error_rate", "served") and spec.source == "client" and rp.after_n:
        rate, lo, hi = proportion(rp.after_events, rp.after_n, confidence)
        if spec.metric == "served":
            return Estimate(1 - (rate or 0.0), 1 - hi, 1 - lo, rp.after_n)
        return Estimate(rate, lo, hi, rp.after_n)
    return estimate(spec, settled, reference, confidence)


def _recovery_by_runs(
    spec: CheckSpec,
    rows: Sequence[Second],
    phase: PhaseWindow,
    reference: float | None,
    confidence: float,
) -> CheckResult:
    """For metrics that are not a share (throughput, amplification, Prometheus values): the
    start of the first run of `for` consecutive seconds in bound, at one-second resolution."""
    assert spec.within is not None
    unit = unit_of(spec)
    end = phase.end
    after = [s for s in rows if s.t >= math.ceil(end - 1e-6) and s.phase != phase.name]
    need = max(1, round(spec.for_))
    horizon = end + spec.within + need
    per_second = [(point(spec, [s], reference), s) for s in after]
    samples = sum(1 for v, _ in per_second if v is not None)
    run = 0
    for i, (value, _) in enumerate(per_second):
        if i and after[i].t != after[i - 1].t + 1:
            run = 0
        run = run + 1 if in_bound(spec, value) else 0
        if run == need:
            first = i - need + 1
            ttr = max(0.0, after[first].t - end)
            svalue = point(spec, after[first : i + 1], reference)
            passed = ttr <= spec.within + 1e-9
            msg = (
                f"recovered {ttr:.0f}s after {phase.name} ended (within {spec.within:.0f}s): "
                f"{spec.metric} {fmt(svalue, unit)} {spec.comparison} {fmt(spec.bound, unit)} "
                f"for {need}s"
                if passed
                else f"recovered only {ttr:.0f}s after {phase.name} ended; the bound is "
                f"{spec.within:.0f}s"
            )
            return CheckResult(
                spec,
                PASS if passed else FAIL,
                svalue,
                samples,
                msg,
                ttr,
                confidence=confidence,
                recovered_lo=max(0.0, ttr - 1),
                recovered_hi=ttr,
            )
    value = point(spec, [s for s in after if s.t < horizon], reference)
    covered = bool(after) and after[-1].t + 1 >= horizon
    if not after or not covered:
        return CheckResult(
            spec,
            INCONCLUSIVE,
            value,
            samples,
            f"the run ended too soon after {phase.name} to tell recovery within "
            f"{spec.within:.0f}s for {need}s",
            confidence=confidence,
        )
    return CheckResult(
        spec,
        FAIL,
        value,
        samples,
        f"never recovered within {spec.within:.0f}s after {phase.name} ended: {spec.metric} "
        f"{fmt(value, unit)}, needed {spec.comparison} {fmt(spec.bound, unit)} for {need}s",
        confidence=confidence,
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


def _view_summary(v: View, secs: int, confidence: float) -> dict[str, Any]:
    er, er_lo, er_hi = proportion(v.failures, v.requests, confidence)
    out: dict[str, Any] = {
        "requests": v.requests,
        "error_rate": _num(er),
        "error_rate_interval": [_num(er_lo), _num(er_hi)] if v.requests else None,
        "throughput": _num(v.requests / secs),
    }
    for name, q in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99)):
        val, lo, hi = quantile_estimate(v, q, confidence) if v.requests else (None,) * 3
        out[name] = val
        out[f"{name}_interval"] = [lo, hi] if val is not None else None
    out["histogram"] = v.histogram()
    return out


def phase_summary(
    rows: Sequence[Second],
    phase: PhaseWindow,
    reference: float | None,
    confidence: float = DEFAULT_CONFIDENCE,
) -> dict[str, Any]:
    window = [s for s in rows if s.phase == phase.name]
    secs = len(window) or 1
    c = merged(window, "client")
    p = merged(window, "proxy")
    absorbed = max(0, p.injected - c.failures)
    amp = amplification(window, reference) if window and reference and p.requests else None
    judged = p.retried_early + p.retried_waited
    client = _view_summary(c, secs, confidence)
    client["failures"] = c.failures
    proxy = _view_summary(p, secs, confidence)
    proxy.update(
        {
            "errors": p.failures,
            "injected": p.injected,
            "retry_after": p.retry_after,
            "retried_early": p.retried_early,
            "retried_after_waiting": p.retried_waited,
        }
    )
    resilience: dict[str, Any] = {
        "injected": p.injected,
        "client_failures": c.failures,
        "absorbed": absorbed,
        "absorbed_share": _num(absorbed / p.injected) if p.injected else None,
    }
    # "Absorbed" reads injected faults against client failures, which assumes the system calls
    # the dependency about as often per client request as in the baseline (one call each, when
    # there is no baseline). Far fewer calls (under half: a circuit breaker, a cache, routing
    # around an unhealthy dependency) and the two counts are about different requests: say what
    # was measured, and leave `absorbed` out. (A proxy that saw nothing all run is another
    # finding, the verdict's "no traffic reached the proxy".)
    per_request = reference if reference else 1.0
    fewer = c.requests and p.requests < 0.5 * per_request * c.requests
    if fewer and any(s.proxy.requests for s in rows):
        base = f" (the baseline: {reference:.2f} per client request)" if reference else ""
        resilience.update(
            {
                "absorbed": None,
                "absorbed_share": None,
                "proxy_requests": p.requests,
                "client_requests": c.requests,
                "note": f"the system stopped calling the dependency: {p.requests:,} proxy "
                f"requests for {c.requests:,} client requests{base}; absorbed is not computed "
                "(it assumes the clients' requests reach the dependency)",
            }
        )
    return {
        "name": phase.name,
        "start": phase.start,
        "end": phase.end,
        "has_rules": phase.has_rules,
        "seconds": len(window),
        "client": client,
        "proxy": proxy,
        "resilience": resilience,
        "client_behaviour": {
            "retry_amplification": _num(amp),
            "early_retry_share": _num(p.retried_early / judged) if judged else None,
        },
    }


def judge_check(
    spec: CheckSpec,
    rows: Sequence[Second],
    phases: Sequence[PhaseWindow],
    reference: float | None,
    confidence: float = DEFAULT_CONFIDENCE,
    lag: float = 0.0,
) -> CheckResult:
    """One check on its own, before the run-level rules."""
    if spec.during_phase is not None:
        return during(spec, rows, spec.during_phase, reference, confidence, lag)
    ran = {s.phase for s in rows}
    by_name = {p.name: p for p in phases}
    if spec.after_phase not in ran or spec.after_phase not in by_name:
        return CheckResult(
            spec,
            INCONCLUSIVE,
            None,
            0,
            f"phase {spec.after_phase} never ran",
            confidence=confidence,
        )
    faulted = frozenset(p.name for p in phases if p.has_rules and p.name != spec.after_phase)
    return recovery(spec, rows, by_name[spec.after_phase], reference, confidence, faulted)


def judge(
    checks: Sequence[CheckSpec],
    rows: Sequence[Second],
    phases: Sequence[PhaseWindow],
    baseline: BaselineSpec = _DEFAULT_BASELINE,
    *,
    halted: str | None = None,
    halted_at: float | None = None,
    interrupted: bool = False,
    problems: Sequence[str] = (),
    confidence: float = DEFAULT_CONFIDENCE,
    lags: dict[str, float] | None = None,
) -> Verdict:
    """Every check, then the run-level rules, into one verdict."""
    base = baseline_phase(phases, baseline)
    base_rows = [s for s in rows if s.phase == base] if base else []
    reference = reference_rate(base_rows)
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
        judged = rows
        if spec.name == halted and halted_at is not None:
            judged = [s for s in rows if s.t < int(halted_at)]  # up to the halt, not after it
        r = judge_check(spec, judged, phases, reference, confidence, (lags or {}).get(spec.name, 0))
        if spec.name == halted:
            r.halted = True
            r.status = FAIL  # decided while running by the anytime-valid test
            r.message = f"halted the run: {r.message}"
        elif spec.phase in idle and (
            r.status == PASS or (r.status == FAIL and spec.source != "client")
        ):
            # nothing was tested there; but clients failing is evidence whatever the proxy saw
            r.status = INCONCLUSIVE
            r.message = f"{idle[spec.phase]}; {r.message}"
        results.append(r)

    gate = False
    if base is not None and base in ran:
        named = [r for r in results if r.spec.during_phase == base and r.status == FAIL]
        bv = merged(base_rows, "client")
        er_lo, _ = inference.wilson(bv.failures, bv.requests, confidence)
        if named:
            gate = True
            reasons.insert(
                0,
                f"the baseline phase {base} already breaks "
                + ", ".join(repr(r.spec.name) for r in named)
                + ": the system was unhealthy before any fault",
            )
        elif bv.requests and er_lo > baseline.error_rate_above:
            gate = True
            reasons.insert(
                0,
                f"the baseline phase {base} already had a client error rate of "
                f"{bv.failures / bv.requests:.1%} (at least {er_lo:.1%} at {confidence:.0%} "
                f"confidence, above {baseline.error_rate_above:.0%}): the system was unhealthy "
                "before any fault",
            )
        elif not bv.requests and any(r.spec.source == "client" for r in results):
            gate = True
            reasons.insert(0, f"no client requests completed in the baseline phase {base}")
    with_rules = [p for p in phases if p.has_rules and p.name in ran]
    # A chaos run whose faults never fired proves nothing, unless clients failed anyway.
    nothing_fired = bool(with_rules) and all(p.name in idle for p in with_rules)
    if halted:
        reasons.insert(0, f"halted: check {halted!r} breached while running; injection stopped")
    if interrupted:
        reasons.insert(0, "interrupted before the scenario finished")
    if problems:  # the run did not go as planned: what it measured cannot PASS
        gate = True
        reasons[0:0] = [f"the run did not go as planned: {p}" for p in problems]

    statuses = {r.status for r in results}
    client_failed = any(r.status == FAIL and r.spec.source == "client" for r in results)
    if gate or (nothing_fired and not client_failed):
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
    summaries = [phase_summary(rows, p, reference, confidence) for p in phases]
    return Verdict(status, reasons, results, summaries, base, confidence)


# ---------------------------------------------------------------- while running


def live_breach(
    spec: CheckSpec,
    rows: Sequence[Second],
    reference: float | None = None,
    *,
    alpha: float = DEFAULT_HALT_ALPHA,
    look: int = 1,
) -> CheckResult | None:
    """For `halt: true` checks while the run goes on: the failing result once the phase so far
    breaks the bound beyond doubt, else None. A share (error rate, served, a latency quantile)
    uses the anytime-valid test, so looking every second keeps the chance of a false halt over
    the whole phase at most `alpha`; other metrics spend `alpha` over the looks (`look` is
    1-based)."""
    if spec.during_phase is None:
        return None
    window = [s for s in rows if s.phase == spec.during_phase]
    if not window:
        return None
    if spec.source != "prometheus" and not spec.compare_to:
        v = merged(window, spec.source)
        tail = tail_of(spec, v, surely=True)  # a halt acts only on requests surely too slow
        if tail is not None:
            events, n, b = tail
            if n < _min(spec) or not inference.breached_anytime(events, n, b, alpha):
                return None
            r = during(spec, rows, spec.during_phase, reference, 1 - alpha)
            r.status = FAIL
            r.message = (
                f"{r.message}; the evidence against the bound passed 1/{alpha:g} "
                f"(a false halt over the whole phase has probability ≤ {alpha:.0%})"
            )
            return r
    return _spent_breach(spec, rows, window, reference, inference.spent_confidence(alpha, look))


SPENT_MIN_SECONDS = 10  # a per-second mean needs this many seconds before it may halt


def _spent_breach(
    spec: CheckSpec,
    rows: Sequence[Second],
    window: Sequence[Second],
    reference: float | None,
    confidence: float,
) -> CheckResult | None:
    """A metric that is not a share, looked at once more: the mean of its per-second values
    (per second over the other phase's value, for `compare_to`) with a normal interval at the
    spent confidence. A bootstrap cannot reach the tails that spending asks for."""
    ref_value: float | None = 1.0
    if spec.compare_to:
        other = [s for s in rows if s.phase == spec.compare_to]
        ref_value = point(spec, other, reference)
        if not ref_value:
            return None
    values = [point(spec, [s], reference) for s in window]
    xs = [v / (ref_value or 1.0) for v in values if v is not None and math.isfinite(v)]
    k = len(xs)
    if k < SPENT_MIN_SECONDS:
        return None
    mean = sum(xs) / k
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (k - 1))
    half = inference.z_of(confidence) * sd / math.sqrt(k)
    if decide(spec, mean - half, mean + half, spec.bound) != FAIL:
        return None
    unit = unit_of(spec)
    return CheckResult(
        spec,
        FAIL,
        mean,
        k,
        f"{spec.metric} in {spec.during_phase} {fmt(mean, unit)} "
        f"{fmt_interval(mean - half, mean + half, unit)} over {k} seconds; {spec.comparison} "
        f"{fmt(spec.bound, unit)} (alpha spent over the looks)",
        lo=mean - half,
        hi=mean + half,
        confidence=confidence,
    )


# ---------------------------------------------------------------- would it cry wolf here?


def false_alarms(
    checks: Sequence[CheckSpec],
    rows: Sequence[Second],
    phases: Sequence[PhaseWindow],
    baseline: BaselineSpec = _DEFAULT_BASELINE,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    rounds: int = 200,
    seed: int = 0,
) -> dict[str, Any] | None:
    """How often these checks would FAIL on this system with no fault at all: each check is
    judged `rounds` times on phases made of the baseline's own seconds, resampled with
    replacement. None without a baseline of at least five seconds."""
    base = baseline_phase(phases, baseline)
    base_rows = [s for s in rows if s.phase == base] if base else []
    if len(base_rows) < 5:
        return None
    reference = reference_rate(base_rows)
    rng = random.Random(seed)
    lengths = {p.name: sum(1 for s in rows if s.phase == p.name) for p in phases}
    judged = [c for c in checks if c.phase != base]
    fails = {c.name: 0 for c in judged}
    any_fail = 0
    t0 = base_rows[0].t
    for _ in range(rounds):
        failed = False
        for spec in judged:
            r = _resampled(spec, base_rows, lengths, t0, rng, reference, confidence)
            if r is not None and r.status == FAIL:
                fails[spec.name] += 1
                failed = True
        any_fail += failed
    lo, hi = inference.wilson(any_fail, rounds, confidence)
    return {
        "rate": round(any_fail / rounds, 4),
        "interval": [round(lo, 4), round(hi, 4)],
        "rounds": rounds,
        "alpha": round(1 - confidence, 4),
        "baseline": base,
        "checks": {k: round(v / rounds, 4) for k, v in fails.items()},
        "warning": any_fail / rounds > 1 - confidence,
    }


def _resampled(
    spec: CheckSpec,
    base_rows: Sequence[Second],
    lengths: dict[str, int],
    t0: int,
    rng: random.Random,
    reference: float | None,
    confidence: float,
) -> CheckResult | None:
    """One check judged on a made-up run: its phase (and the one it compares to, and the
    seconds after a recovery phase) drawn from the baseline's seconds."""

    def draw(name: str, k: int, start: int) -> list[Second]:
        return [
            replace(base_rows[rng.randrange(len(base_rows))], t=start + i, phase=name)
            for i in range(k)
        ]

    if spec.during_phase is not None:
        k = max(1, lengths.get(spec.during_phase, 0) or len(base_rows))
        made = draw(spec.during_phase, k, t0)
        if spec.compare_to:
            made += draw(spec.compare_to, max(1, lengths.get(spec.compare_to, k)), t0 + k)
        return during(spec, made, spec.during_phase, reference, confidence)
    if spec.after_phase is None or spec.within is None:
        return None
    k = math.ceil(spec.within + max(1.0, spec.for_))
    made = draw("after", k, t0 + 1)
    window = PhaseWindow(spec.after_phase, float(t0), float(t0 + 1), True)
    return recovery(spec, made, window, reference, confidence)


def add_false_alarms(
    verdict: Verdict,
    checks: Sequence[CheckSpec],
    rows: Sequence[Second],
    phases: Sequence[PhaseWindow],
    baseline: BaselineSpec = _DEFAULT_BASELINE,
) -> Verdict:
    """The verdict with the false-alarm estimate, overall and per check (see false_alarms)."""
    fa = false_alarms(checks, rows, phases, baseline, confidence=verdict.confidence)
    verdict.false_alarm = fa
    if fa is not None:
        for r in verdict.checks:
            rate = fa["checks"].get(r.spec.name)
            if rate is not None:
                r.false_alarm = {"rate": rate, "rounds": fa["rounds"]}
    return verdict
