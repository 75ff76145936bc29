"""The soak's judgement, pure functions over what the run collected: which client outcomes the
fault journal explains (`reconcile`), and whether a sampled resource grows (`judge_growth`).

Growth: over the second half of the run (the first half is warm-up: caches, pools, arenas and
the event ring fill) the least-squares slope times the window is the fitted growth; it fails
past an allowance of `floor + per_event * events in the window` (LIMITS says why each). A leak
happens per something (per request, per connection), so the allowance scales with how often
that something happened, never with how long the run was.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Outcomes, one byte per request.
PENDING, OK, STATUS, RESET, CLOSED, GARBAGE, TIMEOUT, CONNECT, BADBODY = range(9)
NAMES = ["pending", "ok", "status", "reset", "closed", "garbage", "timeout", "connect", "badbody"]


@dataclass(frozen=True)
class Limit:
    """Fitted growth allowed over the window: `floor` (what the metric moves by for reasons
    that are not a leak) plus `per_event` for every event of `events` in the window."""

    floor: float
    per_event: float
    events: str  # "requests" or "connections"
    why: str


LIMITS = {
    "rss_mib": Limit(
        4.0,
        1 / 2**20,
        "requests",
        "the heap grows in 1 MiB arenas and malloc trims lazily (floor: four steps); any "
        "object a leak keeps is 28 bytes or more, so a byte a request is one leaked object in "
        "~30 requests",
    ),
    "fds": Limit(
        8.0,
        1e-3,
        "connections",
        "fds move with client connections being re-opened after resets and with the upstream "
        "pool opening and idling out connections (floor); one fd per 1000 connections is a leak",
    ),
    "threads": Limit(
        2.0,
        0.0,
        "requests",
        "threads are fixed but for the reload worker pool, which may add one when two reloads "
        "overlap (a step of 1 in mid-window fits as 1.5)",
    ),
    "tasks": Limit(
        8.0,
        1e-3,
        "connections",
        "the proxy loop runs a task per client connection and per upstream connection plus a "
        "few, so tasks move with connections as fds do; one per 1000 connections is a leak",
    ),
}


def fitted_growth(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of the points times the time they span."""
    n = len(points)
    if n < 3:
        return 0.0
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    slope = sum((t - mt) * (v - mv) for t, v in points) / den if den else 0.0
    return slope * (points[-1][0] - points[0][0])


def judge_growth(rows: list[dict[str, float]]) -> dict[str, dict[str, Any]]:
    """Per metric: start/end/max, the fitted growth over the second half, its allowance."""
    if not rows:
        return {}
    half = rows[-1]["t"] / 2
    window = [r for r in rows if r["t"] >= half]
    out = {}
    for name, limit in LIMITS.items():
        vals = [r[name] for r in rows]
        pts = [(r["t"], r[name]) for r in window]
        events = window[-1][limit.events] - window[0][limit.events] if window else 0
        allowed = limit.floor + limit.per_event * events
        grown = fitted_growth(pts)
        if any(math.isnan(v) for v in vals):  # not measured is not "no growth"
            grown = math.inf
        out[name] = {
            "start": vals[0], "end": vals[-1], "max": max(vals),
            "window_start": pts[0][1] if pts else None,
            "growth": round(grown, 3), "allowed": round(allowed, 3), "grows": grown > allowed,
        }  # fmt: skip
    return out


def visible(fault: str, outcome: str) -> tuple[int, int | None] | None:
    """What a journaled fault did to the client: (outcome, status or None for any), or None
    when the client sees nothing but time (latency, pool waits)."""
    status = re.match(r"status=(\d+)", outcome)
    if status:  # error, rate_limit, stale_error
        return STATUS, int(status.group(1))
    if fault == "reset":
        return RESET, None
    if fault == "truncate":
        return CLOSED, None
    if fault == "malformed":
        return GARBAGE, None
    if fault in ("hang", "pool_exhaustion"):
        if outcome.endswith("error"):
            return STATUS, None
        if outcome.endswith("reset"):
            return RESET, None
        if outcome.endswith("close"):
            return CLOSED, None
    return None


def reconcile(
    outcomes: bytes, statuses: dict[int, int], journal: list[dict[str, Any]]
) -> tuple[Counter[str], list[str]]:
    """Explained failures by kind, and a line per request whose outcome no fault explains (or
    whose injected failure never showed)."""
    effects: dict[int, list[tuple[int, int | None]]] = {}
    strays = []
    for e in journal:
        rid = str(e.get("request_id", ""))
        if not rid.startswith("soak-") or not rid[5:].isdigit() or int(rid[5:]) >= len(outcomes):
            strays.append(f"journal entry for a request nobody sent: {json.dumps(e)[:200]}")
            continue
        effect = visible(str(e["fault"]), str(e["outcome"]))
        if effect is not None:
            effects.setdefault(int(rid[5:]), []).append(effect)
    explained: Counter[str] = Counter()
    bad = list(strays)
    for n, outcome in enumerate(outcomes):
        seen = effects.get(n, [])
        if outcome == OK and not seen:
            continue
        if len(seen) == 1:
            kind, status = seen[0]
            if outcome == kind and (status is None or statuses.get(n) == status):
                explained[NAMES[kind] if kind != STATUS else f"status {statuses[n]}"] += 1
                continue
        got = NAMES[outcome] + (f" {statuses[n]}" if n in statuses else "")
        faults = [e for e in journal if e.get("request_id") == f"soak-{n}"] if len(bad) < 20 else []
        bad.append(f"soak-{n}: client saw {got}; journal: {json.dumps(faults)[:300]}")
    return explained, bad


def read_journal(path: Path) -> list[dict[str, Any]]:
    files = sorted(path.parent.glob(path.name + ".*"), key=lambda p: -int(p.suffix[1:]))
    entries = []
    for f in [*files, path]:
        if f.exists():
            entries += [json.loads(line) for line in f.read_text().splitlines() if line]
    return entries
