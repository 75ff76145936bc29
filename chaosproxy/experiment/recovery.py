"""Time to recover, for `after_phase: P, within: W, for: F` (see `verdict.py`'s docstring):
the change point from a failing process to a healthy one after P ended, with its interval,
over the finest bins the data has; metrics that are not a share keep the one-second rule."""

from __future__ import annotations

import math
from collections.abc import Sequence

from chaosproxy.experiment import inference
from chaosproxy.experiment.estimate import (
    Estimate,
    estimate,
    point,
    proportion,
    share_bound,
    tail_of,
)
from chaosproxy.experiment.model import (
    DEFAULT_CONFIDENCE,
    CheckSpec,
)
from chaosproxy.experiment.numbers import fmt, fmt_interval
from chaosproxy.experiment.outcome import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    CheckResult,
    in_bound,
    min_samples_of,
    unit_of,
)
from chaosproxy.experiment.series import PhaseWindow, Second


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
    if samples < min_samples_of(spec):
        return CheckResult(
            spec,
            INCONCLUSIVE,
            None,
            samples,
            f"too few samples after {phase.name} ({samples} < {min_samples_of(spec)})",
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
                f"never recovered within {fmt(within, 'seconds')} after {phase.name} ended: "
                f"{spec.metric} {shown}, needed {spec.comparison} {fmt(spec.bound, unit)}"
            )
        else:
            r.message = (
                f"not recovered by the end of the run, {after[-1].t + 1 - end:.0f}s after "
                f"{phase.name}: too soon to tell recovery within {fmt(within, 'seconds')}"
            )
        return r
    r.recovered_after_s = round(rp.seconds, 3)
    r.recovered_lo, r.recovered_hi = round(rp.lo, 3), round(rp.hi, 3)
    when = f"{fmt(rp.seconds, 'seconds')} {fmt_interval(rp.lo, rp.hi, 'seconds')}"
    shown = f"{fmt(e.value, unit)} {fmt_interval(e.lo, e.hi, unit)}".rstrip()
    if rp.lo > within + 1e-9:
        r.status = FAIL
        r.message = (
            f"recovered only {when} after {phase.name} ended; the bound is {fmt(within, 'seconds')}"
        )
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
                f"recovered {when} after {phase.name} ended (within {fmt(within, 'seconds')}): "
                f"{spec.metric} then {shown} {spec.comparison} {fmt(spec.bound, unit)}"
            )
    else:
        r.message = (
            f"recovered {when} after {phase.name} ended: the {confidence:.0%} interval "
            f"straddles the {fmt(within, 'seconds')} bound"
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
                f"recovered {fmt(ttr, 'seconds')} after {phase.name} ended "
                f"(within {fmt(spec.within, 'seconds')}): "
                f"{spec.metric} {fmt(svalue, unit)} {spec.comparison} {fmt(spec.bound, unit)} "
                f"for {need}s"
                if passed
                else f"recovered only {ttr:.0f}s after {phase.name} ended; the bound is "
                f"{fmt(spec.within, 'seconds')}"
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
            f"{fmt(spec.within, 'seconds')} for {need}s",
            confidence=confidence,
        )
    return CheckResult(
        spec,
        FAIL,
        value,
        samples,
        f"never recovered within {fmt(spec.within, 'seconds')} after {phase.name} ended: "
        f"{spec.metric} "
        f"{fmt(value, unit)}, needed {spec.comparison} {fmt(spec.bound, unit)} for {need}s",
        confidence=confidence,
    )
