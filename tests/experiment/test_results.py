"""What results.py writes and shows: the console's final table (`checks_table`: values with
intervals as the reports write them, what would decide an INCONCLUSIVE, the confidence once, the
false-alarm estimate), and files and text that survive whatever a run carries (results.json
with a lone surrogate, a console table that never passes escape codes to the terminal)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from chaosproxy.experiment.model import CheckSpec
from chaosproxy.experiment.outcome import CheckResult, Verdict
from chaosproxy.experiment.results import checks_table, terminal_safe, write_json

OUTAGE = CheckSpec("error rate low in outage", "error_rate", during_phase="outage", bound=0.01)
RECOVERS = CheckSpec(
    "recovers after outage", "error_rate", after_phase="outage", bound=0.01, within=10
)
P99 = CheckSpec("p99 under 300 ms", "latency_p99", during_phase="outage", bound=0.3)
STEADY = CheckSpec("steady is healthy", "error_rate", during_phase="steady", bound=0.01)
RESULTS = [
    CheckResult(OUTAGE, "INCONCLUSIVE", 0.0052, 1800, "", lo=0.0021, hi=0.013, needs=1200),
    CheckResult(
        RECOVERS,
        "PASS",
        0.001,
        900,
        "",
        recovered_after_s=4.3,
        lo=0.0,
        hi=0.004,
        recovered_lo=4.1,
        recovered_hi=4.5,
    ),
    CheckResult(P99, "FAIL", 0.41, 150, "", lo=0.38, hi=None),
    CheckResult(STEADY, "PASS", 0.0, 900, "", lo=0.0, hi=0.0033),
]
FALSE_ALARM = {
    "rate": 0.008,
    "interval": [0.002, 0.021],
    "rounds": 200,
    "alpha": 0.05,
    "baseline": "steady",
    "checks": {OUTAGE.name: 0.005, RECOVERS.name: 0.0, P99.name: 0.003},
    "warning": False,
}


def _rows(text: str) -> dict[str, str]:
    return {line.split("  ")[0]: line for line in text.splitlines()[2:] if "  " in line}


def test_values_and_time_to_recover_carry_their_intervals() -> None:
    text = checks_table(Verdict("INCONCLUSIVE", ["why"], RESULTS, [], "steady", 0.95, FALSE_ALARM))
    rows = _rows(text)
    assert "INCONCLUSIVE, needs about 1,200 more requests" in rows[OUTAGE.name]
    assert "0.52 % [0.21 %, 1.3 %]" in rows[OUTAGE.name]
    assert "4.3 s [4.1 s, 4.5 s] (≤ 10 s)" in rows[RECOVERS.name]
    assert "410 ms [380 ms, …]" in rows[P99.name]  # too few requests for an upper side
    assert re.search(r"< 300 ms\s", rows[P99.name])
    # per-check false-alarm rates; none for the check on the baseline itself
    assert rows[OUTAGE.name].endswith("0.5 %") and rows[STEADY.name].endswith("\u2013")


def test_the_verdict_then_the_confidence_once_then_the_false_alarms() -> None:
    text = checks_table(Verdict("INCONCLUSIVE", ["why"], RESULTS, [], "steady", 0.95, FALSE_ALARM))
    lines = text.splitlines()
    at = lines.index("verdict: INCONCLUSIVE")
    assert lines[at + 1] == "  - why"
    assert lines[at + 2].startswith("intervals at 95 % confidence, each side")
    assert lines[at + 3] == (
        "false alarms: these checks would FAIL a healthy run of this system 0.8 % of the time "
        "[0.2 %, 2.1 %] (200 resamples of the baseline phase steady)"
    )
    assert text.count("confidence") == 1


def test_a_flagged_false_alarm_rate_is_a_warning_and_none_is_silent() -> None:
    flagged = FALSE_ALARM | {"rate": 0.09, "interval": [0.06, 0.13], "warning": True}
    text = checks_table(Verdict("PASS", [], RESULTS[1:2], [], "steady", 0.95, flagged))
    assert text.splitlines()[-1].startswith("WARNING, false alarms: these checks would FAIL")
    assert "more than the 5 % these checks allow" in text
    quiet = checks_table(Verdict("PASS", [], RESULTS[1:2], [], "steady", 0.95, None))
    assert "false alarms" not in quiet
    assert quiet.splitlines()[0].split() == [
        "check",
        "status",
        "value",
        "bound",
        "recovered",
        "after",
    ]


def test_after_a_halt_a_pass_on_a_window_that_never_ran_reads_not_reached() -> None:
    """The demo's halted run: the recovery after the halted phase measured only the seconds
    after injection stopped, and a check on a phase the halt never reached has nothing."""
    phases = [
        {"name": "steady", "start": 100.0, "end": 106.0, "seconds": 6},
        {"name": "outage", "start": 106.0, "end": 107.2, "seconds": 2},
        {"name": "rollback", "start": 0.0, "end": 0.0, "seconds": 0},
    ]
    rollback = CheckSpec("served in rollback", "error_rate", during_phase="rollback", bound=0.1)
    results = [
        CheckResult(OUTAGE, "FAIL", 0.8, 200, "", lo=0.7, hi=0.9, halted=True),
        CheckResult(RECOVERS, "PASS", 0.0, 300, "", recovered_after_s=0.0, lo=0.0, hi=0.01),
        CheckResult(rollback, "PASS", 0.0, 300, "", lo=0.0, hi=0.01),
        CheckResult(STEADY, "PASS", 0.0, 600, "", lo=0.0, hi=0.005),
    ]
    verdict = Verdict("FAIL", ["halted"], results, phases, "steady", 0.95, None)
    text = checks_table(verdict, {"check": OUTAGE.name, "at": 107.19, "phase": "outage"})
    rows = _rows(text)
    assert rows[OUTAGE.name].split()[5:7] == ["FAIL", "(halted)"]
    assert "NOT REACHED" in rows[RECOVERS.name] and "PASS" not in rows[RECOVERS.name]
    assert "NOT REACHED" in rows[rollback.name] and "PASS" not in rows[rollback.name]
    assert "PASS" in rows[STEADY.name]  # it ran before the halt: it is evidence
    assert (
        f"  - {RECOVERS.name!r} judged PASS, but the halt cut outage short: this measured the "
        "time after injection was stopped, and the phases after it never ran"
    ) in text.splitlines()
    assert f"  - {rollback.name!r} judged PASS, but phase rollback never ran: the run halted " \
        "first" in text.splitlines()  # fmt: skip
    # Without the halt the same table reads as judged.
    assert "NOT REACHED" not in checks_table(verdict)


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
