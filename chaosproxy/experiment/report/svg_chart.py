"""One chart drawn as static SVG: phase bands, axes in seconds since the start and UTC, the
series (lines with gaps, bars for counts), injected-fault ticks, the halt, and the checks'
bounds, times to recover and per-phase whiskers, every element with data- attributes.

`render` is one function on purpose: it draws in paint order (bands under lines under labels)
and places labels in a fixed order so none overprints another; split into steps, each would
pass the same scale, label boxes and output along. Where things go is `svg_layout.py`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from markupsafe import Markup, escape

from chaosproxy.experiment.report import fmt, instants
from chaosproxy.experiment.report.chart_model import Chart, Whisker
from chaosproxy.experiment.report.results_dir import ResultsDir, number
from chaosproxy.experiment.report.svg_layout import (
    BAND_CHAR,
    BOTTOM,
    LEFT,
    LINE,
    PLOT_H,
    PLOT_W,
    RIGHT,
    ROW,
    Labels,
    W,
    YScale,
    place_bound_label,
    px,
    recovery_rows,
    since_start,
    text_box,
    tick_label,
    x_step,
    y_scale,
)


def render(run: ResultsDir, chart: Chart) -> Markup:
    """The chart as an inline <svg>, its time axis the run's (shared by every chart)."""
    t0, t1 = run.start, run.end
    span = max(t1 - t0, 1.0)

    def x(t: float) -> float:
        return LEFT + PLOT_W * min(max((t - t0) / span, 0.0), 1.0)

    rec_labels = recovery_rows(chart, x, run.end)
    rows = max(2, 1 + max((r.row for r in rec_labels), default=0))
    top = 10 + ROW * rows  # room for the time-to-recover labels over the plot
    height = top + PLOT_H + BOTTOM
    bottom = top + PLOT_H
    y = y_scale(chart, top)
    labels = Labels()
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
        when = f"{instants.clock(ps)} to {instants.clock(pe)} UTC, {fmt.duration(pe - ps)}"
        add(
            f'<g class="band band-{kind} band-{i % 2}" data-phase="{escape(name)}">'
            f'<rect x="{px(x0)}" y="{top}" width="{px(max(x1 - x0, 0.5))}" height="{PLOT_H}"{fill}>'
            f"<title>{escape(name)}: {escape(when)}</title></rect>"
        )
        width = BAND_CHAR * len(name)
        if x1 - x0 >= width + 6:
            box = text_box(x0 + 4, x0 + 4 + width, top + 12, 12)
            labels.take(box)
            add(f'<text class="band-label" x="{px(x0 + 4)}" y="{top + 12}">{escape(name)}</text>')
        add("</g>")
        edges[round(ps, 3)] = name  # an edge is named by the phase that begins there
        edges.setdefault(round(pe, 3), "")
    for at, name in sorted(edges.items()):
        if t0 < at < t1:
            xe = px(x(at))
            add(
                f'<line class="phase-edge" data-phase-edge="{escape(name or "end")}" '
                f'x1="{xe}" x2="{xe}" y1="{top}" y2="{bottom}"/>'
            )
    # Grid and axes.
    for v in y.ticks():
        yy = px(y(v))
        add(f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{yy}" y2="{yy}"/>')
        add(
            f'<text class="tick" x="{LEFT - 6}" y="{yy}" text-anchor="end" '
            f'dominant-baseline="middle">{escape(tick_label(v, chart.unit))}</text>'
        )
    # Time: minutes:seconds since the run started, and beneath it the UTC time of day (people
    # line a run up with dashboards by the clock).
    step = x_step(span)
    tick = 0
    while tick <= span + 1e-9:
        xx = x(t0 + tick)
        add(f'<line class="axis" x1="{px(xx)}" x2="{px(xx)}" y1="{bottom}" y2="{bottom + 4}"/>')
        # The first and last labels would overflow the plot's edges if centred on their tick.
        if xx > W - RIGHT - 26:
            anchor = "end"
        elif xx < LEFT + 26:
            anchor = "start"
        else:
            anchor = "middle"
        utc = instants.clock(round(t0 + tick))
        add(
            f'<text class="tick" x="{px(xx)}" y="{bottom + 16}" text-anchor="{anchor}">'
            f"{since_start(tick)}</text>"
            f'<text class="tick utc" x="{px(xx)}" y="{bottom + 30}" text-anchor="{anchor}" '
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
                f"M{px(cx - bar_w / 2)} {bottom}V{px(y(v))}h{px(bar_w)}V{bottom}Z"
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
        d = "".join(f"M{px(cx)} {bottom + 1}v5" for cx in marks)
        add(f'<path class="injected" data-injected-seconds="{len(marks)}" d="{d}"/>')
    # A halt: where a check stopped the run.
    halted = run.results.get("halted")
    if isinstance(halted, dict) and number(halted.get("at")) is not None:
        xh = x(float(halted["at"]))
        width = BAND_CHAR * len("halted")
        ty = top + 28.0
        while not labels.free(text_box(xh + 3, xh + 3 + width, ty, 12)) and ty < bottom - 20:
            ty += LINE
        labels.take(text_box(xh + 3, xh + 3 + width, ty, 12))
        add(
            f'<g class="halt" data-halted="{escape(str(halted.get("check", "")))}">'
            f'<line x1="{px(xh)}" x2="{px(xh)}" y1="{top}" y2="{bottom}"/>'
            f'<text x="{px(xh + 3)}" y="{px(ty)}">halted</text></g>'
        )
    # Checks' bounds, each labelled where it overprints no other label: above its line, else
    # below, else a line further out, at the end of its window or else at its start.
    # Labels go on last, over every line, each on a white halo.
    texts: list[str] = []
    for b in chart.bounds:
        by = y(b.value)
        ty, where, ax = place_bound_label(b, x, by, top, bottom, labels)
        status = escape(b.status.lower())
        # A label moved off its line keeps a leader to it, so it still reads as that line's.
        near = by - 4 - LINE / 2 <= ty <= by + 13 + LINE / 2
        end = ty + 3 if ty < by else ty - 10
        leader = (
            ""
            if near
            else f'<line class="leader" x1="{px(ax)}" x2="{px(ax)}" y1="{px(by)}" y2="{px(end)}"/>'
        )
        add(
            f'<g class="bound status-{status}" data-check="{escape(b.check)}" '
            f'data-bound="{b.value!r}">'
            f'<line x1="{px(x(b.start))}" x2="{px(x(b.end))}" y1="{px(by)}" y2="{px(by)}"/>'
            f"{leader}<title>{escape(b.label)}</title></g>"
        )
        texts.append(
            f'<text class="label bound-label status-{status}" data-label="{escape(b.check)}" '
            f'{where} y="{px(ty)}">{escape(b.label)}</text>'
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
            f'<line class="edge" x1="{px(x0)}" x2="{px(x0)}" y1="{ry - 4}" y2="{bottom}"/>'
            f'<line class="span" x1="{px(x0)}" x2="{px(x1)}" y1="{ry}" y2="{ry}"/>'
            f'<line class="edge" x1="{px(x1)}" x2="{px(x1)}" y1="{ry - 4}" y2="{ry + 4}"/>'
        )
        if r.interval is not None and r.recovered_at is not None:
            lo, hi = r.interval
            xa = x(r.phase_end + lo) if lo is not None else x0
            xb = x(r.phase_end + hi) if hi is not None else x(run.end)
            add(
                f'<rect class="ci" data-recovery-interval="{px(xa)},{px(xb)}" x="{px(xa)}" '
                f'y="{ry - 3}" width="{px(max(xb - xa, 1.0))}" height="6"/>'
            )
        if r.deadline is not None:
            xd = px(x(r.deadline))
            add(f'<line class="deadline" x1="{xd}" x2="{xd}" y1="{ry - 6}" y2="{bottom}"/>')
        add(f"<title>{escape(lab.text)}</title></g>")
        texts.append(
            f'<text class="label recovery-label" data-label="{escape(r.check)}" {lab.where} '
            f'y="{ry - 3}">{escape(lab.text)}</text>'
        )
    add(f'<g class="labels">{"".join(texts)}</g>')
    add("</svg>")
    return Markup("".join(out))


def _whisker(w: Whisker, x: Any, y: YScale) -> str:
    """A vertical interval with caps on its closed sides (an open side runs to the plot's
    edge, uncapped) and a bar at the value."""
    xc = (x(w.start) + x(w.end)) / 2
    y_lo = y(w.lo) if w.lo is not None else y.top + PLOT_H
    y_hi = y(w.hi) if w.hi is not None else y.top
    d = f"M{px(xc)} {px(y_lo)}V{px(y_hi)}"
    if w.lo is not None:
        d += f"M{px(xc - 4)} {px(y_lo)}h8"
    if w.hi is not None:
        d += f"M{px(xc - 4)} {px(y_hi)}h8"
    mid = f"M{px(xc - 7)} {px(y(w.value))}h14"
    iv = ",".join("" if v is None else repr(v) for v in (w.lo, w.hi))
    return (
        f'<g class="whisker" data-whisker="{escape(w.phase)}" data-value="{w.value!r}" '
        f'data-interval="{iv}"><path class="halo" d="{d}{mid}"/><path class="ci" d="{d}"/>'
        f'<path class="mid" d="{mid}"/><title>{escape(w.text)}</title></g>'
    )


def _path(xs: Sequence[float], values: Sequence[float | None], y: YScale) -> str:
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
        parts.append(f"{'L' if run else 'M'}{px(cx)} {px(y(v))}")
        run += 1
    if run == 1:
        parts.append("h0")
    return "".join(parts)
