"""What judging a check yields: `CheckResult` (value, interval, three-valued status and the
sentence that says why), `Verdict` (all of them and the run-level reasons), and how a judged
number is written (`fmt`, `fmt_interval`, units). Shared by every kind of check (phase windows,
recovery, control group, halts), so none of them imports another to print a number."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chaosproxy.experiment.estimate import (
    estimate,
)
from chaosproxy.experiment.model import (
    DEFAULT_CONFIDENCE,
    DEFAULT_MIN_SAMPLES,
    LATENCY,
    BaselineSpec,
    CheckSpec,
)
from chaosproxy.experiment.series import PhaseWindow, Second

PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"
WARMUP, COOLDOWN = "warmup", "cooldown"


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
            "value": num(self.value),
            "bound": s.bound,
            "margin": num(self.margin),
            "unit": unit_of(s),
            "recovered_after_s": self.recovered_after_s,
            "within": s.within,
            "for": s.for_ if s.after_phase else None,
            "interval": [num(self.lo), num(self.hi)],
            "confidence": self.confidence,
            "needs_more_requests": self.needs,
            "recovered_after_interval": (
                [num(self.recovered_lo), num(self.recovered_hi)]
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


def num(x: float | None) -> float | None:
    if x is None:
        return None
    if math.isinf(x) or math.isnan(x):
        return None
    return round(x, 6)


def unit_of(spec: CheckSpec) -> str:
    """The unit of the check's judged value (a ratio to another phase is `x`; a share against
    the control group is a difference in `points`)."""
    if spec.compare_to == "control" and spec.metric in ("error_rate", "served"):
        return "points"
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


def min_samples_of(spec: CheckSpec) -> int:
    if spec.source == "prometheus" and spec.min_samples == DEFAULT_MIN_SAMPLES:
        return PROMETHEUS_MIN_POINTS
    return spec.min_samples


def baseline_phase(phases: Sequence[PhaseWindow], spec: BaselineSpec) -> str | None:
    """The phase that shows the system before any fault: named, or the one before the first
    phase with rules (None when the scenario starts with faults)."""
    if spec.phase is not None:
        return spec.phase
    for i, p in enumerate(phases):
        if p.has_rules:
            return phases[i - 1].name if i > 0 else None
    return phases[0].name if phases else None
