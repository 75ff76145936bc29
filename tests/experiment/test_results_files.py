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
