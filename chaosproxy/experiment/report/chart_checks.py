"""The checks on the charts: each check's bound as a line over the window it judges, its time
to recover as an interval from the phase end, and each phase's summary (error rate, p95) with
its interval as a whisker. Where on the chart they go is `svg_layout.py`; this module only
decides which chart carries which mark."""

from __future__ import annotations

from typing import Any

from chaosproxy.experiment.report import check_text, fmt, not_reached
from chaosproxy.experiment.report.chart_model import Bound, Chart, Recovery, Whisker
from chaosproxy.experiment.report.results_dir import ResultsDir, mapping, number


def place_checks(run: ResultsDir, charts: list[Chart]) -> None:
    """Each check's bound and time to recover on the chart of its source and metric."""
    for i, check in enumerate(run.checks):
        source, metric = check.get("source"), check.get("metric")
        target = None
        if source == "prometheus":
            target = next((c for c in charts if c.id == f"prometheus-{i}"), None)
        else:
            target = next((c for c in charts if c.source == source and metric in c.metrics), None)
        # A PASS on a window the halt left empty is no evidence: nothing of it is drawn.
        if target is None or not_reached.unreached(run.results, check):
            continue
        name, status = str(check.get("name", f"check {i}")), str(check.get("status"))
        b = number(check.get("bound"))
        # A bound relative to another phase (unit x) is not on the chart's scale.
        if b is not None and check.get("unit") == target.unit and not check.get("compare_to"):
            start, end = _check_window(run, check)
            label = f"{name}: {check_text.bound(check)}"
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


def place_phase_intervals(run: ResultsDir, charts: list[Chart]) -> None:
    """Each phase's error rate (p95) with its interval on the error-rate (latency) charts; only
    for documents that have the intervals."""
    confidence = check_text.run_confidence(run.results, run.checks)
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
