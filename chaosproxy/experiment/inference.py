"""How sure a verdict is: the statistics behind every judged number. Pure arithmetic, no I/O.

- **Proportions** (error rate, served, early retries): Wilson score bounds. Each bound holds on
  its own at the stated confidence, so "upper < bound" means "at least 95 % sure it is below".
- **Quantiles**: order statistics. Among n durations the q-quantile lies between the l-th and
  u-th smallest with the stated confidence (l, u from the binomial count of durations below
  it); the sketch's own 1 % is added on each side.
- **Anything else** (a ratio to another phase, retry amplification): a seeded bootstrap over
  seconds, so a re-judged run gets the same interval.
- **Halts while running**: an anytime-valid test. For a proportion that must stay below `b`,
  `M = Σ_j w_j · Π (p_j/b)^x ((1-p_j)/(1-b))^(1-x)` over a grid of rates p_j > b is a
  supermartingale under any true rate ≤ b, so by Ville's inequality it ever reaches `1/alpha` with
  probability ≤ alpha however often it is looked at (Robbins' mixture; Howard et al. 2021).
- **Time to recover**: the most likely moment a failing process turned into a healthy one (one
  change point in a Bernoulli sequence, maximum likelihood over bins as fine as the data), kept
  only when the likelihood ratio clears a threshold chosen by seeded simulation, with the
  profile-likelihood interval around it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

Interval = tuple[float | None, float | None]


@lru_cache(maxsize=64)
def z_of(confidence: float) -> float:
    """The one-sided normal quantile for `confidence` (0.95 → 1.645)."""
    return NormalDist().inv_cdf(confidence)


# ---------------------------------------------------------------- proportions


def wilson(x: int, n: int, confidence: float) -> tuple[float, float]:
    """Lower and upper Wilson bounds of a proportion x/n, each holding at `confidence`."""
    if n <= 0:
        return 0.0, 1.0
    z = z_of(confidence)
    p = x / n
    z2 = z * z
    denom = 1 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    lo = 0.0 if x <= 0 else max(0.0, center - half)
    hi = 1.0 if x >= n else min(1.0, center + half)
    return lo, hi


def needed_for_proportion(x: int, n: int, bound: float, confidence: float) -> int | None:
    """Requests in all that would put the interval on one side of `bound` if the observed rate
    held; None when the rate sits on the bound (no sample size decides it)."""
    if n <= 0:
        # no rate yet: what zero events would need to show it below the bound
        return needed_for_proportion(0, 1, bound, confidence)
    p = x / n
    if bound <= 0 or bound >= 1 or abs(p - bound) < 1e-12:
        return None

    def decided(m: int) -> bool:
        lo, hi = wilson(round(p * m), m, confidence)
        return hi < bound if p < bound else lo > bound

    hi_m = max(n, 1)
    while not decided(hi_m):
        hi_m *= 2
        if hi_m > 10**9:
            return None
    lo_m = hi_m // 2 if hi_m > n else n
    while lo_m + 1 < hi_m:
        mid = (lo_m + hi_m) // 2
        if decided(mid):
            hi_m = mid
        else:
            lo_m = mid
    return hi_m


# ---------------------------------------------------------------- quantiles


def quantile_ranks(n: int, q: float, confidence: float) -> tuple[int, int | None]:
    """1-based ranks (l, u) whose order statistics bound the q-quantile at `confidence` each;
    u is None when n is too small for an upper bound."""
    z = z_of(confidence)
    mean = n * q
    sd = math.sqrt(n * q * (1 - q))
    lo = max(1, math.floor(mean - z * sd))
    hi = math.ceil(mean + z * sd) + 1
    return lo, (hi if hi <= n else None)


# ---------------------------------------------------------------- bootstrap


def bootstrap(
    groups: Sequence[Sequence[object]],
    statistic: Callable[..., float | None],
    confidence: float,
    seed: str,
    rounds: int = 400,
) -> Interval:
    """Percentile bounds of `statistic(*groups)` over resamples of each group within itself
    (the seconds of one phase, or of two for a ratio), each bound at `confidence`; seeded by
    `seed`, so the same data gives the same interval."""
    if any(len(g) < 2 for g in groups):
        return None, None
    rng = random.Random(seed)
    values: list[float] = []
    for _ in range(rounds):
        v = statistic(*([g[rng.randrange(len(g))] for _ in g] for g in groups))
        if v is not None and not math.isnan(v):
            values.append(v)
    if len(values) < rounds // 2:
        return None, None
    values.sort()
    tail = 1 - confidence
    lo = values[max(0, math.floor(tail * len(values)))]
    hi = values[min(len(values) - 1, math.ceil((1 - tail) * len(values)) - 1)]
    return lo, hi


# ---------------------------------------------------------------- anytime-valid halts

_RATIOS = (1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 100.0)


@lru_cache(maxsize=256)
def _grid(bound: float) -> tuple[tuple[float, float, float], ...]:
    """(log(p/b), log((1-p)/(1-b)), log weight) for the alternative rates above `bound`."""
    rates = sorted({min(0.999, bound * r) for r in _RATIOS if bound * r < 1.0} | {0.999})
    rates = [p for p in rates if p > bound]
    if not rates:
        return ()
    w = -math.log(len(rates))
    return tuple((math.log(p / bound), math.log((1 - p) / (1 - bound)), w) for p in rates)


def log_evidence(events: int, n: int, bound: float) -> float:
    """log M: the evidence that a proportion exceeds `bound` (see the module docstring)."""
    if n <= 0 or not 0 < bound < 1:
        return -math.inf
    terms = [w + events * a + (n - events) * b for a, b, w in _grid(bound)]
    if not terms:  # no rate above the bound to weigh (a bound of 0.999 or more)
        return -math.inf
    top = max(terms)
    return top + math.log(sum(math.exp(t - top) for t in terms))


def breached_anytime(events: int, n: int, bound: float, alpha: float) -> bool:
    """True once the evidence reaches 1/alpha: a false alarm over the whole phase has probability
    at most alpha, however many times this is asked."""
    return log_evidence(events, n, bound) >= math.log(1 / alpha)


def spent_confidence(alpha: float, look: int) -> float:
    """The confidence for the `look`-th look (1-based) of a check judged repeatedly with an
    ordinary interval: alpha/(k(k+1)) summed over all looks is alpha."""
    return 1 - alpha / (look * (look + 1))


# ---------------------------------------------------------------- time to recover


@dataclass(frozen=True)
class Bin:
    """Requests that started in [t, t + width): how many, and how many broke the bound's
    condition (failed, or were slower than a latency bound)."""

    t: float
    n: int
    events: int


@dataclass(frozen=True)
class Recovery:
    seconds: float  # the estimated moment, after the phase end, from which it was healthy
    lo: float
    hi: float
    changed: bool  # a failing stretch was found (else it looked healthy from the start)
    after_n: int  # requests from the estimate to the end of the window
    after_events: int


# Log-likelihood ratio a change must clear: chosen by seeded simulation of healthy systems at
# half the bound (docs/experiments.md, "How sure is a verdict") so a noise burst reads as a
# change in about 1 % of runs.
CHANGE_THRESHOLD = 6.0


def _ll(s: int, n: int) -> float:
    if n <= 0 or s <= 0 or s >= n:
        return 0.0
    p = s / n
    return s * math.log(p) + (n - s) * math.log(1 - p)


def _best_change(bins: Sequence[Bin], bound: float) -> tuple[int, float, list[float]]:
    """The cut (index of the first bin after it) that best splits `bins` into a stretch above
    `bound` then a better one, its log-likelihood ratio, and every cut's."""
    total_n = sum(b.n for b in bins)
    total_s = sum(b.events for b in bins)
    base = _ll(total_s, total_n)
    n1 = s1 = 0
    best_i, best = 0, 0.0
    llr = [0.0] * (len(bins) + 1)
    for i, b in enumerate(bins):
        n1 += b.n
        s1 += b.events
        n2, s2 = total_n - n1, total_s - s1
        if n1 and s1 / n1 > bound and (n2 == 0 or s1 / n1 > s2 / n2):
            v = _ll(s1, n1) + _ll(s2, n2) - base
            llr[i + 1] = v
            if v > best:
                best_i, best = i + 1, v
    return best_i, best, llr


def recovery_point(
    bins: Sequence[Bin], start: float, bound: float, confidence: float
) -> Recovery | None:
    """When a proportion that must stay below `bound` recovered, after `start`. From the
    start: while what follows is out of bound (its lower bound above `bound`), or a failing
    stretch stands out (a change clearing CHANGE_THRESHOLD), move past the most likely change.
    `changed` False with `after_n`/`after_events` out of bound: it never recovered here."""
    bins = [b for b in bins if b.n > 0]
    if not bins:
        return None
    slack = z_of(confidence) ** 2 / 2
    cut, lo_i, hi_i, changed = 0, 0, 0, False
    while cut < len(bins):
        rest = bins[cut:]
        post_n = sum(b.n for b in rest)
        post_s = sum(b.events for b in rest)
        out = wilson(post_s, post_n, confidence)[0] > bound
        i, best, llr = _best_change(rest, bound)
        if best < CHANGE_THRESHOLD or i == 0 or i >= len(rest):
            if out:
                return Recovery(max(0.0, rest[-1].t - start), 0.0, 0.0, False, post_n, post_s)
            if not changed:  # healthy from the start: nearly-significant cuts widen it
                near = [j for j, v in enumerate(llr) if v >= CHANGE_THRESHOLD - slack]
                hi_i = max(near, default=0)
            break
        plausible = [j for j, v in enumerate(llr) if v >= best - slack] or [i]
        lo_i, hi_i = cut + min(plausible), cut + max(plausible)
        cut += i
        changed = True

    def at(j: int) -> float:
        return max(0.0, bins[min(j, len(bins) - 1)].t - start)

    after = bins[cut:]
    if not changed:  # healthy from the first request on: that is recovery at once
        return Recovery(0.0, 0.0, at(hi_i) if hi_i else 0.0, False, after_n(after), after_s(after))
    return Recovery(
        at(cut),
        at(lo_i),
        max(at(hi_i + 1), at(cut)),  # one bin on: the last failing bin may show no failure
        changed,
        after_n(after),
        after_s(after),
    )


def after_n(bins: Sequence[Bin]) -> int:
    return sum(b.n for b in bins)


def after_s(bins: Sequence[Bin]) -> int:
    return sum(b.events for b in bins)
