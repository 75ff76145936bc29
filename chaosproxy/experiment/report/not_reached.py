"""What a halt (or an interruption) left unjudged: a check whose PASS or INCONCLUSIVE is no
evidence either way, shown NOT REACHED, and a phase that did not run. A FAIL stays a FAIL."""

from __future__ import annotations

from typing import Any

from chaosproxy.experiment.numbers import NO_DATA
from chaosproxy.experiment.report.fmt import duration
from chaosproxy.experiment.report.results_dir import number

UNREACHED = "NOT REACHED"


def unreached(results: dict[str, Any], check: dict[str, Any]) -> str:
    """Why a check's PASS (or INCONCLUSIVE) is no evidence either way: the run halted before
    the window it judges — a phase that never ran, or the time after a phase the halt cut short,
    when injection had been stopped and the phases after it never ran. '' when the check
    judged what it names. A FAIL stays a FAIL: failing even then is a finding."""
    halted = results.get("halted")
    at = number(halted.get("at")) if isinstance(halted, dict) else None
    if at is None or check.get("status") not in ("PASS", "INCONCLUSIVE"):
        return ""
    phases = {str(p.get("name")): p for p in results.get("phases") or [] if isinstance(p, dict)}

    def never_ran(name: Any) -> bool:
        p = phases.get(str(name))
        start = number(p.get("start")) if p else None
        return p is not None and (p.get("seconds") == 0 or start is None or start >= at)

    for key in ("during_phase", "compare_to"):
        name = check.get(key)
        if name and never_ran(name):
            return f"phase {name} never ran: the run halted first"
    name = check.get("after_phase")
    if name:
        p = phases.get(str(name))
        end = number(p.get("end")) if p else None
        if never_ran(name):
            return f"phase {name} never ran: the run halted first"
        if end is not None and end >= at - 1.0:
            return (
                f"the halt cut {name} short: this measured the time after injection was "
                "stopped, and the phases after it never ran"
            )
    return ""


def unreached_note(results: dict[str, Any], check: dict[str, Any]) -> str:
    """'judged PASS, but phase rollback never ran: …', or ''."""
    why = unreached(results, check)
    return f"judged {check.get('status')}, but {why}" if why else ""


def status_of(results: dict[str, Any], check: dict[str, Any]) -> str:
    """The status to show: the judged one, or NOT REACHED where the halt left no window."""
    if unreached(results, check):
        return UNREACHED
    return str(check.get("status", "INCONCLUSIVE"))


def phase_length(p: dict[str, Any]) -> str:
    """How long a phase ran: '6 s'; 'did not run' for one a halt or an interruption never
    reached (no seconds, no times); a dash when the document does not say."""
    start, end = number(p.get("start")), number(p.get("end"))
    if p.get("seconds") == 0 and (not start or not end or end <= start):
        return "did not run"
    if start is None or end is None:
        return NO_DATA
    return duration(end - start)
