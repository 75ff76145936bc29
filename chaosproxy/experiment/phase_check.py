"""`during_phase` checks: the metric over a phase window with its interval, or (`compare_to`)
its ratio to another phase of the same run, decided PASS / FAIL / INCONCLUSIVE from the
interval. A comparison with the control group (`compare_to: control`) is `control.py`'s."""

from __future__ import annotations

import math
from collections.abc import Sequence

from chaosproxy.experiment import control
from chaosproxy.experiment.estimate import (
    decide,
    estimate,
    needed,
    ratio_estimate,
)
from chaosproxy.experiment.model import (
    DEFAULT_CONFIDENCE,
    CheckSpec,
)
from chaosproxy.experiment.numbers import fmt, fmt_interval
from chaosproxy.experiment.outcome import (
    INCONCLUSIVE,
    CheckResult,
    min_samples_of,
    unit_of,
    unit_of_metric,
)
from chaosproxy.experiment.series import Second

# ---------------------------------------------------------------- one check


def during(
    spec: CheckSpec,
    rows: Sequence[Second],
    phase: str,
    reference: float | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
    lag: float = 0.0,
    clients: Sequence[control.ClientRecord] | None = None,
) -> CheckResult:
    """The check over phase `phase`; `clients` is the proxy's per-client record (for
    `blast_radius`)."""
    window = [s for s in rows if s.phase == phase]
    if not window:
        return CheckResult(spec, INCONCLUSIVE, None, 0, f"phase {phase} never ran")
    if spec.metric == "blast_radius":
        return control.blast_radius(spec, window, phase, clients, confidence)
    if control.is_control(spec):
        return control.judge_control(spec, window, phase, confidence)
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
    if e.samples < min_samples_of(spec) or e.value is None:
        base.message = (
            f"too few {what} in {phase} ({e.samples} < {min_samples_of(spec)})"
            if e.samples < min_samples_of(spec)
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
    if not other or ref.samples < min_samples_of(spec) or ref.value is None:
        return CheckResult(
            spec,
            INCONCLUSIVE,
            None,
            min(mine.samples, ref.samples),
            f"too few samples in {spec.compare_to} to compare against "
            f"({ref.samples} < {min_samples_of(spec)})",
            confidence=confidence,
        )
    if mine.samples < min_samples_of(spec) or mine.value is None or ratio.value is None:
        return CheckResult(
            spec,
            INCONCLUSIVE,
            None,
            mine.samples,
            f"too few samples in {phase} ({mine.samples} < {min_samples_of(spec)})",
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
