"""Would these checks cry wolf here? Each check judged many times on phases made of the
baseline's own seconds, resampled: how often it would FAIL with no fault at all."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from chaosproxy.experiment import inference
from chaosproxy.experiment.estimate import (
    reference_rate,
)
from chaosproxy.experiment.model import (
    DEFAULT_CONFIDENCE,
    LATENCY,
    BaselineSpec,
    CheckSpec,
)
from chaosproxy.experiment.outcome import FAIL, CheckResult, Verdict, baseline_phase
from chaosproxy.experiment.phase_check import during
from chaosproxy.experiment.recovery import recovery
from chaosproxy.experiment.series import PhaseWindow, Second

_DEFAULT_BASELINE = BaselineSpec()


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
    judged = [c for c in checks if c.phase != base and not _not_resampled(c)]
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


def _not_resampled(spec: CheckSpec) -> bool:
    """Blast radius reads clients, not seconds; a latency comparison with the control group
    bootstraps already (200 rounds of 300 resamples would take long): neither is estimated."""
    return spec.metric == "blast_radius" or (
        spec.compare_to == "control" and spec.metric in LATENCY
    )


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
        if spec.compare_to and spec.compare_to != "control":
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
