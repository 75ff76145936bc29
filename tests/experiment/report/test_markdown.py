"""report.md agrees with results.json: verdict, every check, one line per phase, no HTML."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from chaosproxy.experiment import numbers
from chaosproxy.experiment.report import check_text, fmt, write_reports
from chaosproxy.experiment.report.markdown import render_markdown
from chaosproxy.experiment.report.results_dir import load_run
from tests.experiment.support_results import make_run


def _table(text: str) -> list[list[str]]:
    """The rows of the checks table, cells unescaped."""
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    cells = [re.split(r"(?<!\\)\|", r.strip()[1:-1]) for r in rows]
    return [[re.sub(r"\\(.)", r"\1", c.strip()) for c in row] for row in cells][1:]


def _results(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "results.json").read_text())  # type: ignore[no-any-return]


def test_checks_table_agrees_with_results(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run", failover=False, prometheus=True, prometheus_data=False)
    write_reports(run_dir)
    text = (run_dir / "report.md").read_text()
    checks = _results(run_dir)["checks"]
    rows = _table(text)
    assert [r[1] for r in rows] == [c["name"] for c in checks]
    assert [r[0].split()[-1] for r in rows] == [c["status"] for c in checks]
    assert [r[3] for r in rows] == [check_text.check_estimate(c) for c in checks]
    assert [r[4] for r in rows] == [check_text.bound(c) for c in checks]
    assert rows[0][3] == "80 % [78.2 %, 81.8 %]" and rows[0][4] == "< 5 %" and rows[0][5] == "-75 %"
    assert rows[1][6] == "4.7 s [4.4 s, 5.1 s] (≤ 4 s)"
    assert rows[-1][0] == "? INCONCLUSIVE" and rows[-1][3] == numbers.NO_DATA
    rates = _results(run_dir)["false_alarm"]["checks"]
    assert [r[7] for r in rows] == [
        fmt.value(rates[c["name"]], "ratio") if c["name"] in rates else numbers.NO_DATA
        for c in checks
    ]


def test_verdict_heading_and_one_line_per_phase(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run", failover=False)
    text = render_markdown(load_run(run_dir))
    assert text.startswith("### ✖ FAIL: checkout-survives-bad-deploy\n")
    phase_lines = [line for line in text.splitlines() if line.startswith("- **")]
    assert [re.match(r"- \*\*(.+?)\*\*", line)[1] for line in phase_lines] == [  # type: ignore[index]
        "steady",
        "broken-release",
        "rollback",
        "recovered",
    ]
    broken = phase_lines[1]
    assert "faults" in broken and "1,050 faults injected, 0 absorbed (0 %)" in broken
    assert "clients: " in broken and "80 % \\[78.2 %, 81.8 %\\] errors" in broken
    assert "- check 'error rate stays low during broken-release' failed" in text


def test_no_html_and_hostile_text_cannot_break_the_table(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run")
    doc = _results(run_dir)
    doc["checks"][0]["name"] = "a | b <b>bold</b>\nnext line"
    (run_dir / "results.json").write_text(json.dumps(doc))
    text = render_markdown(load_run(run_dir))
    assert "<b>" not in text and "\nnext line" not in text
    rows = _table(text)
    assert all(len(r) == 8 for r in rows)
    assert rows[0][1] == "a | b <b>bold</b> next line"


def test_halted_and_interrupted_are_stated(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run", failover=False, halted=True, interrupted=True)
    text = render_markdown(load_run(run_dir))
    assert "**Interrupted:**" in text
    assert (
        "**Halted** at 14:40:12.4 UTC (+12.4 s) by check "
        "'error rate stays low during broken-release'" in text
    )


def test_confidence_and_false_alarms_follow_the_verdict(tmp_path: Path) -> None:
    text = render_markdown(load_run(make_run(tmp_path / "run", failover=False)))
    lines = text.splitlines()
    fa = lines.index(
        "**False alarms:** these checks would FAIL a healthy run of this system 1 % of the time "
        "\\[0.33 %, 2.98 %\\] (200 resamples of the baseline phase steady)."
    )
    assert lines[fa + 2].startswith("Intervals at 95 % confidence, each side")
    assert text.count("95 % confidence") == 1
    assert fa < next(i for i, line in enumerate(lines) if line.startswith("| status"))


def test_a_flagged_false_alarm_rate_is_a_warning(tmp_path: Path) -> None:
    text = render_markdown(load_run(make_run(tmp_path / "run", false_alarm=0.09)))
    (line,) = [x for x in text.splitlines() if "False alarms" in x]
    assert line.startswith("**⚠ False alarms:** these checks would FAIL")
    assert "more than the 5 % these checks allow" in line


def test_an_inconclusive_check_says_what_would_decide_it(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run", borderline=True)
    rows = _table(render_markdown(load_run(run_dir)))
    n = _results(run_dir)["checks"][-1]["needs_more_requests"]
    assert rows[-1][0] == f"? INCONCLUSIVE: needs about {n:,} more requests"
    assert all(not r[0].startswith("✔ PASS:") for r in rows)


def test_a_run_from_before_intervals_reads_as_it_did(tmp_path: Path) -> None:
    text = render_markdown(load_run(make_run(tmp_path / "run", failover=False, intervals=False)))
    assert "confidence" not in text and "False alarms" not in text and "\\[" not in text
    rows = _table(text)
    assert all(len(r) == 7 for r in rows)
    assert rows[0][3] == "80 %" and rows[1][6] == "4.7 s (≤ 4 s)"


def test_grpc_calls_are_told_by_status_name_per_phase_in_both_views(tmp_path: Path) -> None:
    """A phase with gRPC calls says how they ended, OK first, then the most frequent; a phase
    without says nothing of gRPC; the HTML report has the same line."""
    run_dir = make_run(tmp_path / "run", failover=True)
    doc = _results(run_dir)
    outage = doc["phases"][1]
    outage["client"]["grpc"] = {"UNAVAILABLE": 3, "OK": 700}
    outage["proxy"]["grpc"] = {"INTERNAL": 2, "UNAVAILABLE": 701}
    (run_dir / "results.json").write_text(json.dumps(doc))
    write_reports(run_dir)
    text = (run_dir / "report.md").read_text()
    phase_lines = [line for line in text.splitlines() if line.startswith("- **")]
    expected = "gRPC clients: OK 700, UNAVAILABLE 3; proxy: UNAVAILABLE 701, INTERNAL 2"
    assert phase_lines[1].endswith(expected)
    assert [i for i, line in enumerate(phase_lines) if "gRPC" in line] == [1]
    html = (run_dir / "report.html").read_text()
    assert f'data-phase-grpc="{outage["name"]}"' in html and "UNAVAILABLE 701" in html
    assert fmt.grpc_statuses(doc["phases"][0]) == ""
