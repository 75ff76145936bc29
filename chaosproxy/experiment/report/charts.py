"""Server-side SVG charts over the run's shared time axis.

Why SVG from Python rather than a JavaScript library: the report must open offline, print
sharply and be safe with hostile strings. Static SVG needs no script at all (the page's CSP
forbids scripts), prints as vectors, and every element carries data- attributes tests can
assert on. A 10-minute run stays in the low hundreds of KiB. The cost is interactivity: no
zoom or hover read-out; the numbers are in the tables and in timeseries.csv.

Over 400 lines on purpose: every chart shares the same scales, axes, phase bands and legend
helpers; split per chart, each would import all of them back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup, escape

from chaosproxy.experiment.report import fmt
from chaosproxy.experiment.report.results_dir import ResultsDir, mapping, number

W = 800
LEFT, RIGHT, BOTTOM = 64, 14, 40  # the bottom holds two lines of ticks: since start, UTC
PLOT_W, PLOT_H = W - LEFT - RIGHT, 180
ROW = 12  # one row of time-to-recover labels over the plot
CHAR, LINE = 6.2, 13  # a label's width per character and its line height (11 px text)
BAND_CHAR = 7.0  # the same at 12 px (phase names, "halted")


@dataclass(frozen=True)
class Series:
    key: str  # the timeseries column
    label: str
    style: str  # css class: s0 (solid), s1 (dashed), s2 (dotted), bars
    values: list[float | None]


@dataclass(frozen=True)
class Bound:
    check: str
    status: str
    value: float
    label: str
    start: float
    end: float


@dataclass(frozen=True)
class Recovery:
    check: str
    status: str
    phase_end: float
    recovered_at: float | None  # None: never recovered within the run
    deadline: float | None
    interval: fmt.Interval | None = None  # of the time to recover, seconds after phase_end


@dataclass(frozen=True)
class Whisker:
    """A phase summary's value (p95, error rate) with its interval, drawn mid-phase."""

    phase: str
    value: float
    lo: float | None  # None: an open side
    hi: float | None
    start: float
    end: float
    text: str


@dataclass
class Chart:
    id: str
    title: str
    unit: str  # ratio | seconds | req/s | x | other
    source: str
    metrics: tuple[str, ...]  # check metrics drawn here
    series: list[Series]
    subtitle: str = ""  # a Prometheus query, shown as code
    note: str = ""  # a sentence on how to read the chart
    log: bool = False
    bounds: list[Bound] = field(default_factory=list)
    recoveries: list[Recovery] = field(default_factory=list)
    whiskers: list[Whisker] = field(default_factory=list)
    whisker_label: str = ""
    svg: Markup = field(default_factory=Markup)


def build_charts(run: ResultsDir) -> list[Chart]:
    """The charts of a run, with checks' bounds and recovery intervals placed on them."""
    ts = run.series
    if not len(ts):
        return []
    charts: list[Chart] = []
    for source, who in (("client", "Client view"), ("proxy", "Proxy view")):
        rate_key = "client_rps" if source == "client" else "proxy_requests"
        thr = [Series(rate_key, "requests/s", "s0", ts.column(rate_key))]
        if source == "proxy":
            thr.append(
                Series("proxy_injected", "faults injected/s", "bars", ts.column("proxy_injected"))
            )
        charts.append(
            Chart(
                f"{source}-throughput", f"{who}: throughput", "req/s", source, ("throughput",), thr
            )
        )
        charts.append(
            Chart(
                f"{source}-error-rate",
                f"{who}: error rate",
                "ratio",
                source,
                ("error_rate",),
                [
                    Series(
                        f"{source}_error_rate",
                        "error rate",
                        "s0",
                        ts.column(f"{source}_error_rate"),
                    )
                ],
            )
        )
        charts.append(
            Chart(
                f"{source}-latency",
                f"{who}: latency",
                "seconds",
                source,
                ("latency_p50", "latency_p95", "latency_p99"),
                [
                    Series(f"{source}_{q}", q, style, ts.column(f"{source}_{q}"))
                    for q, style in (("p50", "s0"), ("p95", "s1"), ("p99", "s2"))
                ],
                log=True,
            )
        )
    for i, check in enumerate(run.checks):
        col = f"prom_{i}"
        if check.get("source") != "prometheus" or col not in ts.values:
            continue
        unit = str(check.get("unit") or "")
        charts.append(
            Chart(
                f"prometheus-{i}",
                f"Prometheus: {check.get('name', col)}",
                unit,
                "prometheus",
                (str(check.get("metric")),),
                [Series(col, str(check.get("metric") or "value"), "s0", ts.column(col))],
                subtitle=str(check.get("query") or ""),
                log=unit == "seconds",
            )
        )
    from chaosproxy.experiment.report import cohort_charts  # it builds on Chart

    cohort_charts.split_by_cohort(run, charts)  # a control group: both cohorts side by side
    _place_checks(run, charts)
    _place_phase_intervals(run, charts)
    cohort_charts.name_whiskers(charts)
    for chart in charts:
        chart.svg = render(run, chart)
    return charts


def _place_checks(run: ResultsDir, charts: list[Chart]) -> None:
    for i, check in enumerate(run.checks):
        source, metric = check.get("source"), check.get("metric")
        target = None
        if source == "prometheus":
            target = next((c for c in charts if c.id == f"prometheus-{i}"), None)
        else:
            target = next((c for c in charts if c.source == source and metric in c.metrics), None)
        # A PASS on a window the halt left empty is no evidence: nothing of it is drawn.
        if target is None or fmt.unreached(run.results, check):
            continue
        name, status = str(check.get("name", f"check {i}")), str(check.get("status"))
        b = number(check.get("bound"))
        # A bound relative to another phase (unit x) is not on the chart's scale.
        if b is not None and check.get("unit") == target.unit and not check.get("compare_to"):
            start, end = _check_window(run, check)
            label = f"{name}: {fmt.bound(check)}"
            target.bounds.append(Bound(name, status, b, label, start, end))
        after = run.phase(check.get("after_phase"))
        got = number(check.get("recovered_after_s"))
        # no time to recover is "never" only for a FAIL; otherwise there is nothing to draw
        if got is None and status != "FAIL":
            continue
        if after is not None and number(after.get("end")) is not None:
            phase_end = float(after["end"])
            within = number(check.get("within"))
            target.recoveries.append(
                Recovery(
                    name,
                    status,
                    phase_end,
                    None if got is None else phase_end + got,
                    None if within is None else phase_end + within,
                    fmt.pair(check.get("recovered_after_interval")) if got is not None else None,
                )
            )


# Per chart: the phase summary drawn as a whisker, and how the legend names it.
_PHASE_SUMMARY = {
    "error-rate": ("error_rate", "ratio", "error rate"),
    "latency": ("p95", "seconds", "p95"),
}


def _place_phase_intervals(run: ResultsDir, charts: list[Chart]) -> None:
    """Each phase's error rate (p95) with its interval on the error-rate (latency) charts; only
    for documents that have the intervals."""
    confidence = fmt.run_confidence(run.results, run.checks)
    level = f"{fmt.percent(confidence)} interval" if confidence is not None else "interval"
    for chart in charts:
        kind = chart.id.removeprefix(f"{chart.source}-")
        if chart.source not in ("client", "proxy") or kind not in _PHASE_SUMMARY:
            continue
        key, unit, what = _PHASE_SUMMARY[kind]
        for p in run.phases:
            view = mapping(p.get(chart.source))
            v, iv = number(view.get(key)), fmt.pair(view.get(f"{key}_interval"))
            start, end = number(p.get("start")), number(p.get("end"))
            if v is None or iv is None or start is None or end is None:
                continue
            name = str(p.get("name", ""))
            text = f"{name}: {what} {fmt.estimate(v, iv, unit)} over the phase ({level})"
            chart.whiskers.append(Whisker(name, v, iv[0], iv[1], start, end, text))
        if chart.whiskers:
            chart.whisker_label = f"{what} per phase, {level}"


def _check_window(run: ResultsDir, check: dict[str, Any]) -> tuple[float, float]:
    during = run.phase(check.get("during_phase"))
    if during is not None:
        return _num(during.get("start"), run.start), _num(during.get("end"), run.end)
    after = run.phase(check.get("after_phase"))
    if after is not None:
        return _num(after.get("end"), run.start), _scenario_end(run)
    r = run.run
    return _num(r.get("scenario_started"), run.start), _scenario_end(run)


def _scenario_end(run: ResultsDir) -> float:
    return _num(run.run.get("scenario_ended"), run.end)


def _num(v: Any, default: float) -> float:
    f = number(v)
    return default if f is None else f


# ------------------------------------------------------------------ scales


class _Y:
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


def _y_scale(chart: Chart, top: float) -> _Y:
    vals = [v for s in chart.series for v in s.values if v is not None]
    vals += [b.value * 1.15 for b in chart.bounds]  # headroom for the label above the line
    vals += [v for w in chart.whiskers for v in (w.value, w.lo, w.hi) if v is not None]
    if chart.log:
        positive = [v for v in vals if v > 0] or [0.001]
        lo = 10.0 ** math.floor(math.log10(min(positive)))
        hi = 10.0 ** math.ceil(math.log10(max(positive)))
        return _Y(lo, hi if hi > lo else lo * 10, True, top)
    peak = max(vals, default=0.0)
    if chart.unit == "ratio" and peak <= 1:
        peak = max(peak, 0.01)
    return _Y(0.0, _nice_ceiling(peak), False, top)


def _nice_ceiling(v: float) -> float:
    """The smallest of 1, 2, 4, 5, 8 times 10^k that is ≥ v: ticks at quarters stay round."""
    if v <= 0:
        return 1.0
    e = 10.0 ** math.floor(math.log10(v))
    for m in (1, 2, 4, 5, 8, 10):
        if m * e >= v * 0.999999:
            return m * e
    return 10 * e


def _x_step(span: float) -> int:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if span / step <= 10:
            return step
    return 7200


def _clock(sec: float) -> str:
    m, s = divmod(round(sec), 60)
    return f"{m}:{s:02d}"


def _f(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _tick_label(v: float, unit: str) -> str:
    """As the tables write the unit (fmt.value), except counts and rates: bare numbers."""
    if unit in ("ratio", "seconds"):
        return fmt.value(v, unit)
    return f"{v:.4g}"


# ------------------------------------------------------------------ rendering


Box = tuple[float, float, float, float]  # x0, x1, y0, y1 of a label on the chart


class _Labels:
    """The labels placed on a chart so far: a new one goes where it overprints none of them."""

    def __init__(self) -> None:
        self.boxes: list[Box] = []

    def free(self, box: Box) -> bool:
        x0, x1, y0, y1 = box
        return not any(a < x1 + 2 and x0 < b + 2 and c < y1 and y0 < d for a, b, c, d in self.boxes)

    def take(self, box: Box) -> None:
        self.boxes.append(box)


def _text_box(x0: float, x1: float, baseline: float, size: float = 11) -> Box:
    return x0, x1, baseline - size + 1, baseline + 3


@dataclass(frozen=True)
class _RecoveryLabel:
    recovery: Recovery
    text: str
    where: str  # the x attributes of its <text>
    x0: float
    x1: float
    row: int


def _recovery_rows(chart: Chart, x: Any, end: float) -> list[_RecoveryLabel]:
    """Each time-to-recover label in the first row over the plot where it overprints no other
    label of that row."""
    out: list[_RecoveryLabel] = []
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
            where, lx0, lx1 = f'x="{_f(x0 + 3)}"', x0 + 3, x0 + 3 + width
        row = 0
        while any(o.row == row and o.x0 < lx1 + 6 and lx0 < o.x1 + 6 for o in out):
            row += 1
        out.append(_RecoveryLabel(r, label, where, lx0, lx1, row))
    return out


def render(run: ResultsDir, chart: Chart) -> Markup:
    t0, t1 = run.start, run.end
    span = max(t1 - t0, 1.0)

    def x(t: float) -> float:
        return LEFT + PLOT_W * min(max((t - t0) / span, 0.0), 1.0)

    rec_labels = _recovery_rows(chart, x, run.end)
    rows = max(2, 1 + max((r.row for r in rec_labels), default=0))
    top = 10 + ROW * rows  # room for the time-to-recover labels over the plot
    height = top + PLOT_H + BOTTOM
    bottom = top + PLOT_H
    y = _y_scale(chart, top)
    labels = _Labels()
    out: list[str] = []
    add = out.append
    cid = escape(chart.id)
    add(
        f'<svg class="plot" viewBox="0 0 {W} {height}" role="img" data-chart="{cid}" '
        f'aria-label="{escape(chart.title)}" xmlns="http://www.w3.org/2000/svg">'
    )
    add(
        f'<defs><pattern id="hatch-{cid}" width="8" height="8" patternUnits="userSpaceOnUse" '
        f'patternTransform="rotate(45)"><rect width="8" height="8" class="hatch-bg"/>'
        f'<line x1="0" y1="0" x2="0" y2="8" class="hatch"/></pattern></defs>'
    )
    # Phase bands: faulty phases hatched, others plain, so they read in grey print too; each
    # phase's edges drawn, so two fault phases back to back still read as two.
    edges: dict[float, str] = {}
    for i, p in enumerate(run.phases):
        ps, pe = number(p.get("start")), number(p.get("end"))
        if ps is None or pe is None or pe <= ps:
            continue
        x0, x1 = x(ps), x(pe)
        name = str(p.get("name", ""))
        kind = "fault" if p.get("has_rules") else "calm"
        fill = f' fill="url(#hatch-{cid})"' if kind == "fault" else ""
        when = f"{fmt.clock(ps)} to {fmt.clock(pe)} UTC, {fmt.duration(pe - ps)}"
        add(
            f'<g class="band band-{kind} band-{i % 2}" data-phase="{escape(name)}">'
            f'<rect x="{_f(x0)}" y="{top}" width="{_f(max(x1 - x0, 0.5))}" height="{PLOT_H}"{fill}>'
            f"<title>{escape(name)}: {escape(when)}</title></rect>"
        )
        width = BAND_CHAR * len(name)
        if x1 - x0 >= width + 6:
            box = _text_box(x0 + 4, x0 + 4 + width, top + 12, 12)
            labels.take(box)
            add(f'<text class="band-label" x="{_f(x0 + 4)}" y="{top + 12}">{escape(name)}</text>')
        add("</g>")
        edges[round(ps, 3)] = name  # an edge is named by the phase that begins there
        edges.setdefault(round(pe, 3), "")
    for at, name in sorted(edges.items()):
        if t0 < at < t1:
            xe = _f(x(at))
            add(
                f'<line class="phase-edge" data-phase-edge="{escape(name or "end")}" '
                f'x1="{xe}" x2="{xe}" y1="{top}" y2="{bottom}"/>'
            )
    # Grid and axes.
    for v in y.ticks():
        yy = _f(y(v))
        add(f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{yy}" y2="{yy}"/>')
        add(
            f'<text class="tick" x="{LEFT - 6}" y="{yy}" text-anchor="end" '
            f'dominant-baseline="middle">{escape(_tick_label(v, chart.unit))}</text>'
        )
    # Time: minutes:seconds since the run started, and beneath it the UTC time of day (people
    # line a run up with dashboards by the clock).
    step = _x_step(span)
    tick = 0
    while tick <= span + 1e-9:
        xx = x(t0 + tick)
        add(f'<line class="axis" x1="{_f(xx)}" x2="{_f(xx)}" y1="{bottom}" y2="{bottom + 4}"/>')
        # The first and last labels would overflow the plot's edges if centred on their tick.
        if xx > W - RIGHT - 26:
            anchor = "end"
        elif xx < LEFT + 26:
            anchor = "start"
        else:
            anchor = "middle"
        utc = fmt.clock(round(t0 + tick))
        add(
            f'<text class="tick" x="{_f(xx)}" y="{bottom + 16}" text-anchor="{anchor}">'
            f"{_clock(tick)}</text>"
            f'<text class="tick utc" x="{_f(xx)}" y="{bottom + 30}" text-anchor="{anchor}" '
            f'data-utc="{utc}">{utc}</text>'
        )
        tick += step
    add(f'<line class="axis" x1="{LEFT}" x2="{W - RIGHT}" y1="{bottom}" y2="{bottom}"/>')
    # Series: lines with gaps where a second had no data; bars for counts.
    centres = [x(t + 0.5) for t in run.series.t]
    bar_w = max(PLOT_W / span * 0.7, 0.6)
    for s in chart.series:
        points = sum(v is not None for v in s.values)
        if s.style == "bars":
            d = "".join(
                f"M{_f(cx - bar_w / 2)} {bottom}V{_f(y(v))}h{_f(bar_w)}V{bottom}Z"
                for cx, v in zip(centres, s.values, strict=True)
                if v
            )
            add(
                f'<path class="series bars" data-series="{escape(s.key)}" data-points="{points}" '
                f'd="{d}"/>'
            )
            continue
        add(
            f'<path class="series {s.style}" data-series="{escape(s.key)}" '
            f'data-points="{points}" d="{_path(centres, s.values, y)}"/>'
        )
    # Each phase's summary with its interval: a whisker mid-phase, over a white halo so it
    # reads across the per-second lines.
    for w in chart.whiskers:
        add(_whisker(w, x, y))
    # Seconds with injected faults: ticks under the axis, on every chart.
    injected = run.series.column("proxy_injected")
    marks = [cx for cx, v in zip(centres, injected, strict=True) if v]
    if marks:
        d = "".join(f"M{_f(cx)} {bottom + 1}v5" for cx in marks)
        add(f'<path class="injected" data-injected-seconds="{len(marks)}" d="{d}"/>')
    # A halt: where a check stopped the run.
    halted = run.results.get("halted")
    if isinstance(halted, dict) and number(halted.get("at")) is not None:
        xh = x(float(halted["at"]))
        width = BAND_CHAR * len("halted")
        ty = top + 28.0
        while not labels.free(_text_box(xh + 3, xh + 3 + width, ty, 12)) and ty < bottom - 20:
            ty += LINE
        labels.take(_text_box(xh + 3, xh + 3 + width, ty, 12))
        add(
            f'<g class="halt" data-halted="{escape(str(halted.get("check", "")))}">'
            f'<line x1="{_f(xh)}" x2="{_f(xh)}" y1="{top}" y2="{bottom}"/>'
            f'<text x="{_f(xh + 3)}" y="{_f(ty)}">halted</text></g>'
        )
    # Checks' bounds, each labelled where it overprints no other label: above its line, else
    # below, else a line further out, at the end of its window or else at its start.
    # Labels go on last, over every line, each on a white halo.
    texts: list[str] = []
    for b in chart.bounds:
        by = y(b.value)
        ty, where, ax = _place_bound_label(b, x, by, top, bottom, labels)
        status = escape(b.status.lower())
        # A label moved off its line keeps a leader to it, so it still reads as that line's.
        near = by - 4 - LINE / 2 <= ty <= by + 13 + LINE / 2
        end = ty + 3 if ty < by else ty - 10
        leader = (
            ""
            if near
            else f'<line class="leader" x1="{_f(ax)}" x2="{_f(ax)}" y1="{_f(by)}" y2="{_f(end)}"/>'
        )
        add(
            f'<g class="bound status-{status}" data-check="{escape(b.check)}" '
            f'data-bound="{b.value!r}">'
            f'<line x1="{_f(x(b.start))}" x2="{_f(x(b.end))}" y1="{_f(by)}" y2="{_f(by)}"/>'
            f"{leader}<title>{escape(b.label)}</title></g>"
        )
        texts.append(
            f'<text class="label bound-label status-{status}" data-label="{escape(b.check)}" '
            f'{where} y="{_f(ty)}">{escape(b.label)}</text>'
        )
    # Time to recover: an interval from the phase end to the recovery point, its label in a
    # row of its own over the plot.
    for lab in rec_labels:
        r = lab.recovery
        ry = top - 8 - ROW * lab.row
        x0 = x(r.phase_end)
        never = r.recovered_at is None
        x1 = x(run.end) if r.recovered_at is None else x(r.recovered_at)
        add(
            f'<g class="recovery status-{escape(r.status.lower())}{" never" if never else ""}" '
            f'data-recovery="{escape(r.check)}">'
            f'<line class="edge" x1="{_f(x0)}" x2="{_f(x0)}" y1="{ry - 4}" y2="{bottom}"/>'
            f'<line class="span" x1="{_f(x0)}" x2="{_f(x1)}" y1="{ry}" y2="{ry}"/>'
            f'<line class="edge" x1="{_f(x1)}" x2="{_f(x1)}" y1="{ry - 4}" y2="{ry + 4}"/>'
        )
        if r.interval is not None and r.recovered_at is not None:
            lo, hi = r.interval
            xa = x(r.phase_end + lo) if lo is not None else x0
            xb = x(r.phase_end + hi) if hi is not None else x(run.end)
            add(
                f'<rect class="ci" data-recovery-interval="{_f(xa)},{_f(xb)}" x="{_f(xa)}" '
                f'y="{ry - 3}" width="{_f(max(xb - xa, 1.0))}" height="6"/>'
            )
        if r.deadline is not None:
            xd = _f(x(r.deadline))
            add(f'<line class="deadline" x1="{xd}" x2="{xd}" y1="{ry - 6}" y2="{bottom}"/>')
        add(f"<title>{escape(lab.text)}</title></g>")
        texts.append(
            f'<text class="label recovery-label" data-label="{escape(r.check)}" {lab.where} '
            f'y="{ry - 3}">{escape(lab.text)}</text>'
        )
    add(f'<g class="labels">{"".join(texts)}</g>')
    add("</svg>")
    return Markup("".join(out))


def _place_bound_label(
    b: Bound, x: Any, yy: float, top: float, bottom: float, labels: _Labels
) -> tuple[float, str, float]:
    """The baseline and x attributes of a bound's label, and the x it is aligned on: the first
    place, nearest its line, where it overprints no label placed before it (the first
    candidate if none is free)."""
    width = CHAR * len(b.label)
    ends = []
    x0, x1 = x(b.start), x(b.end)
    if x1 - 2 - width >= LEFT:  # right-aligned at the end of its window
        ends.append((f'x="{_f(x1 - 2)}" text-anchor="end"', x1 - 2 - width, x1 - 2, x1 - 2))
    start = max(x0, LEFT) + 2
    if start + width <= W - RIGHT:  # left-aligned at its start
        ends.append((f'x="{_f(start)}"', start, start + width, start))
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
        box = _text_box(lx0, lx1, ty)
        if labels.free(box):
            labels.take(box)
            return ty, where, ax
    ty, (where, lx0, lx1, ax) = candidates[0]
    labels.take(_text_box(lx0, lx1, ty))
    return ty, where, ax


def _whisker(w: Whisker, x: Any, y: _Y) -> str:
    """A vertical interval with caps on its closed sides (an open side runs to the plot's
    edge, uncapped) and a bar at the value."""
    xc = (x(w.start) + x(w.end)) / 2
    y_lo = y(w.lo) if w.lo is not None else y.top + PLOT_H
    y_hi = y(w.hi) if w.hi is not None else y.top
    d = f"M{_f(xc)} {_f(y_lo)}V{_f(y_hi)}"
    if w.lo is not None:
        d += f"M{_f(xc - 4)} {_f(y_lo)}h8"
    if w.hi is not None:
        d += f"M{_f(xc - 4)} {_f(y_hi)}h8"
    mid = f"M{_f(xc - 7)} {_f(y(w.value))}h14"
    iv = ",".join("" if v is None else repr(v) for v in (w.lo, w.hi))
    return (
        f'<g class="whisker" data-whisker="{escape(w.phase)}" data-value="{w.value!r}" '
        f'data-interval="{iv}"><path class="halo" d="{d}{mid}"/><path class="ci" d="{d}"/>'
        f'<path class="mid" d="{mid}"/><title>{escape(w.text)}</title></g>'
    )


def _path(xs: Sequence[float], values: Sequence[float | None], y: _Y) -> str:
    """A line with gaps where there is no data; a lone second becomes a dot (a zero-length
    segment drawn with round caps)."""
    parts: list[str] = []
    run = 0  # points in the current segment
    for cx, v in zip(xs, values, strict=True):
        if v is None:
            if run == 1:
                parts.append("h0")
            run = 0
            continue
        parts.append(f"{'L' if run else 'M'}{_f(cx)} {_f(y(v))}")
        run += 1
    if run == 1:
        parts.append("h0")
    return "".join(parts)
