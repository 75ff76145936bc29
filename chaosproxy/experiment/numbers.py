"""How a number reads, everywhere: one rule per unit for the verdict's messages, the live
progress line, the console's final table and every report (HTML, Markdown, JUnit, compare), so
one value never reads two ways (`0.01%` in a message and `0.0123 %` in the report).

Three significant digits: enough to tell a bound from a value near it, few enough to read.
"""

from __future__ import annotations

import math

NO_DATA = "\u2013"  # en dash: a table cell without data
OPEN = "\u2026"  # an open side of an interval: too little data to bound it
TIMES = "\u00d7"


def seconds(v: float) -> str:
    """A latency or a time: µs/ms below a second, else seconds."""
    a = abs(v)
    if a == 0:
        return "0 s"
    if a < 0.001:
        return f"{v * 1e6:.3g} µs"
    if a < 1:
        return f"{v * 1000:.3g} ms"
    return f"{v:.3g} s"


def in_unit(v: float, unit: str | None) -> str:
    """A finite or infinite number in its unit: `ratio` (a share, as %), `points` (a difference
    of two shares, in percentage points), `seconds`, `req/s`, `x` (a ratio of two values),
    `count`; anything else as a plain number."""
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    if unit == "ratio":
        return f"{v * 100:.3g} %"
    if unit == "points":
        return "±0 pp" if v == 0 else f"{v * 100:+.3g} pp"
    if unit == "seconds":
        return seconds(v)
    if unit == "req/s":  # one decimal under 100, whole above: a column reads one way
        return f"{v:.1f} req/s" if abs(v) < 99.95 else f"{v:,.0f} req/s"
    if unit == "x":
        return f"{v:.3g}{TIMES}"
    if unit == "count":
        return f"{v:,.0f}"
    return f"{v:.4g}"


def fmt(v: float | None, unit: str) -> str:
    """A value in a sentence: `no data` when there is none."""
    return "no data" if v is None else in_unit(v, unit)


def fmt_interval(lo: float | None, hi: float | None, unit: str) -> str:
    """`[lo, hi]`, an open side as `…`; '' when neither side is known."""
    if lo is None and hi is None:
        return ""
    a = OPEN if lo is None else in_unit(lo, unit)
    b = OPEN if hi is None else in_unit(hi, unit)
    return f"[{a}, {b}]"
