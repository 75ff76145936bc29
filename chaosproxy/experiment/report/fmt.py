"""How numbers read in every report: one formatter per unit, shared by HTML, Markdown, JUnit
and compare so the same value never reads two ways."""

from __future__ import annotations

import datetime as dt
from typing import Any

from chaosproxy.experiment.report.load import number

NO_DATA = "\u2013"  # en dash: a cell without data
TIMES = "\u00d7"
ICONS = {"PASS": "✔", "FAIL": "✖", "INCONCLUSIVE": "?"}
COMPARISON = {"below": "<", "above": ">"}


def status_label(status: str) -> str:
    """Icon and word: the status reads without colour (print, colour-blind readers)."""
    return f"{ICONS.get(status, '?')} {status}"


def seconds(v: float) -> str:
    """A latency: µs/ms below a second, else seconds."""
    a = abs(v)
    if a == 0:
        return "0 s"
    if a < 0.001:
        return f"{v * 1e6:.0f} µs"
    if a < 1:
        return f"{v * 1000:.3g} ms"
    return f"{v:.3g} s"


def value(v: Any, unit: str | None) -> str:
    """A check or phase value in its unit; a dash when there was no data."""
    f = number(v)
    if f is None:
        return NO_DATA
    if unit == "ratio":
        return f"{f * 100:.3g} %"
    if unit == "seconds":
        return seconds(f)
    if unit == "req/s":
        return f"{f:.4g} req/s"
    if unit == "x":
        return f"{f:.3g}{TIMES}"
    return f"{f:.4g}"


def delta(a: Any, b: Any, unit: str | None) -> str:
    """b - a in the unit, signed; a dash when either side has no data."""
    fa, fb = number(a), number(b)
    if fa is None or fb is None:
        return NO_DATA
    d = fb - fa
    if d == 0:
        return "±0"
    if unit == "ratio":
        return f"{d * 100:+.3g} pp"
    text = value(abs(d), unit)
    return ("+" if d > 0 else "-") + text


def duration(v: Any) -> str:
    """A span of seconds: '4 s', '2 min 5 s'; a dash for no data."""
    f = number(v)
    if f is None:
        return NO_DATA
    if f < 60:
        return f"{f:.3g} s"
    m, s = divmod(round(f), 60)
    return f"{m} min {s} s" if s else f"{m} min"


def recovered(check: dict[str, Any]) -> str:
    """'4 s (≤ 30 s)', 'never (≤ 30 s)', or '' for a check that is not about recovery."""
    if not check.get("after_phase"):
        return ""
    within = number(check.get("within"))
    limit = f" (≤ {duration(within)})" if within is not None else ""
    got = number(check.get("recovered_after_s"))
    return (duration(got) if got is not None else "never") + limit


def bound(check: dict[str, Any]) -> str:
    op = COMPARISON.get(str(check.get("comparison")), "?")
    return f"{op} {value(check.get('bound'), check.get('unit'))}"


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


def utc(ts: Any) -> str:
    f = number(ts)
    if f is None:
        return NO_DATA
    return dt.datetime.fromtimestamp(f, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def elapsed(ts: Any, start: float) -> str:
    """Seconds since the run started, as '+12.3 s'."""
    f = number(ts)
    return NO_DATA if f is None else f"+{f - start:.1f} s"
