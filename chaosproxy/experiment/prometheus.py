"""Prometheus as a data source for checks: a range query read as one per-second series.

`range_query` asks a server's HTTP API (`/api/v1/query_range`) and returns epoch second →
value. A check judges one series, so a query that returns several is an error naming the query
and the count (aggregate it: `sum(...)`). Caveats (docs/reports.md): values exist only where
Prometheus scraped; `rate()` needs windows of at least four scrape intervals (with a 1 s scrape,
`[5s]`); a plain (non-rate) query repeats a series' last sample for up to the 5-minute lookback
when scrapes go missing, unless Prometheus marked the series stale; no data at all → an empty
dict, and the verdict for that check is INCONCLUSIVE.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp

from chaosproxy.errors import ChaosProxyError


class PrometheusError(ChaosProxyError):
    """Prometheus could not answer a query the experiment needs."""


class PrometheusUnreachable(PrometheusError):
    """No usable HTTP answer: refused, timed out, or not the Prometheus API."""


class PrometheusQueryError(PrometheusError):
    """Prometheus answered, but the query was rejected or its result is not one series."""


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
            try:
                doc = await resp.json(content_type=None)
            except ValueError:
                doc = None
    except TimeoutError:
        raise PrometheusUnreachable(f"{endpoint}: no answer within {timeout:g}s") from None
    except aiohttp.ClientError as e:
        raise PrometheusUnreachable(f"{endpoint}: {type(e).__name__}: {e}") from None
    if not isinstance(doc, dict):
        raise PrometheusUnreachable(
            f"{endpoint}: HTTP {status} without a Prometheus API answer (is this Prometheus?)"
        )
    if doc.get("status") != "success":
        raise PrometheusQueryError(
            f"{endpoint}: query {query!r} rejected (HTTP {status}, "
            f"{doc.get('errorType', 'error')}): {doc.get('error', 'no details')}"
        )
    data: dict[str, Any] = doc["data"] if isinstance(doc.get("data"), dict) else {}
    result: list[Any] = data["result"] if isinstance(data.get("result"), list) else []
    if data.get("resultType") != "matrix":
        raise PrometheusQueryError(
            f"{endpoint}: query {query!r} returned a {data.get('resultType')!r}, not a range"
        )
    if not result:
        return {}
    if len(result) > 1:
        raise PrometheusQueryError(
            f"query {query!r} returned {len(result)} series, a check needs exactly one: "
            "aggregate it (e.g. sum(...) or sum by () (...))"
        )
    out: dict[int, float] = {}
    for pair in result[0].get("values") or []:
        try:
            t, v = float(pair[0]), float(pair[1])
        except (TypeError, ValueError, IndexError):
            continue
        if math.isfinite(v):
            out[math.floor(t)] = v
    return out


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
