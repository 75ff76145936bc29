"""report.md agrees with results.json: verdict, every check, one line per phase, no HTML."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from chaosproxy.experiment.report import fmt, write_reports
from chaosproxy.experiment.report.load import load_run
from chaosproxy.experiment.report.markdown import render_markdown
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
    assert [r[3] for r in rows] == [fmt.value(c["value"], c["unit"]) for c in checks]
    assert [r[4] for r in rows] == [fmt.bound(c) for c in checks]
    assert rows[0][3] == "80 %" and rows[0][4] == "< 5 %" and rows[0][5] == "-75 %"
    assert rows[1][6] == "5 s (≤ 4 s)"
    assert rows[-1][0] == "? INCONCLUSIVE" and rows[-1][3] == fmt.NO_DATA


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
    assert "clients: " in broken and "80 % errors" in broken
    assert "- check 'error rate stays low during broken-release' failed" in text


def test_no_html_and_hostile_text_cannot_break_the_table(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run")
    doc = _results(run_dir)
    doc["checks"][0]["name"] = "a | b <b>bold</b>\nnext line"
    (run_dir / "results.json").write_text(json.dumps(doc))
    text = render_markdown(load_run(run_dir))
    assert "<b>" not in text and "\nnext line" not in text
    rows = _table(text)
    assert all(len(r) == 7 for r in rows)
    assert rows[0][1] == "a | b <b>bold</b> next line"


def test_halted_and_interrupted_are_stated(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run", failover=False, halted=True, interrupted=True)
    text = render_markdown(load_run(run_dir))
    assert "**Interrupted:**" in text
    assert "**Halted** at +12.4 s by check 'error rate stays low during broken-release'" in text
