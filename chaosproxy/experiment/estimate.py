"""A check's metric over a window of seconds, with its interval: what `verdict` decides on.

Every estimate says how sure it is (`inference.py` has the methods): Wilson bounds for
proportions, order-statistic bounds for latency quantiles, Poisson bounds for throughput, and a
seeded bootstrap over seconds for ratios. Each of `lo` and `hi` holds on its own at the
confidence asked for, so "hi below the bound" reads "at least that sure it is below".
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from chaosproxy.common import sketch
from chaosproxy.experiment import inference
from chaosproxy.experiment.model import LATENCY, CheckSpec
from chaosproxy.experiment.series import Second, View, merged
from chaosproxy.observe.stats import BOUNDS

QUANTILE = {"latency_p50": 0.50, "latency_p95": 0.95, "latency_p99": 0.99}
PROPORTIONS = ("error_rate", "served", "early_retry_share")


@dataclass(frozen=True)
class Estimate:
    value: float | None
    lo: float | None
    hi: float | None
    samples: int
    # As a proportion that must stay below a bound: (events, n, bound). Proportions, and
    # latency quantiles (the share of requests slower than the bound), have one; it gives the
    # anytime-valid halt and "needs about N more requests".
    tail: tuple[int, int, float] | None = None


def share_bound(spec: CheckSpec) -> float | None:
    """The check as "a share that must stay below b": b, or None when it is not a share."""
    m, b, below = spec.metric, spec.bound, spec.comparison == "below"
    if m in ("error_rate", "early_retry_share"):
        return b if below else None
    if m == "served":
        return None if below else 1 - b
    if m in LATENCY:
        return 1 - QUANTILE[m] if below else None
    return None


def tail_of(spec: CheckSpec, v: View, surely: bool = False) -> tuple[int, int, float] | None:
    """The check as "a share that must stay below b" over a view: (events, n, b), or None."""
    b = share_bound(spec)
    if b is None:
        return None
    m = spec.metric
    if m == "early_retry_share":
        return v.retried_early, v.retried_early + v.retried_waited, b
    if m in LATENCY:
        return slower_than(v, spec.bound, surely), v.requests, b
    return v.failures, v.requests, b


def slower_than(v: View, bound: float, surely: bool = False) -> int:
    """Requests slower than `bound`. A key or bucket that straddles the bound counts when its
    middle is above it; with `surely`, only when all of it is (what a halt may act on)."""
    if v.sketch:
        if surely:
            return sum(c for k, c in v.sketch.items() if sketch.lower(k) >= bound)
        return sketch.above(v.sketch, bound)
    out = 0
    for i, c in v.hist.items():
        lo = BOUNDS[i - 1] if 0 < i <= len(BOUNDS) else 0.0
        hi = BOUNDS[i] if i < len(BOUNDS) else math.inf
        mid = math.sqrt(lo * hi) if lo > 0 and math.isfinite(hi) else (hi if lo == 0 else lo)
        if (lo >= bound) if surely else (mid > bound):
            out += c
    return out


def proportion(x: int, n: int, confidence: float) -> tuple[float | None, float, float]:
    lo, hi = inference.wilson(x, n, confidence)
    return (x / n if n else None), lo, hi


def quantile_estimate(
    v: View, q: float, confidence: float
) -> tuple[float | None, float | None, float | None]:
    """(value, lo, hi) of the q-quantile of a view's durations."""
    if v.sketch:
        n = sketch.count(v.sketch)
        if not n:
            return None, None, None
        lo_r, hi_r = inference.quantile_ranks(n, q, confidence)
        rank = max(1, math.ceil(q * n))
        val, lo, hi = sketch.at_ranks(v.sketch, [rank, lo_r, hi_r or n])
        eps = sketch.ACCURACY
        return (
            val,
            None if lo is None else lo * (1 - eps),
            None if hi is None or hi_r is None else hi * (1 + eps),
        )
    hist = v.histogram()
    n = sum(hist)
    if not n:
        return None, None, None
    lo_r, hi_r = inference.quantile_ranks(n, q, confidence)
    rank = max(1, math.ceil(q * n))
    idx = _bucket_at_ranks(hist, [rank, lo_r, hi_r or n])
    top = [BOUNDS[min(i, len(BOUNDS) - 1)] for i in idx]
    bottom = BOUNDS[idx[1] - 1] if idx[1] > 0 else 0.0
    hi = top[2] if hi_r is not None and idx[2] < len(BOUNDS) else None
    return top[0], bottom, hi


def _bucket_at_ranks(hist: list[int], ranks: list[int]) -> list[int]:
    cum: list[int] = []
    seen = 0
    for c in hist:
        seen += c
        cum.append(seen)
    return [min(bisect.bisect_left(cum, r), len(hist) - 1) for r in ranks]


def estimate(
    spec: CheckSpec,
    seconds: Sequence[Second],
    reference: float | None,
    confidence: float,
    lag: float = 0.0,
) -> Estimate:
    """The metric over `seconds` with its interval. `reference` is the baseline's proxy
    requests per client request (retry_amplification); `lag` the Prometheus query's range."""
    if not seconds:
        return Estimate(None, None, None, 0)
    if spec.source == "prometheus":
        return _prometheus(spec, seconds, confidence, lag)
    v = merged(seconds, spec.source)
    m, n = spec.metric, v.requests
    tail = tail_of(spec, v)
    if m == "error_rate":
        val, lo, hi = proportion(v.failures, n, confidence)
        return Estimate(val, lo, hi, n, tail)
    if m == "served":
        val, lo, hi = proportion(v.failures, n, confidence)
        return Estimate(None if val is None else 1 - val, 1 - hi, 1 - lo, n, tail)
    if m == "early_retry_share":
        judged = v.retried_early + v.retried_waited
        val, lo, hi = proportion(v.retried_early, judged, confidence)
        return Estimate(val, lo, hi, judged, tail)
    if m in LATENCY:
        qv, qlo, qhi = quantile_estimate(v, QUANTILE[m], confidence)
        return Estimate(qv, qlo, qhi, n, tail)
    if m == "throughput":
        z = inference.z_of(confidence)
        k = len(seconds)
        return Estimate(
            n / k, max(0.0, n - z * math.sqrt(n)) / k, (n + z * math.sqrt(max(n, 1))) / k, n
        )
    if m == "retry_amplification":
        if not reference or not n:
            return Estimate(None, None, None, n)
        amp = amplification(seconds, reference)
        alo, ahi = inference.bootstrap(
            [seconds],
            lambda xs: amplification(xs, reference),
            confidence,
            seed=f"{spec.name}:amplification",
        )
        return Estimate(amp, alo, ahi, n)
    raise ValueError(f"unknown metric {m!r}")


def _prometheus(
    spec: CheckSpec, seconds: Sequence[Second], confidence: float, lag: float
) -> Estimate:
    """The mean of the points, its interval from their spread with the points of one range
    window counted as one (they share samples)."""
    values = [s.prom[spec.name] for s in seconds if spec.name in s.prom]
    if not values:
        return Estimate(None, None, None, 0)
    k = len(values)
    mean = sum(values) / k
    if k < 2:
        return Estimate(mean, None, None, k)
    sd = math.sqrt(sum((x - mean) ** 2 for x in values) / (k - 1))
    effective = max(1.0, k / max(1.0, lag))
    half = inference.z_of(confidence) * sd / math.sqrt(effective)
    return Estimate(mean, mean - half, mean + half, k)


def ratio_estimate(
    spec: CheckSpec,
    window: Sequence[Second],
    other: Sequence[Second],
    reference: float | None,
    confidence: float,
) -> tuple[Estimate, Estimate, Estimate]:
    """`compare_to`: (this phase, the other phase, their ratio with a bootstrap interval that
    resamples the seconds of both)."""
    mine = estimate(spec, window, reference, confidence)
    ref = estimate(spec, other, reference, confidence)
    if mine.value is None or ref.value is None:
        return mine, ref, Estimate(None, None, None, min(mine.samples, ref.samples))
    ratio = _ratio(mine.value, ref.value)
    lo, hi = _ratio_bootstrap(spec, window, other, reference, confidence)
    return mine, ref, Estimate(ratio, lo, hi, mine.samples)


def _ratio_bootstrap(
    spec: CheckSpec,
    window: Sequence[Second],
    other: Sequence[Second],
    reference: float | None,
    confidence: float,
) -> tuple[float | None, float | None]:
    """Percentile bounds of the ratio, resampling each phase's seconds within itself."""

    def ratio(a: Sequence[Second], b: Sequence[Second]) -> float | None:
        va, vb = point(spec, a, reference), point(spec, b, reference)
        return None if va is None or vb is None else _ratio(va, vb)

    return inference.bootstrap(
        [window, other], ratio, confidence, seed=f"{spec.name}:ratio", rounds=300
    )


def _ratio(value: float, ref: float) -> float:
    if ref == 0:
        return 1.0 if value == 0 else math.inf
    return value / ref


def point(spec: CheckSpec, seconds: Sequence[Second], reference: float | None) -> float | None:
    """The metric's value alone (no interval): cheap, for resampling."""
    if not seconds:
        return None
    if spec.source == "prometheus":
        values = [s.prom[spec.name] for s in seconds if spec.name in s.prom]
        return sum(values) / len(values) if values else None
    m = spec.metric
    if m in ("error_rate", "served", "throughput"):
        # counts only: summing them is far cheaper than merging sketches (bootstraps call this)
        n = f = 0
        for s in seconds:
            v = s.client if spec.source == "client" else s.proxy
            n, f = n + v.requests, f + v.failures
        if m == "throughput":
            return n / len(seconds)
        if not n:
            return None
        return f / n if m == "error_rate" else 1 - f / n
    v = merged(seconds, spec.source)
    if m in LATENCY:
        return v.quantile(QUANTILE[m])
    if m == "early_retry_share":
        judged = v.retried_early + v.retried_waited
        return v.retried_early / judged if judged else None
    if m == "retry_amplification":
        return amplification(seconds, reference) if reference and v.requests else None
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


def decide(spec: CheckSpec, lo: float | None, hi: float | None, bound: float) -> str | None:
    """PASS / FAIL when the interval lies on one side of the bound, else None (straddles)."""
    if spec.comparison == "below":
        if hi is not None and hi < bound:
            return "PASS"
        if lo is not None and lo > bound:
            return "FAIL"
        return None
    if lo is not None and lo > bound:
        return "PASS"
    if hi is not None and hi < bound:
        return "FAIL"
    return None


def needed(est: Estimate, confidence: float) -> int | None:
    """More requests that would decide a straddling proportion at its observed rate."""
    if est.tail is None:
        return None
    x, n, b = est.tail
    total = inference.needed_for_proportion(x, n, b, confidence)
    return None if total is None else max(0, total - n)
