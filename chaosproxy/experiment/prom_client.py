"""The Prometheus HTTP API, read as hostile: one range query (`range_query`) as epoch second →
value, and the errors a check reports when Prometheus cannot answer.

Answers are bounded in size (`MAX_BODY`), malformed parts are skipped or raised as
`PrometheusError`, never a crash (docs/reports.md). A check judges one series, so a query that
returns several is an error naming the query and the count (aggregate it: `sum(...)`). What a
check does with the points (staleness, lag) is `prom_series.py`.
"""

from __future__ import annotations

import json
import math
from typing import Any

import aiohttp

from chaosproxy.common.errors import ChaosProxyError

MAX_BODY = 32 * 1024 * 1024  # bytes of one answer (Prometheus caps a range at 11,000 points)
MAX_MESSAGE = 300  # characters of Prometheus's own error message quoted in ours


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
            f"{endpoint}: query {clip(query, MAX_MESSAGE)!r} rejected (HTTP {status}, "
            f"{clip(str(doc.get('errorType', 'error')), 40)}): "
            f"{clip(str(doc.get('error', 'no details')), MAX_MESSAGE)}"
        )
    data: dict[str, Any] = doc["data"] if isinstance(doc.get("data"), dict) else {}
    result: list[Any] = data["result"] if isinstance(data.get("result"), list) else []
    if data.get("resultType") != "matrix":
        raise PrometheusQueryError(
            f"{endpoint}: query {clip(query, MAX_MESSAGE)!r} returned a "
            f"{clip(repr(data.get('resultType')), 40)}, not a range"
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


def clip(text: str, limit: int) -> str:
    """`text`, cut to `limit` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ts(t: float) -> str:
    return f"{t:.3f}"
