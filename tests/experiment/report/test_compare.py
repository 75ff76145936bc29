"""compare_runs: per check and per phase deltas; exit 1 only when a check went PASS → FAIL."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from chaosproxy.experiment.report.compare import compare_runs
from tests.experiment.support_results import make_run


@pytest.fixture
def with_failover(tmp_path: Path) -> Path:
    return make_run(tmp_path / "failover", failover=True, run_id="aaaa1111")


@pytest.fixture
def without_failover(tmp_path: Path) -> Path:
    return make_run(tmp_path / "no-failover", failover=False, run_id="bbbb2222")


def _row(text: str, first_cell: str) -> list[str]:
    for line in text.splitlines():
        if line.startswith(f"| {first_cell} |"):
            return [c.strip() for c in line.strip()[1:-1].split(" | ")]
    raise AssertionError(f"no row {first_cell!r} in:\n{text}")


def test_pass_to_fail_exits_1_and_names_the_regressions(
    with_failover: Path, without_failover: Path
) -> None:
    c = compare_runs(with_failover, without_failover)
    assert c.exit_code == 1
    assert [r.name for r in c.regressions] == [
        "error rate stays low during broken-release",
        "recovers after broken-release",
    ]
    assert "2 checks went from PASS to FAIL" in c.text()


def test_fail_to_pass_is_a_fix_not_a_regression(
    with_failover: Path, without_failover: Path
) -> None:
    c = compare_runs(without_failover, with_failover)
    assert c.exit_code == 0
    assert "FAIL → PASS (fixed)" in c.text()


def test_the_same_run_twice_changes_nothing(with_failover: Path) -> None:
    c = compare_runs(with_failover, with_failover)
    assert c.exit_code == 0
    assert "No check went from PASS to FAIL." in c.text()
    assert all(ch.status_a == ch.status_b for ch in c.checks)


def test_markdown_shows_time_to_recover_error_rate_and_p95_deltas(
    with_failover: Path, without_failover: Path
) -> None:
    md = compare_runs(with_failover, without_failover).markdown()
    recover = _row(md, "recovers after broken-release")
    assert recover[1] == "PASS → FAIL (regressed)"
    assert recover[3] == r"1.7 s \[1.4 s, 2.1 s\] → 4.7 s \[4.4 s, 5.1 s\] (+3 s)"
    during = _row(md, "error rate stays low during broken-release")
    assert during[2] == r"3.04 % \[2.35 %, 3.92 %\] → 80 % \[78.2 %, 81.8 %\] (+77 pp)"
    broken = _row(md, "broken-release")
    a = json.loads((with_failover / "results.json").read_text())["phases"][1]
    b = json.loads((without_failover / "results.json").read_text())["phases"][1]
    assert broken[1].startswith("3.04 % → 80 %")
    p95 = re.fullmatch(r"(.+) ms → (.+) ms \((.+)\)", broken[2])
    assert p95 is not None
    assert float(p95[1]) == pytest.approx(a["client"]["p95"] * 1000, rel=1e-2)
    assert float(p95[2]) == pytest.approx(b["client"]["p95"] * 1000, rel=1e-2)
    assert p95[3].startswith("-")
    assert md.startswith("### Comparing runs:")
    assert "**FAIL:**" in md


def test_text_table_is_aligned_plain_text(with_failover: Path, without_failover: Path) -> None:
    text = compare_runs(with_failover, without_failover).text()
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("check "))
    assert set(lines[header + 1].replace(" ", "")) == {"-"}
    value_col = lines[header].index("value")
    for line in lines[header + 2 : header + 7]:
        assert line[value_col - 2 : value_col] == "  "  # columns line up
    assert "|" not in text


def test_a_check_only_in_one_run_shows_as_absent(
    with_failover: Path, without_failover: Path
) -> None:
    doc = json.loads((without_failover / "results.json").read_text())
    doc["checks"][0]["name"] = "renamed check"
    (without_failover / "results.json").write_text(json.dumps(doc))
    c = compare_runs(with_failover, without_failover)
    statuses = {ch.name: (ch.status_a, ch.status_b) for ch in c.checks}
    assert statuses["error rate stays low during broken-release"] == ("PASS", "absent")
    assert statuses["renamed check"] == ("absent", "FAIL")
    assert c.exit_code == 1  # the recovery check still regressed


def test_a_change_within_overlapping_intervals_is_marked(
    with_failover: Path, without_failover: Path
) -> None:
    c = compare_runs(with_failover, without_failover)
    cells = {ch.name: ch.cells() for ch in c.checks}
    # 0.419 % [0.139 %, 1.26 %] → 0 % [0 %, 0.562 %]: may be noise
    assert cells["recovers after broken-release"][2].endswith("(-0.419 pp; intervals overlap)")
    # 3.04 % [2.35 %, 3.92 %] → 80 % [78.2 %, 81.8 %]: not
    assert cells["error rate stays low during broken-release"][2].endswith("(+77 pp)")
    # phases show values only, and the same mark
    steady = next(p for p in c.phases if p.name == "steady").cells()
    assert steady[1] == "0 % → 0.101 % (+0.101 pp; intervals overlap)"


def test_comparing_with_a_run_from_before_intervals(tmp_path: Path, with_failover: Path) -> None:
    old = make_run(tmp_path / "old", failover=False, intervals=False, run_id="cccc3333")
    c = compare_runs(old, with_failover)
    cells = {ch.name: ch.cells() for ch in c.checks}
    during = cells["error rate stays low during broken-release"]
    assert during[2] == "80 % → 3.04 % [2.35 %, 3.92 %] (-77 pp)"
    assert cells["recovers after broken-release"][3] == "4.7 s → 1.7 s [1.4 s, 2.1 s] (-3 s)"
