"""The control group on the per-second charts: when a run's timeseries has cohort columns
(`client_error_rate_fault`, `proxy_p95_control`, ...), each view's throughput, error-rate and
latency chart draws the fault cohort and the control cohort side by side, in the same seconds —
the comparison `compare_to: control` judges, made visible. A view without a split keeps its
charts as they were.

Kept apart from `chart_kinds.py` and `svg_chart.py` (the kinds of chart, and the drawing):
this module only chooses which columns a chart draws.
"""

from __future__ import annotations

from chaosproxy.experiment.report.chart_model import Chart, Series
from chaosproxy.experiment.report.results_dir import ResultsDir

FAULT, CONTROL = "fault", "control"  # the cohort names of `chaosproxy.common.cohort`
NOTE = "fault cohort solid, control cohort dashed: the same seconds, faults only in the first"


def has_split(run: ResultsDir, source: str) -> bool:
    """Whether the timeseries has both cohorts' columns for this view."""
    cols = run.series.values
    return all(f"{source}_requests_{c}" in cols for c in (FAULT, CONTROL))


def split_by_cohort(run: ResultsDir, charts: list[Chart]) -> None:
    """Replace the series of each view's per-second charts by the two cohorts' (in place)."""
    ts = run.series
    for chart in charts:
        if chart.source not in ("client", "proxy") or not has_split(run, chart.source):
            continue
        src = chart.source
        kind = chart.id.removeprefix(f"{src}-")
        if kind == "throughput":
            series = [
                Series(
                    f"{src}_requests_{c}",
                    f"{c} requests/s",
                    style,
                    ts.column(f"{src}_requests_{c}"),
                )
                for c, style in ((FAULT, "s0"), (CONTROL, "s1"))
            ]
            if src == "proxy":
                key = f"proxy_injected_{FAULT}"
                series.append(Series(key, "faults injected/s (fault)", "bars", ts.column(key)))
        elif kind == "error-rate":
            series = [
                Series(
                    f"{src}_error_rate_{c}",
                    f"{c} cohort",
                    style,
                    ts.column(f"{src}_error_rate_{c}"),
                )
                for c, style in ((FAULT, "s0"), (CONTROL, "s1"))
            ]
        elif kind == "latency":
            series = [
                Series(f"{src}_p95_{c}", f"p95 {c}", style, ts.column(f"{src}_p95_{c}"))
                for c, style in ((FAULT, "s0"), (CONTROL, "s1"))
            ]
            series.append(Series(f"{src}_p50", "p50 all", "s2", ts.column(f"{src}_p50")))
        else:
            continue
        chart.series = series
        chart.note = NOTE


def name_whiskers(charts: list[Chart]) -> None:
    """On a chart split by cohort, the per-phase summary is over both cohorts: say so."""
    for chart in charts:
        if chart.note == NOTE and chart.whisker_label:
            chart.whisker_label = chart.whisker_label.replace(" per phase", " per phase, all")
