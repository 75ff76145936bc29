"""The false-alarm estimate as the reports say it: how often these checks would FAIL a healthy
run of this system (resampling the baseline phase, `experiment/false_alarm.py`), with its
interval, the warning when that is more than the checks allow, and each check's own rate."""

from __future__ import annotations

from typing import Any

from chaosproxy.experiment.report.fmt import interval, pair, value
from chaosproxy.experiment.report.results_dir import mapping, number


def false_alarm(results: dict[str, Any]) -> dict[str, Any] | None:
    """The document's false-alarm estimate, when it has a usable one."""
    fa = results.get("false_alarm")
    return fa if isinstance(fa, dict) and number(fa.get("rate")) is not None else None


def false_alarm_sentence(fa: dict[str, Any]) -> str:
    """'these checks would FAIL a healthy run of this system 0.8 % of the time [0.2 %, 2.1 %]
    (200 resamples of the baseline phase steady)'."""
    rounds = number(fa.get("rounds"))
    base = fa.get("baseline")
    source = f"{rounds:,.0f} resamples of " if rounds is not None else "resamples of "
    source += f"the baseline phase {base}" if base else "the baseline phase"
    iv = interval(pair(fa.get("interval")), "ratio")
    return (
        "these checks would FAIL a healthy run of this system "
        f"{value(fa.get('rate'), 'ratio')} of the time{' ' + iv if iv else ''} ({source})"
    )


def false_alarm_warning(fa: dict[str, Any]) -> str:
    """Why a flagged false-alarm rate matters; '' when it is not flagged."""
    if fa.get("warning") is not True:
        return ""
    alpha = number(fa.get("alpha"))
    limit = f"the {value(alpha, 'ratio')} " if alpha is not None else "what "
    return f"more than {limit}these checks allow: on this system, a FAIL may be a false alarm"


def false_alarm_line(results: dict[str, Any]) -> tuple[str, str] | None:
    """The false-alarm line near the verdict, as (text, kind), kind 'ok', 'warning' or
    'missing' (written as null: nothing to resample); None for a document from before the
    estimate existed."""
    fa = false_alarm(results)
    if fa is not None:
        warning = false_alarm_warning(fa)
        text = false_alarm_sentence(fa) + (f"; {warning}" if warning else "")
        return text, "warning" if warning else "ok"
    if "false_alarm" in results:
        return (
            "not estimated for this run (it resamples the baseline phase, which needs at least "
            "five seconds of data)",
            "missing",
        )
    return None


def false_alarm_of(results: dict[str, Any], check: dict[str, Any]) -> float | None:
    """One check's false-alarm rate: from the document's estimate, else the check's own."""
    fa = false_alarm(results)
    if fa is not None:
        rate = number(mapping(fa.get("checks")).get(str(check.get("name"))))
        if rate is not None:
            return rate
    own = check.get("false_alarm")
    return number(mapping(own).get("rate")) if isinstance(own, dict) else number(own)


def has_false_alarm_rates(results: dict[str, Any], checks: list[dict[str, Any]]) -> bool:
    return any(false_alarm_of(results, c) is not None for c in checks)
