"""report.html from synthetic results directories: content, escaping, links, size. The charts
it draws: test_svg_chart.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from chaosproxy.experiment import numbers
from chaosproxy.experiment.report import fmt, write_reports
from chaosproxy.experiment.report.html import render_html
from chaosproxy.experiment.report.results_dir import ReportError, load_run
from tests.experiment.report.support_html import CHARTS, edit_results, report_dom
from tests.experiment.support_dom import Dom, Element
from tests.experiment.support_results import make_run


def test_write_reports_writes_the_three_artefacts(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run")
    written = write_reports(run_dir)
    assert [p.name for p in written] == ["report.html", "report.md", "junit.xml"]
    assert all(p.parent == run_dir and p.stat().st_size > 0 for p in written)
    assert not list(run_dir.glob(".*.tmp"))


def test_checks_table_shows_value_bound_margin_and_status_in_words(tmp_path: Path) -> None:
    dom = report_dom(make_run(tmp_path / "run", failover=False))
    rows = {e.attrs["data-check"]: e for e in dom.having("data-check", "tr")}
    fail = rows["error rate stays low during broken-release"]
    assert fail.attrs["data-status"] == "FAIL"
    text = fail.all_text()
    assert "✖ FAIL" in text and "80 %" in text and "< 5 %" in text and "-75 %" in text
    assert _field(fail, "value") == "80 % [78.2 %, 81.8 %]"
    assert _field(rows["recovers after broken-release"], "recovered") == (
        "4.7 s (≤ 4 s) [4.4 s, 5.1 s]"
    )
    assert "✔ PASS" in rows["p95 stays under 250 ms"].all_text()


def _field(row: Element, name: str) -> str:
    """A cell's text with its whitespace collapsed."""
    (cell,) = [e for e in _descendants(row) if e.attrs.get("data-field") == name]
    return " ".join(cell.all_text().split())


def _descendants(el: Element) -> list[Element]:
    return [d for c in el.children for d in (c, *_descendants(c))]


def _rows(dom: Dom) -> dict[str, Element]:
    return {e.attrs["data-check"]: e for e in dom.having("data-check", "tr")}


def test_the_confidence_is_said_once_near_the_verdict(tmp_path: Path) -> None:
    html = (write_reports(make_run(tmp_path / "run", failover=False))[0]).read_text()
    dom = Dom(html)
    (note,) = dom.having("data-confidence")
    assert note.all_text().startswith("Intervals at 95 % confidence, each side")
    assert html.count("95 % confidence") == 1
    header = next(e for e in dom.elements if e.tag == "header")
    assert note.parent is header


def test_inconclusive_says_how_many_more_requests_would_decide_it(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run", borderline=True)
    doc = json.loads((run_dir / "results.json").read_text())
    check = doc["checks"][-1]
    row = _rows(report_dom(run_dir))[check["name"]]
    assert row.attrs["data-status"] == "INCONCLUSIVE"
    assert _field(row, "needs") == f"needs about {check['needs_more_requests']:,} more requests"
    lo, hi = check["interval"]
    assert lo < check["bound"] < hi  # the interval straddles the bound
    assert _field(row, "value") == (
        f"{fmt.value(check['value'], 'ratio')} [{fmt.value(lo, 'ratio')}, {fmt.value(hi, 'ratio')}]"
    )
    # a PASS or FAIL needs nothing more
    needs = [
        e for e in report_dom(run_dir).having("data-field") if e.attrs["data-field"] == "needs"
    ]
    assert len(needs) == 1


def test_an_open_side_reads_as_an_ellipsis(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run")
    doc = json.loads((run_dir / "results.json").read_text())
    doc["checks"][2]["interval"] = [doc["checks"][2]["interval"][0], None]
    (run_dir / "results.json").write_text(json.dumps(doc))
    row = _rows(report_dom(run_dir))["p95 stays under 250 ms"]
    assert re.fullmatch(r"[\d.]+ ms \[[\d.]+ ms, …\]", _field(row, "value"))


@pytest.mark.parametrize(
    ("false_alarm", "kind", "shown"),
    [
        (0.01, "ok", "1 % of the time [0.33 %, 2.98 %]"),
        (0.09, "warning", "9 % of the time [6.2 %, 12.9 %]"),
        (None, "missing", "not estimated for this run"),
    ],
)  # fmt: skip
def test_the_false_alarm_estimate_sits_near_the_verdict(
    tmp_path: Path, false_alarm: float | None, kind: str, shown: str
) -> None:
    dom = report_dom(make_run(tmp_path / "run", false_alarm=false_alarm))
    (line,) = dom.having("data-false-alarm")
    assert line.attrs["data-false-alarm"] == kind
    assert kind in line.attrs["class"]
    text = line.all_text()
    assert "0.33 %" not in text  # a number keeps its unit on its line (a no-break space)
    text = text.replace("\u00a0", " ")
    assert shown in text
    if kind != "missing":
        assert "(200 resamples of the baseline phase steady)" in text
    assert ("more than the 5 % these checks allow" in text) == (kind == "warning")


def test_each_check_shows_its_false_alarm_rate(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run", prometheus=True, false_alarm=0.09)
    doc = json.loads((run_dir / "results.json").read_text())
    rows = _rows(report_dom(run_dir))
    rates = doc["false_alarm"]["checks"]
    for name, row in rows.items():
        want = fmt.value(rates[name], "ratio") if name in rates else numbers.NO_DATA
        assert _field(row, "false-alarm") == want
    # the check on the baseline itself has no rate: it judges the very seconds resampled
    assert (
        _field(rows["prometheus error ratio stays low in steady"], "false-alarm") == numbers.NO_DATA
    )


def test_a_run_from_before_intervals_renders_as_it_did(tmp_path: Path) -> None:
    dom = report_dom(make_run(tmp_path / "run", failover=False, intervals=False))
    assert not dom.having("data-confidence")
    assert not dom.having("data-false-alarm")
    assert not dom.having("data-whisker")
    rows = _rows(dom)
    fail = rows["error rate stays low during broken-release"]
    assert _field(fail, "value") == "80 %"
    assert _field(rows["recovers after broken-release"], "recovered") == "4.7 s (≤ 4 s)"
    assert not [e for e in _descendants(fail) if e.attrs.get("data-field") == "false-alarm"]


def test_a_ratio_reads_one_way_in_tables_and_on_axes(tmp_path: Path) -> None:
    """The same formatter for a ratio everywhere: '0.0123 %', never '0.01%' beside it."""
    dom = report_dom(make_run(tmp_path / "run", failover=False))
    ticks = [
        e.all_text()
        for e in dom.elements
        if e.attrs.get("class") == "tick" and e.within("data-chart") == "client-error-rate"
    ]
    labels = [t for t in ticks if ":" not in t]  # not the time axis
    assert labels and all(re.fullmatch(r"[\d.]+ %", t) for t in labels)
    assert fmt.value(0.000123, "ratio") == "0.0123 %"


def test_a_throughput_column_reads_one_way() -> None:
    """'90.0 req/s' beside '90.1 req/s', never '90 req/s' beside '90.12 req/s'."""
    got = [fmt.value(v, "req/s") for v in (90.0, 90.12, 0.5, 99.96, 1234.4)]
    assert got == ["90.0 req/s", "90.1 req/s", "0.5 req/s", "100 req/s", "1,234 req/s"]


def test_inconclusive_prometheus_check_reads_inconclusive_and_has_its_chart(tmp_path: Path) -> None:
    dom = report_dom(make_run(tmp_path / "run", prometheus=True, prometheus_data=False))
    row = next(
        e for e in dom.having("data-check", "tr") if e.attrs["data-status"] == "INCONCLUSIVE"
    )
    assert "? INCONCLUSIVE" in row.all_text()
    assert "chaosproxy_requests_total" in row.all_text()
    assert "prometheus-5" in {e.attrs["data-chart"] for e in dom.having("data-chart", "svg")}


def test_halted_and_interrupted_runs_say_so(tmp_path: Path) -> None:
    dom = report_dom(make_run(tmp_path / "run", failover=False, halted=True, interrupted=True))
    (halted,) = dom.having("data-halted", "p")
    assert "error rate stays low during broken-release" in halted.all_text()
    assert "+12.4 s" in halted.all_text()
    assert dom.having("data-interrupted")
    assert len(dom.having("data-halted", "g")) == len(CHARTS)  # a line on every chart
    (verdict,) = dom.having("data-verdict")
    assert verdict.attrs["data-verdict"] == "FAIL"


def test_resilience_and_client_behaviour_per_phase(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run")
    phases = json.loads((run_dir / "results.json").read_text())["phases"]
    dom = report_dom(run_dir)
    broken = [
        e.all_text()
        for e in dom.having("data-phase", "tr")
        if e.attrs["data-phase"] == "broken-release"
    ]
    assert len(broken) == 2  # evidence table and client behaviour table
    res = phases[1]["resilience"]
    assert f"{res['injected']:,}" in broken[0] and f"{res['absorbed']:,}" in broken[0]
    assert "1.8\u00d7" in broken[1]


def test_inputs_and_provenance_are_shown(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run")
    doc = json.loads((run_dir / "results.json").read_text())
    html = (write_reports(run_dir)[0]).read_text()
    dom = Dom(html)
    sources = {e.attrs["data-source"]: e.all_text() for e in dom.having("data-source")}
    assert sources["scenario"] == doc["experiment"]["scenario_text"]
    assert sources["experiment"] == doc["experiment"]["text"]
    assert sources["command"] == doc["run"]["command"]
    assert "2.47.0" in html and "3.11.7" in html


def test_links_only_to_files_present_and_inside_the_directory(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run")
    edit_results(
        run_dir,
        files={
            "timeseries": "timeseries.csv",
            "journal": "journal.jsonl",
            "locust": ["locust.json", "locust_stats.csv", "../../etc/passwd", "/etc/passwd"],
        },
    )
    links = {e.attrs["data-file"]: e.attrs["href"] for e in report_dom(run_dir).having("data-file")}
    assert links == {
        "results.json": "results.json",
        "report.md": "report.md",
        "junit.xml": "junit.xml",
        "timeseries.csv": "timeseries.csv",
        "journal.jsonl": "journal.jsonl",
        "locust.json": "locust.json",  # locust_stats.csv is not there: no link
    }


def test_hostile_text_is_escaped_everywhere(tmp_path: Path) -> None:
    evil = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    run_dir = make_run(tmp_path / "run", name=evil)
    doc = json.loads((run_dir / "results.json").read_text())
    doc["experiment"]["scenario_text"] = "</pre>" + evil
    doc["reasons"] = [evil]
    doc["checks"][0]["name"] = evil
    doc["checks"][0]["message"] = evil
    doc["phases"][0]["name"] = evil
    doc["files"]["journal"] = "javascript:alert(3)"
    (run_dir / "results.json").write_text(json.dumps(doc))
    (run_dir / "javascript:alert(3)").write_text("")
    html = render_html(load_run(run_dir))
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    dom = Dom(html)
    hrefs = [e.attrs["href"] for e in dom.having("href")]
    assert all(not h.lower().startswith("javascript:") for h in hrefs)


def test_the_page_fetches_nothing_and_runs_no_script(tmp_path: Path) -> None:
    html = render_html(load_run(make_run(tmp_path / "run")))
    assert "default-src 'none'" in html
    assert not re.search(r"<(script|link|iframe|object|embed)\b", html)
    assert not re.search(r"\bsrc=|@import|url\((?!#)", html)


def test_a_ten_minute_run_stays_well_under_one_mebibyte(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run", scale=20, prometheus=True)
    assert len((run_dir / "timeseries.csv").read_text().splitlines()) == 600 + 1
    size = write_reports(run_dir)[0].stat().st_size
    print(f"report.html for a 600-second run: {size} bytes")
    assert size < 512 * 1024


def test_without_timeseries_the_report_says_so_and_has_no_charts(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run")
    (run_dir / "timeseries.csv").unlink()
    dom = report_dom(run_dir)
    assert dom.having("data-no-timeseries")
    assert not dom.having("data-chart")
    assert dom.having("data-check", "tr")


def test_unknown_schema_version_is_a_clear_error(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run")
    edit_results(run_dir, schema_version=2)
    with pytest.raises(ReportError, match="schema_version 2 is not supported"):
        write_reports(run_dir)


def test_a_directory_without_results_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"no results\.json"):
        write_reports(tmp_path)


def test_rewriting_from_the_same_files_gives_the_same_bytes(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run", prometheus=True)
    first = [p.read_bytes() for p in write_reports(run_dir)]
    assert [p.read_bytes() for p in write_reports(run_dir)] == first


def test_malformed_parts_read_as_missing_not_as_a_crash(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run")
    edit_results(
        run_dir,
        verdict="INCONCLUSIVE",
        halted={"check": "gone"},
        experiment="not a mapping",
        run={"started": "yesterday", "versions": {}},
        phases=[{"name": "steady"}, {"start": "soon", "client": [], "resilience": None}],
        checks=[{"name": "odd", "value": "12", "unit": None}, {}],
        events=["not an event"],
    )
    dom = report_dom(run_dir)
    assert {e.attrs["data-check"] for e in dom.having("data-check", "tr")} == {"odd", ""}
    (md_path, junit_path) = (run_dir / "report.md", run_dir / "junit.xml")
    assert "? INCONCLUSIVE" in md_path.read_text()
    assert 'tests="2"' in junit_path.read_text()


@pytest.mark.parametrize(
    ("proxy", "admin", "shown"),
    [
        ("http://127.0.0.1:3100", ["http://127.0.0.1:3101"], "proxyhttp://127.0.0.1:3100"),
        (None, ["http://10.0.0.5:8081", "http://10.0.0.6:8081"],
         "sidecars (admin)http://10.0.0.5:8081, http://10.0.0.6:8081"),
        (None, [], "proxy\u2013"),
    ],
)  # fmt: skip
def test_the_summary_names_the_proxy_or_the_sidecars_never_none(
    tmp_path: Path, proxy: str | None, admin: list[str], shown: str
) -> None:
    run_dir = make_run(tmp_path / "run")
    doc = json.loads((run_dir / "results.json").read_text())
    edit_results(run_dir, experiment=doc["experiment"] | {"proxy": proxy, "admin": admin})
    html = (write_reports(run_dir)[0]).read_text()
    cells = re.findall(r"<div><dt>(.*?)</dt><dd>(.*?)</dd></div>", html)
    assert shown in ["".join(c) for c in cells]
    assert "None" not in "".join(v for _, v in cells)
