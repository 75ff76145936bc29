"""The geometry shared by every chart: its size, the value and time scales and their ticks, and
where a label goes so that it overprints no other (phase names, bounds, times to recover)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from chaosproxy.experiment.report import fmt
from chaosproxy.experiment.report.chart_model import Bound, Chart, Recovery

W = 800
LEFT, RIGHT, BOTTOM = 64, 14, 40  # the bottom holds two lines of ticks: since start, UTC
PLOT_W, PLOT_H = W - LEFT - RIGHT, 180
ROW = 12  # one row of time-to-recover labels over the plot
CHAR, LINE = 6.2, 13  # a label's width per character and its line height (11 px text)
BAND_CHAR = 7.0  # the same at 12 px (phase names, "halted")


class YScale:
    """Value → y pixel on the plot (linear from 0, or log for latency), and its ticks."""

    def __init__(self, lo: float, hi: float, log: bool, top: float = 34.0) -> None:
        self.lo, self.hi, self.log, self.top = lo, hi, log, top

    def __call__(self, v: float) -> float:
        if self.log:
            v = max(v, self.lo)
            frac = (math.log10(v) - math.log10(self.lo)) / (
                math.log10(self.hi) - math.log10(self.lo)
            )
        else:
            frac = (v - self.lo) / (self.hi - self.lo)
        return self.top + PLOT_H * (1 - min(max(frac, 0.0), 1.0))

    def ticks(self) -> list[float]:
        if self.log:
            lo, hi = round(math.log10(self.lo)), round(math.log10(self.hi))
            return [10.0**e for e in range(lo, hi + 1)]
        step = self.hi / 4
        return [step * i for i in range(5)]


def y_scale(chart: Chart, top: float) -> YScale:
    """A scale that holds every series value, bound (with room for its label) and whisker."""
    vals = [v for s in chart.series for v in s.values if v is not None]
    vals += [b.value * 1.15 for b in chart.bounds]  # headroom for the label above the line
    vals += [v for w in chart.whiskers for v in (w.value, w.lo, w.hi) if v is not None]
    if chart.log:
        positive = [v for v in vals if v > 0] or [0.001]
        lo = 10.0 ** math.floor(math.log10(min(positive)))
        hi = 10.0 ** math.ceil(math.log10(max(positive)))
        return YScale(lo, hi if hi > lo else lo * 10, True, top)
    peak = max(vals, default=0.0)
    if chart.unit == "ratio" and peak <= 1:
        peak = max(peak, 0.01)
    return YScale(0.0, _nice_ceiling(peak), False, top)


def _nice_ceiling(v: float) -> float:
    """The smallest of 1, 2, 4, 5, 8 times 10^k that is ≥ v: ticks at quarters stay round."""
    if v <= 0:
        return 1.0
    e = 10.0 ** math.floor(math.log10(v))
    for m in (1, 2, 4, 5, 8, 10):
        if m * e >= v * 0.999999:
            return m * e
    return 10 * e


def x_step(span: float) -> int:
    """Seconds between time ticks: a round step giving at most ten ticks over `span`."""
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if span / step <= 10:
            return step
    return 7200


def since_start(sec: float) -> str:
    """A time tick's label, minutes:seconds since the run started."""
    m, s = divmod(round(sec), 60)
    return f"{m}:{s:02d}"


def px(v: float) -> str:
    """A coordinate as SVG text: one decimal at most, no trailing zeros (smaller files)."""
    return f"{v:.1f}".rstrip("0").rstrip(".")


def tick_label(v: float, unit: str) -> str:
    """As the tables write the unit (fmt.value), except counts and rates: bare numbers."""
    if unit in ("ratio", "seconds"):
        return fmt.value(v, unit)
    return f"{v:.4g}"


Box = tuple[float, float, float, float]  # x0, x1, y0, y1 of a label on the chart


class Labels:
    """The labels placed on a chart so far: a new one goes where it overprints none of them."""

    def __init__(self) -> None:
        self.boxes: list[Box] = []

    def free(self, box: Box) -> bool:
        x0, x1, y0, y1 = box
        return not any(a < x1 + 2 and x0 < b + 2 and c < y1 and y0 < d for a, b, c, d in self.boxes)

    def take(self, box: Box) -> None:
        self.boxes.append(box)


def text_box(x0: float, x1: float, baseline: float, size: float = 11) -> Box:
    """The box a line of text of `size` px covers, from its baseline."""
    return x0, x1, baseline - size + 1, baseline + 3


@dataclass(frozen=True)
class RecoveryLabel:
    """A time-to-recover label and the row over the plot it goes in."""

    recovery: Recovery
    text: str
    where: str  # the x attributes of its <text>
    x0: float
    x1: float
    row: int


def recovery_rows(chart: Chart, x: Any, end: float) -> list[RecoveryLabel]:
    """Each time-to-recover label in the first row over the plot where it overprints no other
    label of that row."""
    out: list[RecoveryLabel] = []
    for r in chart.recoveries:
        if r.recovered_at is None:
            text = "never recovered"
        else:
            got = r.recovered_at - r.phase_end
            text = f"recovered in {fmt.estimate(got, r.interval, None, fmt.duration)}"
        if r.deadline is not None:
            text += f" (allowed {fmt.duration(r.deadline - r.phase_end)})"
        label = f"{r.check}: {text}"
        x0 = x(r.phase_end)
        width = CHAR * len(label)
        # Keep the label inside the chart: right-align it when it would run off the edge.
        if x0 + 3 + width > W - RIGHT:
            where, lx0, lx1 = f'x="{W - RIGHT}" text-anchor="end"', W - RIGHT - width, W - RIGHT
        else:
            where, lx0, lx1 = f'x="{px(x0 + 3)}"', x0 + 3, x0 + 3 + width
        row = 0
        while any(o.row == row and o.x0 < lx1 + 6 and lx0 < o.x1 + 6 for o in out):
            row += 1
        out.append(RecoveryLabel(r, label, where, lx0, lx1, row))
    return out


def place_bound_label(
    b: Bound, x: Any, yy: float, top: float, bottom: float, labels: Labels
) -> tuple[float, str, float]:
    """The baseline and x attributes of a bound's label, and the x it is aligned on: the first
    place, nearest its line, where it overprints no label placed before it (the first
    candidate if none is free)."""
    width = CHAR * len(b.label)
    ends = []
    x0, x1 = x(b.start), x(b.end)
    if x1 - 2 - width >= LEFT:  # right-aligned at the end of its window
        ends.append((f'x="{px(x1 - 2)}" text-anchor="end"', x1 - 2 - width, x1 - 2, x1 - 2))
    start = max(x0, LEFT) + 2
    if start + width <= W - RIGHT:  # left-aligned at its start
        ends.append((f'x="{px(start)}"', start, start + width, start))
    if not ends:
        right = W - RIGHT
        ends.append((f'x="{right}" text-anchor="end"', right - width, right, right))
    lo, hi = top + 11, bottom - 3  # baselines that keep the label inside the plot
    above, below = yy - 4, yy + 13
    tries = []
    for k in range(12):
        tries += [above - k * LINE, below + k * LINE]
    candidates = [(ty, e) for ty in tries if lo <= ty <= hi for e in ends]
    if not candidates:
        candidates = [(min(max(above, lo), hi), ends[0])]
    for ty, (where, lx0, lx1, ax) in candidates:
        box = text_box(lx0, lx1, ty)
        if labels.free(box):
            labels.take(box)
            return ty, where, ax
    ty, (where, lx0, lx1, ax) = candidates[0]
    labels.take(text_box(lx0, lx1, ty))
    return ty, where, ax
