"""`halt: true` checks judged every second while the run goes on, so looking often does not
add false halts: an anytime-valid test for shares, alpha spent over the looks otherwise
(`inference.py`); a check against the control group spends alpha the same way
(`control.live_control_breach`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from chaosproxy.experiment import control, inference
from chaosproxy.experiment.estimate import (
    decide,
    point,
    tail_of,
)
from chaosproxy.experiment.model import (
    DEFAULT_HALT_FALSE_ALARM,
    CheckSpec,
)
from chaosproxy.experiment.numbers import fmt, fmt_interval
from chaosproxy.experiment.outcome import FAIL, CheckResult, min_samples_of, unit_of
from chaosproxy.experiment.phase_check import during
from chaosproxy.experiment.series import Second, merged

DEFAULT_HALT_ALPHA = DEFAULT_HALT_FALSE_ALARM


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
    if control.is_control(spec):
        spent = inference.spent_confidence(alpha, look)
        return control.live_control_breach(spec, window, spent, SPENT_MIN_SECONDS)
    if spec.source != "prometheus" and not spec.compare_to:
        v = merged(window, spec.source)
        tail = tail_of(spec, v, surely=True)  # a halt acts only on requests surely too slow
        if tail is not None:
            events, n, b = tail
            if n < min_samples_of(spec) or not inference.breached_anytime(events, n, b, alpha):
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
