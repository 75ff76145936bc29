"""Latency sketches with a stated relative error: DDSketch's logarithmic mapping.

A sketch is a sparse `{key: count}`. A duration `x` goes to key `ceil(log_gamma x)` with
`gamma = (1 + eps) / (1 - eps)`, and a key stands for `2 gamma^k / (gamma + 1)`, which is
within `eps` of every duration in it (Masson, Rim & Lee, "DDSketch", VLDB 2019). With
eps = 1 % a quantile read from a sketch is within 1 % of a true order statistic, and sketches
merge by adding counts, so Locust workers' and several seconds' sketches add up exactly.

The load plugin (`loadgen/plugin.py`) repeats `key()` (it may run where chaosproxy is not
installed); a test holds the two equal.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Final

ACCURACY: Final = 0.01
GAMMA: Final = (1 + ACCURACY) / (1 - ACCURACY)
LOG_GAMMA: Final = math.log(GAMMA)
FLOOR: Final = 1e-6  # seconds: durations at or below this share one key


def key(seconds: float) -> int:
    return math.ceil(math.log(max(seconds, FLOOR)) / LOG_GAMMA)


def value(k: int) -> float:
    return 2 * GAMMA**k / (GAMMA + 1)


def lower(k: int) -> float:
    """The smallest duration that maps to key `k` (exclusive)."""
    return float(GAMMA ** (k - 1))


def add(into: dict[int, int], other: Mapping[int, int]) -> None:
    for k, c in other.items():
        into[k] = into.get(k, 0) + c


def count(sketch: Mapping[int, int]) -> int:
    return sum(sketch.values())


def at_rank(sketch: Mapping[int, int], rank: int) -> float | None:
    """The value of the `rank`-th smallest duration (1-based), within eps."""
    if rank < 1:
        return None
    seen = 0
    for k in sorted(sketch):
        seen += sketch[k]
        if seen >= rank:
            return value(k)
    return None


def at_ranks(sketch: Mapping[int, int], ranks: Iterable[int]) -> list[float | None]:
    """Several ranks in one pass (ranks in any order)."""
    wanted = sorted(set(ranks))
    found: dict[int, float] = {}
    seen = 0
    i = 0
    for k in sorted(sketch):
        seen += sketch[k]
        while i < len(wanted) and wanted[i] <= seen:
            if wanted[i] >= 1:
                found[wanted[i]] = value(k)
            i += 1
        if i == len(wanted):
            break
    return [found.get(r) for r in ranks]


def above(sketch: Mapping[int, int], bound: float) -> int:
    """How many durations exceed `bound` (keys wholly above it; a key straddling it counts as
    above when its representative value is)."""
    return sum(c for k, c in sketch.items() if value(k) > bound)
