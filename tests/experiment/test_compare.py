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
    assert recover[3] == "2 s → 5 s (+3 s)"
    during = _row(md, "error rate stays low during broken-release")
    assert during[2] == "3.04 % → 80 % (+77 pp)"
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
