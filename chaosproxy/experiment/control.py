"""Judging against a control group: `compare_to: control` and `metric: blast_radius`.

A phase comparison (`compare_to: steady`) blames the fault for anything else that changed over
time — a deploy, a noisy neighbour, cache warming, a load spike. When the scenario splits the
traffic into cohorts (a stable hash of each user: `fault` gets the faults, `control` never
does), the two cohorts live through the same seconds, so what differs between them in those
seconds is the fault's doing (Netflix's ChAP runs experiment and control this way; Kayenta
judges a canary against its baseline with a rank test).

- **error_rate / served**: the difference of two proportions, fault - control, with Newcombe's
  hybrid score interval (his method 10: Wilson bounds of each cohort combined by the square-root
  rule), each side holding at the experiment's confidence. The bound applies to the
  difference: `error_rate below: 0.01` = the fault cohort fails at most one point more often
  than the control cohort; `served above: -0.01` says the same from the other side.
- **latency_pXX**: the ratio of the quantile in the fault cohort to the control cohort's, with
  a bootstrap interval that resamples the phase's seconds — the same seconds for both cohorts,
  so whatever hit everyone in a second stays paired. A FAIL needs, besides the interval, the
  Mann-Whitney rank test (over the cohorts' latency sketches, mid-ranks for ties, with the tie
  correction) to find the fault cohort slower at the same confidence: a quantile of a few
  slow requests is noisy, the rank test reads every request.
- **blast_radius**: of the clients active in the phase, the share that received an injected
  fault at least once in it (the proxy's per-client record), with a Wilson interval over
  clients.

Each is three-valued like every check: PASS or FAIL when the interval lies on one side of the
bound, INCONCLUSIVE when it straddles (with the requests that would decide it) or rests on too
little.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

from chaosproxy.common.cohort import CONTROL, FAULT
from chaosproxy.experiment import inference
from chaosproxy.experiment.estimate import QUANTILE, decide
from chaosproxy.experiment.model import CONTROL_METRICS, DEFAULT_CONFIDENCE, LATENCY, CheckSpec
from chaosproxy.experiment.numbers import fmt, fmt_interval
from chaosproxy.experiment.outcome import FAIL, INCONCLUSIVE, CheckResult, min_samples_of, unit_of
from chaosproxy.experiment.series import Second, View, has_cohorts, merged

COHORTS = (FAULT, CONTROL)
BOOTSTRAP_ROUNDS = 300


def is_control(spec: CheckSpec) -> bool:
    return spec.compare_to == CONTROL


# ---------------------------------------------------------------- statistics


def newcombe(x1: int, n1: int, x2: int, n2: int, confidence: float) -> tuple[float, float, float]:
    """(p1 - p2, lower, upper): Newcombe's hybrid score interval for a difference of two
    proportions, each bound at `confidence` (one-sided, like every bound here). It keeps its
    coverage near 0 and 1, where the plain Wald interval collapses to a point."""
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = inference.wilson(x1, n1, confidence)
    l2, u2 = inference.wilson(x2, n2, confidence)
    d = p1 - p2
    lo = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, max(-1.0, lo), min(1.0, hi)


def needed_for_difference(
    x1: int, n1: int, x2: int, n2: int, bound: float, confidence: float
) -> int | None:
    """More requests (both cohorts, in their current proportion) that would put the
    difference's interval on one side of `bound` if both rates held; None when the difference
    sits on the bound."""
    if n1 <= 0 or n2 <= 0:
        return None
    d = x1 / n1 - x2 / n2
    if abs(d - bound) < 1e-12:
        return None

    def decided(k: float) -> bool:
        m1, m2 = max(1, round(n1 * k)), max(1, round(n2 * k))
        _, lo, hi = newcombe(round(x1 / n1 * m1), m1, round(x2 / n2 * m2), m2, confidence)
        return hi < bound or lo > bound

    hi_k = 1.0
    while not decided(hi_k):
        hi_k *= 2
        if hi_k > 1e7:
            return None
    lo_k = hi_k / 2 if hi_k > 1 else 1.0
    for _ in range(30):
        mid = (lo_k + hi_k) / 2
        if decided(mid):
            hi_k = mid
        else:
            lo_k = mid
    return max(0, math.ceil((n1 + n2) * (hi_k - 1)))


@dataclass(frozen=True)
class RankTest:
    """Mann-Whitney over two groups of durations: `superiority` is P(a slower than b), ties
    counted half; `p_slower` the one-sided p-value of "a is slower" (normal approximation with
    the tie correction), `p_faster` of "a is faster"."""

    u: float
    superiority: float
    p_slower: float
    p_faster: float


def mann_whitney(a: dict[int, int], b: dict[int, int]) -> RankTest | None:
    """The rank test on grouped data: durations as latency keys (a sketch's or a histogram's
    bucket index: both grow with the duration, which is all ranks need). Requests sharing a key
    are ties and get their mid-rank."""
    n1, n2 = sum(a.values()), sum(b.values())
    if n1 == 0 or n2 == 0:
        return None
    n = n1 + n2
    seen = 0
    r1 = 0.0
    ties = 0.0
    for k in sorted(set(a) | set(b)):
        ca, cb = a.get(k, 0), b.get(k, 0)
        t = ca + cb
        if not t:
            continue
        r1 += ca * (seen + (t + 1) / 2)
        ties += t**3 - t
        seen += t
    u = r1 - n1 * (n1 + 1) / 2
    mean = n1 * n2 / 2
    var = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))) if n > 1 else 0.0
    if var <= 0:  # every duration equal: no evidence either way
        return RankTest(u, u / (n1 * n2), 1.0, 1.0)
    sd = math.sqrt(var)
    phi = NormalDist().cdf
    p_slower = 1 - phi((u - mean - 0.5) / sd)
    p_faster = phi((u - mean + 0.5) / sd)
    return RankTest(u, u / (n1 * n2), p_slower, p_faster)


def latency_keys(v: View, other: View) -> tuple[dict[int, int], dict[int, int]]:
    """The two views' durations on one scale: the 1 % sketch when both have it, else the
    coarse histogram."""
    if v.sketch and other.sketch:
        return v.sketch, other.sketch
    return dict(v.hist), dict(other.hist)


# ---------------------------------------------------------------- the checks


def _no_split(spec: CheckSpec, phase: str, confidence: float) -> CheckResult:
    why = (
        "the load cannot label its users with the scenario's cohort (it splits by "
        "something other than X-Chaos-User)"
        if spec.source == "client"
        else "the proxy reported no cohort split (does the scenario define a cohort?)"
    )
    return CheckResult(
        spec,
        INCONCLUSIVE,
        None,
        0,
        f"no control group in the {spec.source} view during {phase}: {why}",
        confidence=confidence,
    )


def judge_control(
    spec: CheckSpec,
    window: Sequence[Second],
    phase: str,
    confidence: float = DEFAULT_CONFIDENCE,
) -> CheckResult:
    """`during_phase: P, compare_to: control`: the fault cohort against the control cohort in
    the same seconds of P."""
    if not has_cohorts(window, spec.source):
        return _no_split(spec, phase, confidence)
    f = merged(window, spec.source, FAULT)
    c = merged(window, spec.source, CONTROL)
    least = min_samples_of(spec)
    if f.requests < least or c.requests < least:
        return CheckResult(
            spec,
            INCONCLUSIVE,
            None,
            min(f.requests, c.requests),
            f"too few requests in {phase} to compare the cohorts (fault {f.requests}, "
            f"control {c.requests}; at least {least} each)",
            confidence=confidence,
        )
    if spec.metric in LATENCY:
        return _latency(spec, window, phase, f, c, confidence)
    return _proportion(spec, phase, f, c, confidence)


def _proportion(spec: CheckSpec, phase: str, f: View, c: View, confidence: float) -> CheckResult:
    d, lo, hi = newcombe(f.failures, f.requests, c.failures, c.requests, confidence)
    served = spec.metric == "served"
    if served:  # served: fault - control of the served shares, the same interval turned over
        d, lo, hi = -d, -hi, -lo
    status = decide(spec, lo, hi, spec.bound)
    unit = unit_of(spec)
    rf = 1 - f.error_rate if served and f.error_rate is not None else f.error_rate
    rc = 1 - c.error_rate if served and c.error_rate is not None else c.error_rate
    msg = (
        f"{spec.metric} in {phase}: fault cohort {fmt(rf, 'ratio')} of {f.requests:,}, control "
        f"{fmt(rc, 'ratio')} of {c.requests:,}; difference {fmt(d, unit)} "
        f"{fmt_interval(lo, hi, unit)}; {spec.comparison} {fmt(spec.bound, unit)}"
    )
    r = CheckResult(spec, status or INCONCLUSIVE, d, f.requests + c.requests, msg, lo=lo, hi=hi)
    r.confidence = confidence
    if status is None:
        # in error-rate terms: the bound on fault - control failures
        b = -spec.bound if served else spec.bound
        more = needed_for_difference(f.failures, f.requests, c.failures, c.requests, b, confidence)
        r.needs = more or None
        tail = f"; needs about {more:,} more requests to decide" if more else ""
        r.message = f"{msg}: the {confidence:.0%} interval straddles the bound{tail}"
    return r


def _latency(
    spec: CheckSpec,
    window: Sequence[Second],
    phase: str,
    f: View,
    c: View,
    confidence: float,
) -> CheckResult:
    q = QUANTILE[spec.metric]
    qf, qc = f.quantile(q), c.quantile(q)
    unit = "x"
    if qf is None or qc is None or qc <= 0:
        return CheckResult(
            spec, INCONCLUSIVE, None, f.requests + c.requests, f"no {spec.metric} in {phase}"
        )
    ratio = qf / qc
    source = spec.source

    def paired(seconds: Sequence[Second]) -> float | None:
        a = merged(seconds, source, FAULT).quantile(q)
        b = merged(seconds, source, CONTROL).quantile(q)
        return None if a is None or b is None or b <= 0 else a / b

    lo, hi = inference.bootstrap(
        [list(window)], paired, confidence, seed=f"{spec.name}:control", rounds=BOOTSTRAP_ROUNDS
    )
    a, b = latency_keys(f, c)
    rank = mann_whitney(a, b)
    status = decide(spec, lo, hi, spec.bound)
    alpha = 1 - confidence
    if status == FAIL and rank is not None:
        # the interval says worse; the rank test must agree that the fault cohort differs
        p = rank.p_slower if spec.comparison == "below" else rank.p_faster
        if p >= alpha:
            status = None
    shown = fmt_interval(lo, hi, unit)
    ranks = (
        f"; rank test: fault slower than control in {rank.superiority:.0%} of pairs "
        f"(p = {rank.p_slower:.3g})"
        if rank is not None
        else ""
    )
    msg = (
        f"{spec.metric} in {phase}: fault cohort {fmt(qf, 'seconds')}, control "
        f"{fmt(qc, 'seconds')}: {fmt(ratio, unit)} {shown} of control; {spec.comparison} "
        f"{fmt(spec.bound, unit)}{ranks}"
    )
    if status is None:
        msg += f": the {confidence:.0%} interval straddles the bound or the rank test disagrees"
    r = CheckResult(spec, status or INCONCLUSIVE, ratio, f.requests + c.requests, msg, lo=lo, hi=hi)
    r.confidence = confidence
    return r


# ---------------------------------------------------------------- blast radius


@dataclass(frozen=True)
class ClientRecord:
    """One client as the proxy saw it during a run (`GET /stats/clients`): its cohort ("" when
    the scenario has none), its first and last second, and the seconds in which it received an
    injected fault."""

    cohort: str
    first: int
    last: int
    hurt: tuple[int, ...] = ()


def blast_radius(
    spec: CheckSpec,
    window: Sequence[Second],
    phase: str,
    clients: Sequence[ClientRecord] | None,
    confidence: float = DEFAULT_CONFIDENCE,
) -> CheckResult:
    """The share of clients active in the phase that received an injected fault in it."""
    if clients is None:
        return CheckResult(
            spec,
            INCONCLUSIVE,
            None,
            0,
            "no per-client record from the proxy (GET /stats/clients): blast radius unknown",
            confidence=confidence,
        )
    t0, t1 = window[0].t, window[-1].t
    active = [c for c in clients if c.first <= t1 and c.last >= t0]
    hurt = [c for c in active if any(t0 <= h <= t1 for h in c.hurt)]
    n, x = len(active), len(hurt)
    least = min(spec.min_samples, 5) if spec.min_samples else 5
    if n < least:
        return CheckResult(
            spec,
            INCONCLUSIVE,
            None,
            n,
            f"too few clients active in {phase} ({n} < {least})",
            confidence=confidence,
        )
    lo, hi = inference.wilson(x, n, confidence)
    value = x / n
    status = decide(spec, lo, hi, spec.bound)
    by_cohort = ""
    if any(c.cohort for c in active):
        parts = []
        for name in COHORTS:
            mine = [c for c in active if c.cohort == name]
            if mine:
                k = sum(1 for c in hurt if c.cohort == name)
                parts.append(f"{name} {k}/{len(mine)}")
        by_cohort = f" ({', '.join(parts)})"
    msg = (
        f"blast radius in {phase}: {x} of {n} active clients hurt{by_cohort}, "
        f"{fmt(value, 'ratio')} {fmt_interval(lo, hi, 'ratio')}; {spec.comparison} "
        f"{fmt(spec.bound, 'ratio')}"
    )
    r = CheckResult(spec, status or INCONCLUSIVE, value, n, msg, lo=lo, hi=hi)
    r.confidence = confidence
    if status is None:
        total = inference.needed_for_proportion(x, n, spec.bound, confidence)
        r.needs = None if total is None else max(0, total - n) or None
        more = f"; needs about {r.needs} more clients to decide" if r.needs else ""
        r.message = f"{msg}: the {confidence:.0%} interval straddles the bound{more}"
    return r


# ---------------------------------------------------------------- while running


def live_control_breach(
    spec: CheckSpec, window: Sequence[Second], confidence: float, min_seconds: int
) -> CheckResult | None:
    """`halt: true` on a share against the control group, looked at once more: the
    difference's interval at the spent confidence (`inference.spent_confidence`), never before
    `min_seconds` seconds of the phase. The failing result, or None."""
    if len(window) < min_seconds or spec.metric not in ("error_rate", "served"):
        return None
    r = judge_control(spec, window, spec.during_phase or "", confidence)
    if r.status != FAIL:
        return None
    r.message += " (alpha spent over the looks)"
    return r


__all__ = [
    "CONTROL",
    "CONTROL_METRICS",
    "FAULT",
    "ClientRecord",
    "RankTest",
    "blast_radius",
    "judge_control",
    "live_control_breach",
    "mann_whitney",
    "newcombe",
]
