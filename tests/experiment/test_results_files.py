"""What a run writes survives whatever text it carries: results.json with a lone surrogate, and
a console table that never passes escape codes to the terminal."""

from __future__ import annotations

import json
from pathlib import Path

from chaosproxy.experiment.results import terminal_safe, write_json


def test_results_json_with_a_lone_surrogate_is_written_and_reads_back(tmp_path: Path) -> None:
    doc = {"checks": [{"name": "lone \ud800 surrogate", "message": "é"}]}
    write_json(tmp_path / "results.json", doc)
    back = json.loads((tmp_path / "results.json").read_bytes())
    assert back == doc


def test_plain_results_stay_readable_utf8(tmp_path: Path) -> None:
    write_json(tmp_path / "results.json", {"name": "café ✓"})
    assert "café ✓" in (tmp_path / "results.json").read_text(encoding="utf-8")


def test_escape_codes_and_bidi_overrides_never_reach_the_terminal() -> None:
    shown = terminal_safe("check \x1b[2J\x07 name \u202e flipped\nnext\tline")
    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown
    assert "\\x1b[2J" in shown and "\\u202e" in shown and "\nnext\tline" in shown


def test_a_recovery_checks_margin_is_the_time_it_had_to_spare() -> None:
    """Decided by its time: within - recovered, negative when late (the error rate it then had
    to spare, positive even for a late recovery, is not what decided it)."""
    from chaosproxy.experiment.model import CheckSpec
    from chaosproxy.experiment.outcome import CheckResult

    spec = CheckSpec("recovers", "error_rate", after_phase="outage", bound=0.01, within=4.0)
    late = CheckResult(spec, "FAIL", 0.0, 500, "", recovered_after_s=4.7, lo=0.0, hi=0.006)
    assert late.to_json()["margin"] == -0.7
    early = CheckResult(spec, "PASS", 0.0, 500, "", recovered_after_s=1.5, lo=0.0, hi=0.006)
    assert early.to_json()["margin"] == 2.5
    never = CheckResult(spec, "FAIL", 0.2, 500, "", lo=0.15, hi=0.25)
    assert never.to_json()["margin"] is None
    during = CheckSpec("served", "error_rate", during_phase="outage", bound=0.02)
    plain = CheckResult(during, "FAIL", 0.05, 500, "", lo=0.04, hi=0.06)
    assert plain.to_json()["margin"] == -0.03
