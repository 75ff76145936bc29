"""How a check is shown, in every report and the console's final table: its value with its
interval, its bound, the window it judged, how far inside its bound it landed, its time to
recover and what more data would decide. Numbers are written by `fmt.py`."""

from __future__ import annotations

import math
from typing import Any

from chaosproxy.experiment.numbers import NO_DATA
from chaosproxy.experiment.report.fmt import duration, estimate, pair, value
from chaosproxy.experiment.report.results_dir import number

COMPARISON = {"below": "<", "above": ">"}


def check_estimate(c: dict[str, Any]) -> str:
    """A check's judged value with its interval."""
    return estimate(c.get("value"), pair(c.get("interval")), c.get("unit"))


def recovered_estimate(check: dict[str, Any]) -> str:
    """'4.3 s [4.1 s, 4.5 s]', 'never' (a FAIL), a dash (no time: not decided), or '' for a
    check that is not about recovery."""
    if not check.get("after_phase"):
        return ""
    got = number(check.get("recovered_after_s"))
    if got is None:  # 'never' is a finding; an undecided check may just lack the data
        return "never" if check.get("status") == "FAIL" else NO_DATA
    return estimate(got, pair(check.get("recovered_after_interval")), None, duration)


def allowed(check: dict[str, Any]) -> str:
    """'(≤ 30 s)' for a recovery check with a `within`, else ''."""
    within = number(check.get("within"))
    return f"(≤ {duration(within)})" if check.get("after_phase") and within is not None else ""


def recovered(check: dict[str, Any]) -> str:
    """'4.3 s [4.1 s, 4.5 s] (≤ 30 s)', 'never (≤ 30 s)', or '' for a check that is not about
    recovery."""
    got = recovered_estimate(check)
    limit = allowed(check)
    return f"{got} {limit}" if got and limit else got


def bound(check: dict[str, Any]) -> str:
    op = COMPARISON.get(str(check.get("comparison")), "?")
    return f"{op} {value(check.get('bound'), check.get('unit'))}"


def needs(check: dict[str, Any]) -> str:
    """'needs about 1,200 more requests' for an INCONCLUSIVE that more data would decide."""
    n = number(check.get("needs_more_requests"))
    if n is None or n <= 0 or check.get("status") != "INCONCLUSIVE":
        return ""
    what = "client" if check.get("metric") == "blast_radius" else "request"  # a share of clients
    return f"needs about {n:,.0f} more {what}{'s' if n != 1 else ''}"


def window(check: dict[str, Any]) -> str:
    """Which part of the run a check judged."""
    parts = []
    if check.get("during_phase"):
        parts.append(f"during {check['during_phase']}")
    if check.get("after_phase"):
        parts.append(f"after {check['after_phase']}")
    if check.get("compare_to"):
        parts.append(f"vs {check['compare_to']}")
    return ", ".join(parts) or "whole scenario"


def margin(check: dict[str, Any]) -> tuple[str, bool]:
    """How far inside its bound a check landed, and whether it is outside (breached). A
    recovery check is decided by its time, so its margin is `within` minus the time to
    recover (negative when late; 'never' when it never recovered)."""
    within = number(check.get("within"))
    if check.get("after_phase") and within is not None:
        got = number(check.get("recovered_after_s"))
        if got is None:
            failed = check.get("status") == "FAIL"
            return ("never" if failed else NO_DATA), failed
        spare = within - got
        return (f"-{duration(-spare)}" if spare < 0 else duration(spare)), spare < 0
    raw = check.get("margin")
    if isinstance(raw, float) and math.isinf(raw):
        return value(raw, check.get("unit")), raw < 0
    m = number(raw)
    return value(m, check.get("unit")), m is not None and m < 0


def run_confidence(results: dict[str, Any], checks: list[dict[str, Any]]) -> float | None:
    """The confidence of the run's intervals: the document's, else the one its checks share;
    None for a document without intervals."""
    top = number(results.get("confidence"))
    if top is not None:
        return top
    levels = {number(c.get("confidence")) for c in checks if pair(c.get("interval"))} - {None}
    return levels.pop() if len(levels) == 1 else None
