"""The per-second charts as drawn in report.html: every chart kind with its series and the
phase bands, injected faults, the checks' bounds and times to recover on the chart of their
metric, each phase's summary with its interval, and a lone second drawn as a dot."""

from __future__ import annotations

import json
import re
from pathlib import Path

from chaosproxy.experiment.report.results_dir import load_run
from tests.experiment.report.support_html import CHARTS, report_dom
from tests.experiment.support_results import make_run


def test_every_chart_holds_its_series_and_the_phase_bands(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run")
    dom = report_dom(run_dir)
    rows = len((run_dir / "timeseries.csv").read_text().splitlines()) - 1
    svgs = {e.attrs["data-chart"]: e for e in dom.having("data-chart", "svg")}
    assert set(svgs) == set(CHARTS)
    for chart, series in CHARTS.items():
        paths = [e for e in dom.having("data-series", "path") if e.within("data-chart") == chart]
        assert {p.attrs["data-series"] for p in paths} == series
        for p in paths:
            assert int(p.attrs["data-points"]) > 0
            assert p.attrs["d"].startswith("M")
        bands = [
            e.attrs["data-phase"]
            for e in dom.having("data-phase", "g")
            if e.within("data-chart") == chart
        ]
        assert bands == ["steady", "broken-release", "rollback", "recovered"]
    # Latency series skip the second without requests: one point fewer than rows.
    p50 = next(e for e in dom.having("data-series") if e.attrs["data-series"] == "client_p50")
    assert int(p50.attrs["data-points"]) == rows - 1


def test_injected_faults_are_marked_on_every_chart(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run")
    run = load_run(run_dir)
    seconds = sum(1 for v in run.series.column("proxy_injected") if v)
    marks = report_dom(run_dir).having("data-injected-seconds")
    assert len(marks) == len(CHARTS)
    assert {int(m.attrs["data-injected-seconds"]) for m in marks} == {seconds}


def test_check_bounds_sit_on_the_chart_of_their_metric_and_source(tmp_path: Path) -> None:
    dom = report_dom(make_run(tmp_path / "run"))
    bounds = {(e.attrs["data-check"], e.within("data-chart")) for e in dom.having("data-bound")}
    assert bounds == {
        ("error rate stays low during broken-release", "client-error-rate"),
        ("recovers after broken-release", "client-error-rate"),
        ("p95 stays under 250 ms", "client-latency"),
        # throughput vs steady is a ratio (x), retries have no per-second chart: no lines.
    }


def test_time_to_recover_is_an_interval_from_the_phase_end(tmp_path: Path) -> None:
    dom = report_dom(make_run(tmp_path / "run", failover=False))
    (rec,) = dom.having("data-recovery")
    assert rec.attrs["data-recovery"] == "recovers after broken-release"
    assert rec.within("data-chart") == "client-error-rate"
    assert "status-fail" in rec.attrs["class"]
    assert "recovered in 4.7 s [4.4 s, 5.1 s] (allowed 4 s)" in rec.all_text()
    # the interval of the recovery point, as a band at its end, past the allowed time
    (band,) = [e for e in dom.having("data-recovery-interval") if e.tag == "rect"]
    lo, hi = map(float, band.attrs["data-recovery-interval"].split(","))
    deadline = next(e for e in dom.elements if e.attrs.get("class") == "deadline")
    assert float(deadline.attrs["x1"]) < lo < hi


def test_never_recovered_is_drawn_to_the_end_of_the_run(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run", failover=False)
    doc = json.loads((run_dir / "results.json").read_text())
    doc["checks"][1]["recovered_after_s"] = None
    (run_dir / "results.json").write_text(json.dumps(doc))
    (rec,) = report_dom(run_dir).having("data-recovery")
    assert "never" in rec.attrs["class"]
    assert "never recovered" in rec.all_text()


def test_phase_summaries_are_drawn_with_their_intervals(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run")
    phases = json.loads((run_dir / "results.json").read_text())["phases"]
    dom = report_dom(run_dir)
    drawn = {
        chart: {
            e.attrs["data-whisker"]: e
            for e in dom.having("data-whisker")
            if e.within("data-chart") == chart
        }
        for chart in CHARTS
    }
    for source in ("client", "proxy"):
        for chart, key in ((f"{source}-error-rate", "error_rate"), (f"{source}-latency", "p95")):
            assert set(drawn[chart]) == {p["name"] for p in phases}
            for p in phases:
                w = drawn[chart][p["name"]]
                assert float(w.attrs["data-value"]) == p[source][key]
                lo, hi = (float(v) for v in w.attrs["data-interval"].split(","))
                assert [lo, hi] == p[source][f"{key}_interval"]
    assert not drawn["client-throughput"] and not drawn["proxy-throughput"]
    keys = [e.within("data-chart") for e in dom.having("data-whisker-key")]
    assert sorted(keys) == sorted(
        ["client-error-rate", "client-latency", "proxy-error-rate", "proxy-latency"]
    )


def test_a_lone_second_of_data_is_drawn_as_a_dot(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run")
    lines = (run_dir / "timeseries.csv").read_text().splitlines()
    header = lines[0].split(",")
    col = header.index("client_p50")
    rows = [line.split(",") for line in lines[1:]]
    for i, row in enumerate(rows):
        if i != 10:
            row[col] = ""
    (run_dir / "timeseries.csv").write_text(
        "\n".join([lines[0], *(",".join(r) for r in rows)]) + "\n"
    )
    p50 = next(
        e
        for e in report_dom(run_dir).having("data-series")
        if e.attrs["data-series"] == "client_p50"
    )
    assert p50.attrs["data-points"] == "1"
    assert re.fullmatch(r"M[\d.]+ [\d.]+h0", p50.attrs["d"])
