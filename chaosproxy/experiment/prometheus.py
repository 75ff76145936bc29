"""Prometheus as a data source for checks: a range query read as one per-second series.

`series_query` is what a check reads: the query's points (`range_query`: epoch second → value)
with what the verdict needs to trust them —

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
  from before it (an error ratio over `[5s]` reads 0.84 one second into a 100 % 5xx phase).

A check judges one series, so a query that returns several is an error naming the query and
the count (aggregate it: `sum(...)`). Values exist only where Prometheus scraped; `rate()` needs
windows of at least four scrape intervals (with a 1 s scrape, `[5s]`); no data at all → no
points, and the verdict for that check is INCONCLUSIVE. Answers are read as hostile: bounded in
size, malformed parts skipped or raised as `PrometheusError`, never a crash (docs/reports.md).
"""

from __future__ import annotations

import itertools
import json
import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from chaosproxy.common.errors import ChaosProxyError

MAX_BODY = 32 * 1024 * 1024  # bytes of one answer (Prometheus caps a range at 11,000 points)
MAX_MESSAGE = 300  # characters of Prometheus's own error message quoted in ours
MAX_SELECTORS = 8  # staleness queries per check; selectors past these are not checked
STALE_AFTER_SCRAPES = 2.0  # a sample older than this many scrape intervals (or steps) is stale
SPACING_LEAD = 60.0  # seconds before `start` the staleness queries also read, to see the spacing
LAG_CAP = 10 * 365 * 86400.0  # seconds: a longer range is as good as "everything lags"


class PrometheusError(ChaosProxyError):
    """Prometheus could not answer a query the experiment needs."""


class PrometheusUnreachable(PrometheusError):
    """No usable HTTP answer: refused, timed out, or not the Prometheus API."""


class PrometheusQueryError(PrometheusError):
    """Prometheus answered, but the query was rejected or its result is not one series."""


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
            notes.append(f"staleness not checked for {_clip(sel, 80)}, points kept: {e}")
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


# ---------------------------------------------------------------- reading PromQL

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_UNITS["y"] = 365 * 86400.0
_DURATION = re.compile(r"(?:[0-9]+(?:ms|s|m|h|d|w|y))+")
_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w|y)")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_NUMBER = re.compile(r"[0-9.][0-9A-Za-z_.]*")
_BRACKET = re.compile(r"\[([^\[\]]*)\]")
# Words that are PromQL syntax, not metric names.
_LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = _LABEL_LISTS | {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
    "and", "or", "unless", "bool", "atan2", "offset", "start", "end", "inf", "nan",
}  # fmt: skip


def parse_duration(text: str) -> float | None:
    """A PromQL duration (`5s`, `1m30s`, `250ms`) or a number of seconds, in seconds; None
    when it is neither (or absurdly long)."""
    text = text.strip()
    if _DURATION.fullmatch(text):
        value = sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(text))
    else:
        try:
            value = float(text)
        except ValueError:
            return None
    return value if math.isfinite(value) and 0 <= value <= LAG_CAP else None


def lag_seconds(query: str) -> float:
    """How far `query` reaches back before the time it is evaluated at: its largest range
    selector, a subquery counting its range plus its operand's (`rate(x[5s])` → 5,
    `max_over_time(x[30s:1s])` → 30, `x` → 0). `offset` and `@` are not counted."""
    text = _blank(query)
    reach: dict[int, float] = {}  # bracket position → seconds
    for m in _BRACKET.finditer(text):
        rng, colon, _ = m.group(1).partition(":")
        d = parse_duration(rng)
        if d is None:
            continue
        inner = 0.0
        j = _skip_space_back(text, m.start() - 1)
        if colon and j >= 0 and text[j] == ")":
            opened = _match_back(text, j)
            inner = max((r for p, r in reach.items() if opened < p < j), default=0.0)
        reach[m.start()] = min(d + inner, LAG_CAP)
    return max(reach.values(), default=0.0)


def instant_selectors(query: str) -> list[str]:
    """The query's instant vector selectors, as written (`x`, `x{a="b"}`, `{__name__="x"}`,
    and the operand of a subquery), without range selectors (`x[5s]`) and without selectors
    carrying `offset` or `@` (their samples are old on purpose). Best effort: a missed selector
    is not checked for staleness; a wrongly read one matches nothing and changes nothing."""
    text = _blank(query)
    n = len(text)
    out: list[str] = []
    i = 0
    while i < n:
        c = text[i]
        if c.isdigit() or (c == "." and i + 1 < n and text[i + 1].isdigit()):
            m = _NUMBER.match(text, i)
            i = m.end() if m else i + 1
        elif c.isascii() and (c.isalpha() or c in "_:"):
            m = _IDENT.match(text, i)
            assert m is not None
            word, j = m.group(), m.end()
            k = _skip_space(text, j)
            nxt = text[k] if k < n else ""
            if word.lower() in _LABEL_LISTS and nxt == "(":
                i = _match_forward(text, k) + 1
            elif word.lower() in _KEYWORDS or nxt == "(":
                i = j
            else:
                stop = _match_forward(text, k) + 1 if nxt == "{" else j
                i = _take_selector(query, text, i, stop, out)
        elif c == "{":
            i = _take_selector(query, text, i, _match_forward(text, i) + 1, out)
        elif c == "[":  # a subquery's range after a parenthesis: durations, not names
            close = text.find("]", i)
            i = n if close < 0 else close + 1
        else:
            i += 1
    return list(dict.fromkeys(out))


def _take_selector(query: str, text: str, begin: int, stop: int, out: list[str]) -> int:
    """Record query[begin:stop] unless a range or a modifier follows; where to scan on."""
    k = _skip_space(text, stop)
    resume = stop
    if k < len(text) and text[k] == "[":
        close = text.find("]", k)
        close = len(text) - 1 if close < 0 else close
        resume = close + 1
        if ":" not in text[k:close]:
            return resume  # a range selector: its window excludes old samples
        k = _skip_space(text, resume)
    if text.startswith("@", k) or re.match(r"offset\b", text[k : k + 7], re.IGNORECASE):
        return resume
    out.append(query[begin:stop].strip())
    return resume


def _blank(query: str) -> str:
    """`query` with string literals' contents and comments turned to spaces (same length),
    so brackets and braces inside them are not read as syntax."""
    chars = list(query)
    i, n = 0, len(query)
    while i < n:
        c = query[i]
        if c in "\"'`":
            j = i + 1
            while j < n and query[j] != c:
                j += 2 if c != "`" and query[j] == "\\" else 1
            for k in range(i + 1, min(j, n)):
                chars[k] = " "
            i = j + 1
        elif c == "#":
            j = query.find("\n", i)
            j = n if j < 0 else j
            for k in range(i, j):
                chars[k] = " "
            i = j
        else:
            i += 1
    return "".join(chars)


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _skip_space_back(text: str, i: int) -> int:
    while i >= 0 and text[i].isspace():
        i -= 1
    return i


def _match_forward(text: str, i: int) -> int:
    """The index of the bracket closing the one at `i` (the last index when unbalanced)."""
    close = {"(": ")", "{": "}", "[": "]"}[text[i]]
    depth = 0
    for j in range(i, len(text)):
        if text[j] == text[i]:
            depth += 1
        elif text[j] == close:
            depth -= 1
            if depth == 0:
                return j
    return len(text) - 1


def _match_back(text: str, i: int) -> int:
    """The index of the `(` opening the `)` at `i` (-1 when unbalanced)."""
    depth = 0
    for j in range(i, -1, -1):
        if text[j] == ")":
            depth += 1
        elif text[j] == "(":
            depth -= 1
            if depth == 0:
                return j
    return -1


# ---------------------------------------------------------------- the HTTP API


async def range_query(
    session: aiohttp.ClientSession,
    url: str,
    query: str,
    start: float,
    end: float,
    step: float = 1.0,
    timeout: float = 10.0,
) -> dict[int, float]:
    """Evaluate `query` from `start` to `end` every `step` seconds; epoch second (floor of the
    sample's timestamp) → value, without NaN and infinities (e.g. 0/0 in an error ratio)."""
    endpoint = url.rstrip("/") + "/api/v1/query_range"
    form = {"query": query, "start": _ts(start), "end": _ts(end), "step": f"{step:g}"}
    try:
        # POST keeps long PromQL out of the URL; the API accepts form-encoded parameters.
        async with session.post(
            endpoint, data=form, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as resp:
            status = resp.status
            body = bytearray()
            async for chunk in resp.content.iter_chunked(65536):
                body += chunk
                if len(body) > MAX_BODY:
                    raise PrometheusUnreachable(
                        f"{endpoint}: answer larger than {MAX_BODY:,} bytes"
                    )
    except TimeoutError:
        raise PrometheusUnreachable(f"{endpoint}: no answer within {timeout:g}s") from None
    except aiohttp.ClientError as e:
        raise PrometheusUnreachable(f"{endpoint}: {type(e).__name__}: {e}") from None
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        doc = None
    if not isinstance(doc, dict):
        raise PrometheusUnreachable(
            f"{endpoint}: HTTP {status} without a Prometheus API answer (is this Prometheus?)"
        )
    if doc.get("status") != "success":
        raise PrometheusQueryError(
            f"{endpoint}: query {_clip(query, MAX_MESSAGE)!r} rejected (HTTP {status}, "
            f"{_clip(str(doc.get('errorType', 'error')), 40)}): "
            f"{_clip(str(doc.get('error', 'no details')), MAX_MESSAGE)}"
        )
    data: dict[str, Any] = doc["data"] if isinstance(doc.get("data"), dict) else {}
    result: list[Any] = data["result"] if isinstance(data.get("result"), list) else []
    if data.get("resultType") != "matrix":
        raise PrometheusQueryError(
            f"{endpoint}: query {_clip(query, MAX_MESSAGE)!r} returned a "
            f"{_clip(repr(data.get('resultType')), 40)}, not a range"
        )
    if not result:
        return {}
    if len(result) > 1:
        raise PrometheusQueryError(
            f"query {query!r} returned {len(result)} series, a check needs exactly one: "
            "aggregate it (e.g. sum(...) or sum by () (...))"
        )
    values = result[0].get("values") if isinstance(result[0], dict) else None
    out: dict[int, float] = {}
    for pair in values if isinstance(values, list) else []:
        if not isinstance(pair, list) or len(pair) != 2:
            continue
        try:
            t, v = float(pair[0]), float(pair[1])
        except (TypeError, ValueError):
            continue
        if math.isfinite(t) and math.isfinite(v):
            out[math.floor(t)] = v
    return out


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ts(t: float) -> str:
    return f"{t:.3f}"


def phase_annotations(
    phases: Iterable[Mapping[str, Any]], scenario: str, run_id: str | None = None
) -> list[dict[str, Any]]:
    """Phase boundaries as results.json `annotations`: seconds, a title and tags
    (`chaosproxy`, `phase`, the phase name, the scenario, and `run:<id>` when given)."""
    out = []
    for p in phases:
        name = str(p.get("name", ""))
        tags = ["chaosproxy", "phase", name, f"scenario:{scenario}"]
        if run_id:
            tags.append(f"run:{run_id}")
        out.append(
            {
                "time": float(p["start"]),
                "end": float(p["end"]),
                "title": f"phase {name}",
                "tags": tags,
            }
        )
    return out


def grafana_annotations(annotations: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The same annotations in the shape Grafana's annotation API takes (`POST
    /api/annotations`): epoch milliseconds `time`/`timeEnd`, `text`, `tags`."""
    out = []
    for a in annotations:
        item: dict[str, Any] = {
            "time": round(float(a["time"]) * 1000),
            "text": str(a.get("title", "")),
            "tags": [str(t) for t in a.get("tags", [])],
        }
        if a.get("end") is not None:
            item["timeEnd"] = round(float(a["end"]) * 1000)
        out.append(item)
    return out
