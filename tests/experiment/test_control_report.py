"""The control group in the reports: both cohorts side by side on every per-second chart, the
difference with its interval in the checks table, the new checks in Markdown and JUnit, and
`experiment judge` judging them again from series.jsonl and clients.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.experiment.support_control import control_results_dir
from tests.experiment.support_dom import Dom, Element

CHARTS = {
    "client-throughput": {"client_requests_fault", "client_requests_control"},
    "client-error-rate": {"client_error_rate_fault", "client_error_rate_control"},
    "client-latency": {"client_p95_fault", "client_p95_control", "client_p50"},
    "proxy-throughput": {"proxy_requests_fault", "proxy_requests_control", "proxy_injected_fault"},
    "proxy-error-rate": {"proxy_error_rate_fault", "proxy_error_rate_control"},
    "proxy-latency": {"proxy_p95_fault", "proxy_p95_control", "proxy_p50"},
}


def _field(row: Element, name: str) -> str:
    cells = [e for e in _descendants(row) if e.attrs.get("data-field") == name]
    return " ".join(cells[0].all_text().split())


def _descendants(el: Element) -> list[Element]:
    return [d for c in el.children for d in (c, *_descendants(c))]


def test_every_per_second_chart_draws_both_cohorts(tmp_path: Path) -> None:
    run_dir = control_results_dir(tmp_path)
    dom = Dom((run_dir / "report.html").read_text())
    for chart, series in CHARTS.items():
        paths = [e for e in dom.having("data-series", "path") if e.within("data-chart") == chart]
        assert {p.attrs["data-series"] for p in paths} == series, chart
        assert all(int(p.attrs["data-points"]) > 0 for p in paths)
    notes = [e for e in dom.having("data-chart-note")]
    assert len(notes) == len(CHARTS) and "control cohort dashed" in notes[0].all_text()
    # the per-phase whisker is over both cohorts, and says so
    assert [e for e in dom.having("data-whisker-key") if "per phase, all" in e.all_text()]


def test_the_checks_table_shows_the_difference_with_its_interval(tmp_path: Path) -> None:
    run_dir = control_results_dir(tmp_path)
    dom = Dom((run_dir / "report.html").read_text())
    rows = {e.attrs["data-check"]: e for e in dom.having("data-check", "tr")}
    served = rows["fault cohort served like control"]
    assert served.attrs["data-status"] == "PASS"
    value = _field(served, "value")
    assert value.startswith("-0.433 pp [") and value.endswith(" pp]")
    assert "< +5 pp" in served.all_text()
    steady = rows["errors no worse than steady"]
    assert steady.attrs["data-status"] == "FAIL"  # the phase comparison blames the fault
    radius = rows["at most 60 % of users hurt"]
    assert radius.attrs["data-status"] == "INCONCLUSIVE"
    assert "needs about 25 more clients" in radius.all_text()


def test_markdown_and_junit_name_the_new_checks(tmp_path: Path) -> None:
    run_dir = control_results_dir(tmp_path)
    md = (run_dir / "report.md").read_text()
    assert "fault cohort served like control" in md and "pp" in md
    assert "blast radius in outage: 20 of 40 active clients hurt" in md
    junit = (run_dir / "junit.xml").read_text()
    assert 'name="fault cohort served like control"' in junit
    assert 'name="at most 60 % of users hurt"' in junit


def test_judge_rejudges_cohort_checks_from_the_saved_run(tmp_path: Path) -> None:
    run_dir = control_results_dir(tmp_path)
    before = json.loads((run_dir / "results.json").read_text())
    assert (run_dir / "clients.json").is_file()  # the run's per-client record
    edited = tmp_path / "edited.yaml"
    edited.write_text((tmp_path / "exp.yaml").read_text().replace("below: 0.6", "below: 0.9"))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "chaosproxy",
            "experiment",
            "judge",
            str(run_dir),
            "--experiment",
            str(edited),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    doc = json.loads(out.stdout)
    by = {c["name"]: c for c in doc["checks"]}
    want = {c["name"]: c for c in before["checks"]}
    for name in (
        "fault cohort served like control",
        "p95 of the fault cohort within 1.5x of control",
    ):
        assert by[name]["status"] == want[name]["status"] == "PASS"
        assert by[name]["interval"] == want[name]["interval"]  # from series.jsonl, exactly
    radius = by["at most 60 % of users hurt"]
    assert want["at most 60 % of users hurt"]["status"] == "INCONCLUSIVE"
    assert radius["status"] == "PASS" and radius["value"] == 0.5  # bound 0.9 now, same clients
