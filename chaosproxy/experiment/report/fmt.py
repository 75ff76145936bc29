"""Numbers as every report shows them (HTML, Markdown, JUnit, compare and the console's final
table): a value in its unit, read by the one formatter of the experiment side
(`experiment/numbers.py`), with its interval; durations, differences, percentages; a status
with its icon.

A judged number comes with its interval: `estimate` gives '0.52 % [0.21 %, 1.3 %]', an open
side (too little data to bound it) as '…'. Documents written before intervals existed have
none, and read as the value alone. What is said of a check, of the false-alarm estimate, of
instants and events, of what a halt left unjudged and of the seed is `check_text.py`,
`false_alarm_text.py`, `instants.py`, `not_reached.py` and `run_seed.py`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from chaosproxy.experiment.numbers import NO_DATA, OPEN, in_unit
from chaosproxy.experiment.report.results_dir import number

ICONS = {"PASS": "✔", "FAIL": "✖", "INCONCLUSIVE": "?", "NOT REACHED": "⊘"}


Interval = tuple[float | None, float | None]


def status_label(status: str) -> str:
    """Icon and word: the status reads without colour (print, colour-blind readers)."""
    return f"{ICONS.get(status, '?')} {status}"


def value(v: Any, unit: str | None) -> str:
    """A check or phase value in its unit (numbers.in_unit); a dash when there was no data."""
    if isinstance(v, float) and math.isinf(v):
        return in_unit(v, unit)
    f = number(v)
    return NO_DATA if f is None else in_unit(f, unit)


def pair(v: Any) -> Interval | None:
    """A JSON `[lo, hi]` as two numbers (None: an open side); None when there is no interval
    (an older document, null, or a malformed value)."""
    if not isinstance(v, list | tuple) or len(v) != 2:
        return None
    return number(v[0]), number(v[1])


def interval(
    iv: Interval | None, unit: str | None, show: Callable[[float], str] | None = None
) -> str:
    """'[0.21 %, 1.3 %]', an open side as '…'; '' without an interval."""
    if iv is None:
        return ""
    show = show or (lambda x: value(x, unit))
    lo, hi = iv
    return f"[{OPEN if lo is None else show(lo)}, {OPEN if hi is None else show(hi)}]"


def estimate(
    v: Any, iv: Interval | None, unit: str | None, show: Callable[[float], str] | None = None
) -> str:
    """A value and its interval, '0.52 % [0.21 %, 1.3 %]'; the value alone without one; a dash
    without a value."""
    f = number(v)
    if f is None:
        return value(v, unit)
    text = show(f) if show else value(f, unit)
    return f"{text} {interval(iv, unit, show)}" if iv is not None else text


def overlap(a: Interval | None, b: Interval | None) -> bool:
    """Whether two intervals share a point (an open side reaches to infinity)."""
    if a is None or b is None:
        return False
    lo_a, hi_a = (-math.inf if a[0] is None else a[0]), (math.inf if a[1] is None else a[1])
    lo_b, hi_b = (-math.inf if b[0] is None else b[0]), (math.inf if b[1] is None else b[1])
    return lo_a <= hi_b and lo_b <= hi_a


def delta(a: Any, b: Any, unit: str | None, show: Callable[[float], str] | None = None) -> str:
    """b - a in the unit (or as `show` writes it), signed; a dash when either side has no
    data."""
    fa, fb = number(a), number(b)
    if fa is None or fb is None:
        return NO_DATA
    d = fb - fa
    if d == 0:
        return "±0"
    if show is not None:
        return ("+" if d > 0 else "-") + show(abs(d))
    if unit == "ratio":
        return f"{d * 100:+.3g} pp"
    if unit == "count":
        return f"{d:+,.0f}"
    text = value(abs(d), unit)
    return ("+" if d > 0 else "-") + text


def duration(v: Any) -> str:
    """A span of seconds: '4.3 s', '2 min 5 s'; a dash for no data."""
    f = number(v)
    if f is None:
        return NO_DATA
    if f < 60:
        return f"{f:.3g} s"
    m, s = divmod(round(f), 60)
    return f"{m} min {s} s" if s else f"{m} min"


def percent(confidence: Any) -> str:
    """0.95 → '95 %'."""
    f = number(confidence)
    return NO_DATA if f is None else f"{f * 100:.4g} %"


def sentence(text: str) -> str:
    """Capitalised and with a full stop, for a line of its own."""
    return f"{text[:1].upper()}{text[1:]}."


def confidence_note(confidence: float) -> str:
    """Said once per report, near the verdict."""
    return (
        f"intervals at {percent(confidence)} confidence, each side: [low, high] after a value, "
        f"{OPEN} where the data cannot bound a side"
    )


def grpc_statuses(phase: dict[str, Any]) -> str:
    """A phase's gRPC calls by status, both views: `clients: OK 1,204, UNAVAILABLE 31; proxy:
    UNAVAILABLE 740` ("" for a phase without gRPC calls). OK first, then the most frequent."""
    parts = []
    for view, label in (("client", "clients"), ("proxy", "proxy")):
        counts = (phase.get(view) or {}).get("grpc") if isinstance(phase, dict) else None
        if not isinstance(counts, dict) or not counts:
            continue
        items = sorted(
            ((str(k), number(n) or 0.0) for k, n in counts.items()),
            key=lambda kv: (kv[0] != "OK", -kv[1], kv[0]),
        )
        parts.append(f"{label}: " + ", ".join(f"{k} {n:,.0f}" for k, n in items))
    return "; ".join(parts)
