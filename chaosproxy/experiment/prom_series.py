"""Prometheus as a data source for checks: a range query read as one per-second series.

`series_query` is what a check reads: the query's points (`prom_client.range_query`: epoch
second → value) with what the verdict needs to trust them —

- **staleness**: a plain (non-rate) query repeats a series' last sample for up to the 5-minute
  lookback when scrapes stop and Prometheus wrote no staleness marker (samples with explicit
  timestamps, federation, remote write, a Prometheus restart). For every instant selector in
  the query (`x`, `{job="a"}`, the operand of a subquery; not `x[5s]`, whose window already
  excludes old samples) it also asks `min(timestamp(<selector>))` over the same range, and
  keeps a point at second t only when that oldest underlying sample is at or after `start` and
  newer than t - 2 * max(step, the scrape spacing seen in those timestamps). A staleness query
  that fails keeps the points and says so in `notes`;
- **lag**: how far the query reaches back before the second it is evaluated at — its largest
  range selector (`rate(x[5s])` → 5 s; a subquery's range plus what its operand reaches back,
  `max_over_time(rate(x[5s])[30s:1s])` → 35 s). The first `lag` seconds of a window read data
  from before it (an error ratio over `[5s]` reads 0.84 one second into a 100 % 5xx phase);
  `promql.py` reads both the selectors and the lag from the query text.

Values exist only where Prometheus scraped; `rate()` needs windows of at least four scrape
intervals (with a 1 s scrape, `[5s]`); no data at all → no points, and the verdict for that
check is INCONCLUSIVE.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import aiohttp

from chaosproxy.experiment.prom_client import PrometheusError, clip, range_query
from chaosproxy.experiment.promql import instant_selectors, lag_seconds

MAX_SELECTORS = 8  # staleness queries per check; selectors past these are not checked
STALE_AFTER_SCRAPES = 2.0  # a sample older than this many scrape intervals (or steps) is stale
SPACING_LEAD = 60.0  # seconds before `start` the staleness queries also read, to see the spacing


@dataclass(frozen=True)
class PromSeries:
    """One check's series, ready for the verdict.

    `points`: epoch second → value, stale points already dropped. `lag`: seconds the query
    reaches back (its largest range window), so the first `lag` seconds of a window read data
    from before it. `stale_dropped`: points dropped as stale. `notes`: what could not be
    checked (a failed staleness query), one sentence each."""

    points: dict[int, float]
    lag: float = 0.0
    stale_dropped: int = 0
    notes: tuple[str, ...] = ()


async def series_query(
    session: aiohttp.ClientSession,
    url: str,
    query: str,
    start: float,
    end: float,
    step: float = 1.0,
    timeout: float = 10.0,
) -> PromSeries:
    """`range_query` with stale points dropped and the query's lag (see the module docstring).
    Raises what `range_query` raises for the query itself; a failed staleness query is a note."""
    lag = lag_seconds(query)
    points = await range_query(session, url, query, start, end, step, timeout)
    if not points:
        return PromSeries({}, lag)
    notes: list[str] = []
    selectors = instant_selectors(query)
    if len(selectors) > MAX_SELECTORS:
        notes.append(
            f"staleness checked for the first {MAX_SELECTORS} of {len(selectors)} selectors only"
        )
        selectors = selectors[:MAX_SELECTORS]
    # The same step grid, started earlier: enough timestamps to see the scrape spacing.
    lead = step * math.ceil(SPACING_LEAD / step)
    stamps: list[dict[int, float]] = []
    for sel in selectors:
        try:
            stamps.append(
                await range_query(
                    session, url, f"min(timestamp({sel}))", start - lead, end, step, timeout
                )
            )
        except PrometheusError as e:
            notes.append(f"staleness not checked for {clip(sel, 80)}, points kept: {e}")
    kept, dropped = drop_stale(points, stamps, start, step)
    return PromSeries(kept, lag, dropped, tuple(notes))


def drop_stale(
    points: Mapping[int, float],
    stamps: Sequence[Mapping[int, float]],
    start: float,
    step: float = 1.0,
) -> tuple[dict[int, float], int]:
    """`points` without those resting on stale samples, and how many were dropped.

    `stamps` holds, per instant selector of the query, second → timestamp of its oldest
    sample in use at that second. A point at t is stale when, for any selector with a timestamp
    at t, that timestamp is before `start` or at/before t - STALE_AFTER_SCRAPES * max(step,
    scrape spacing); the spacing is the median gap between the selector's distinct timestamps.
    A selector without a timestamp at t (e.g. the absent side of `x or vector(0)`) says
    nothing about it."""
    limits = [(s, STALE_AFTER_SCRAPES * max(step, scrape_spacing(s.values()))) for s in stamps if s]
    kept: dict[int, float] = {}
    for t, v in points.items():
        fresh = True
        for s, max_age in limits:
            ts = s.get(t)
            if ts is not None and (ts < start or ts <= t - max_age):
                fresh = False
                break
        if fresh:
            kept[t] = v
    return kept, len(points) - len(kept)


def scrape_spacing(timestamps: Iterable[float]) -> float:
    """The median gap between distinct sample timestamps (0 with fewer than two)."""
    distinct = sorted(set(timestamps))
    gaps = [b - a for a, b in itertools.pairwise(distinct)]
    return statistics.median(gaps) if gaps else 0.0
