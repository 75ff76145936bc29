"""The charts of a report and which columns each draws: per view (client, proxy) throughput,
error rate and latency, and one per Prometheus check.

Why SVG from Python rather than a JavaScript library: the report must open offline, print
sharply and be safe with hostile strings. Static SVG needs no script at all (the page's CSP
forbids scripts), prints as vectors, and every element carries data- attributes tests can
assert on. A 10-minute run stays in the low hundreds of KiB. The cost is interactivity: no
zoom or hover read-out; the numbers are in the tables and in timeseries.csv.
"""

from __future__ import annotations

from chaosproxy.experiment.report import cohort_charts
from chaosproxy.experiment.report.chart_checks import place_checks, place_phase_intervals
from chaosproxy.experiment.report.chart_model import Chart, Series
from chaosproxy.experiment.report.results_dir import ResultsDir
from chaosproxy.experiment.report.svg_chart import render


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
    cohort_charts.split_by_cohort(run, charts)  # a control group: both cohorts side by side
    place_checks(run, charts)
    place_phase_intervals(run, charts)
    cohort_charts.name_whiskers(charts)
    for chart in charts:
        chart.svg = render(run, chart)
    return charts
