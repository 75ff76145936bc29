"""What every report shows, shared by HTML, Markdown, JUnit, compare and the console's final
table; numbers read by the one formatter of the experiment side (`experiment/numbers.py`).

A judged number comes with its interval: `estimate` gives '0.52 % [0.21 %, 1.3 %]', an open
side (too little data to bound it) as '…'. Documents written before intervals existed have
none, and read as the value alone.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from typing import Any

from chaosproxy.experiment.numbers import NO_DATA, OPEN, in_unit
from chaosproxy.experiment.report.results_dir import mapping, number

ICONS = {"PASS": "✔", "FAIL": "✖", "INCONCLUSIVE": "?", "NOT REACHED": "⊘"}
COMPARISON = {"below": "<", "above": ">"}

Interval = tuple[float | None, float | None]


def status_label(status: str) -> str:
    """Icon and word: the status reads without colour (print, colour-blind readers)."""
    return f"{ICONS.get(status, '?')} {status}"


def value(v: Any, unit: str | None) -> str:
    """A check or phase value in its unit (numbers.in_unit); a dash when there was no data."""
    if isinstance(v, float) and math.isinf(v):
        return in_unit(v, unit)
    f = number(v)
    return NO_DATA if f is None else in_unit(f, unit)


def pair(v: Any) -> Interval | None:
    """A JSON `[lo, hi]` as two numbers (None: an open side); None when there is no interval
    (an older document, null, or a malformed value)."""
    if not isinstance(v, list | tuple) or len(v) != 2:
        return None
    return number(v[0]), number(v[1])


def interval(
    iv: Interval | None, unit: str | None, show: Callable[[float], str] | None = None
) -> str:
    """'[0.21 %, 1.3 %]', an open side as '…'; '' without an interval."""
    if iv is None:
        return ""
    show = show or (lambda x: value(x, unit))
    lo, hi = iv
    return f"[{OPEN if lo is None else show(lo)}, {OPEN if hi is None else show(hi)}]"


def estimate(
    v: Any, iv: Interval | None, unit: str | None, show: Callable[[float], str] | None = None
) -> str:
    """A value and its interval, '0.52 % [0.21 %, 1.3 %]'; the value alone without one; a dash
    without a value."""
    f = number(v)
    if f is None:
        return value(v, unit)
    text = show(f) if show else value(f, unit)
    return f"{text} {interval(iv, unit, show)}" if iv is not None else text


def check_estimate(c: dict[str, Any]) -> str:
    """A check's judged value with its interval."""
    return estimate(c.get("value"), pair(c.get("interval")), c.get("unit"))


def overlap(a: Interval | None, b: Interval | None) -> bool:
    """Whether two intervals share a point (an open side reaches to infinity)."""
    if a is None or b is None:
        return False
    lo_a, hi_a = (-math.inf if a[0] is None else a[0]), (math.inf if a[1] is None else a[1])
    lo_b, hi_b = (-math.inf if b[0] is None else b[0]), (math.inf if b[1] is None else b[1])
    return lo_a <= hi_b and lo_b <= hi_a


def delta(a: Any, b: Any, unit: str | None, show: Callable[[float], str] | None = None) -> str:
    """b - a in the unit (or as `show` writes it), signed; a dash when either side has no
    data."""
    fa, fb = number(a), number(b)
    if fa is None or fb is None:
        return NO_DATA
    d = fb - fa
    if d == 0:
        return "±0"
    if show is not None:
        return ("+" if d > 0 else "-") + show(abs(d))
    if unit == "ratio":
        return f"{d * 100:+.3g} pp"
    if unit == "count":
        return f"{d:+,.0f}"
    text = value(abs(d), unit)
    return ("+" if d > 0 else "-") + text


def duration(v: Any) -> str:
    """A span of seconds: '4.3 s', '2 min 5 s'; a dash for no data."""
    f = number(v)
    if f is None:
        return NO_DATA
    if f < 60:
        return f"{f:.3g} s"
    m, s = divmod(round(f), 60)
    return f"{m} min {s} s" if s else f"{m} min"


def recovered_estimate(check: dict[str, Any]) -> str:
    """'4.3 s [4.1 s, 4.5 s]', 'never' (a FAIL), a dash (no time: not decided), or '' for a
    check that is not about recovery."""
    if not check.get("after_phase"):
        return ""
    got = number(check.get("recovered_after_s"))
    if got is None:  # 'never' is a finding; an undecided check may just lack the data
        return "never" if check.get("status") == "FAIL" else NO_DATA
    return estimate(got, pair(check.get("recovered_after_interval")), None, duration)


def allowed(check: dict[str, Any]) -> str:
    """'(≤ 30 s)' for a recovery check with a `within`, else ''."""
    within = number(check.get("within"))
    return f"(≤ {duration(within)})" if check.get("after_phase") and within is not None else ""


def recovered(check: dict[str, Any]) -> str:
    """'4.3 s [4.1 s, 4.5 s] (≤ 30 s)', 'never (≤ 30 s)', or '' for a check that is not about
    recovery."""
    got = recovered_estimate(check)
    limit = allowed(check)
    return f"{got} {limit}" if got and limit else got


def bound(check: dict[str, Any]) -> str:
    op = COMPARISON.get(str(check.get("comparison")), "?")
    return f"{op} {value(check.get('bound'), check.get('unit'))}"


def needs(check: dict[str, Any]) -> str:
    """'needs about 1,200 more requests' for an INCONCLUSIVE that more data would decide."""
    n = number(check.get("needs_more_requests"))
    if n is None or n <= 0 or check.get("status") != "INCONCLUSIVE":
        return ""
    what = "client" if check.get("metric") == "blast_radius" else "request"  # a share of clients
    return f"needs about {n:,.0f} more {what}{'s' if n != 1 else ''}"


def percent(confidence: Any) -> str:
    """0.95 → '95 %'."""
    f = number(confidence)
    return NO_DATA if f is None else f"{f * 100:.4g} %"


def run_confidence(results: dict[str, Any], checks: list[dict[str, Any]]) -> float | None:
    """The confidence of the run's intervals: the document's, else the one its checks share;
    None for a document without intervals."""
    top = number(results.get("confidence"))
    if top is not None:
        return top
    levels = {number(c.get("confidence")) for c in checks if pair(c.get("interval"))} - {None}
    return levels.pop() if len(levels) == 1 else None


def sentence(text: str) -> str:
    """Capitalised and with a full stop, for a line of its own."""
    return f"{text[:1].upper()}{text[1:]}."


def confidence_note(confidence: float) -> str:
    """Said once per report, near the verdict."""
    return (
        f"intervals at {percent(confidence)} confidence, each side: [low, high] after a value, "
        f"{OPEN} where the data cannot bound a side"
    )


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


def window(check: dict[str, Any]) -> str:
    """Which part of the run a check judged."""
    parts = []
    if check.get("during_phase"):
        parts.append(f"during {check['during_phase']}")
    if check.get("after_phase"):
        parts.append(f"after {check['after_phase']}")
    if check.get("compare_to"):
        parts.append(f"vs {check['compare_to']}")
    return ", ".join(parts) or "whole scenario"


def utc(ts: Any) -> str:
    f = number(ts)
    if f is None:
        return NO_DATA
    return dt.datetime.fromtimestamp(f, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def elapsed(ts: Any, start: float) -> str:
    """Seconds since the run started, as '+12.3 s'."""
    f = number(ts)
    return NO_DATA if f is None else f"+{f - start:.1f} s"


def clock(ts: Any) -> str:
    """Wall-clock time of day in UTC, 'HH:MM:SS' (what Grafana shows in UTC)."""
    f = number(ts)
    if f is None:
        return NO_DATA
    return dt.datetime.fromtimestamp(f, dt.UTC).strftime("%H:%M:%S")


def when(ts: Any, start: float) -> str:
    """'14:40:05.2 UTC (+12.3 s)': wall clock and offset from the run's start."""
    f = number(ts)
    if f is None:
        return NO_DATA
    t = dt.datetime.fromtimestamp(f, dt.UTC)
    return f"{t.strftime('%H:%M:%S')}.{t.microsecond // 100_000} UTC ({elapsed(f, start)})"


# Event details that are instants (epoch seconds), and anything that looks like one.
_INSTANTS = ("at", "t", "time", "started", "ended", "since", "until")
_EPOCH = (1e9, 1e11)  # 2001 .. 5138: a number in here under such a key is a time
_SPANS = ("duration", "elapsed", "offset")  # seconds


def detail(key: str, v: Any, start: float) -> str | None:
    """One event detail as people read it: instants as UTC and offset, floats rounded, nothing
    for None (a blank, not the word 'None')."""
    if v is None or (isinstance(v, str | list | dict) and not v):
        return None
    f = number(v)
    if f is not None:
        if (key in _INSTANTS or key.endswith("_at")) and _EPOCH[0] < f < _EPOCH[1]:
            return when(f, start)
        if key in _SPANS:
            return duration(f)
        return f"{f:.4g}" if isinstance(v, float) else str(v)
    if isinstance(v, dict | list):
        return json.dumps(v, ensure_ascii=False, separators=(", ", ": "), default=str)
    return str(v)


def details(d: Any, start: float) -> str:
    """An event's details, 'key=value, …', None values left out."""
    if not isinstance(d, dict):
        return ""
    parts = []
    for k, v in d.items():
        shown = detail(str(k), v, start)
        if shown is not None:
            parts.append(f"{k}={shown}")
    return ", ".join(parts)


def seed_in_force(results: dict[str, Any]) -> tuple[int | None, str]:
    """The seed the scenario ran with and where it came from: the run's ('run': `--seed` or
    the experiment's `seed:`), else the one the proxy reported when the scenario started
    ('scenario': its own `seed:`); (None, '') when none was set (random, not reproducible)."""
    own = mapping(results.get("run")).get("seed")
    if isinstance(own, int) and not isinstance(own, bool):
        return own, "run"
    for e in results.get("events") or []:
        if isinstance(e, dict) and e.get("kind") == "scenario_started":
            s = mapping(e.get("details")).get("seed")
            if isinstance(s, int) and not isinstance(s, bool):
                return s, "scenario"
    return None, ""


def seed(results: dict[str, Any]) -> str:
    """'7', '42 (the scenario's)', or a dash when no seed was set."""
    value, source = seed_in_force(results)
    if value is None:
        return NO_DATA
    return f"{value} (the scenario's)" if source == "scenario" else str(value)


def margin(check: dict[str, Any]) -> tuple[str, bool]:
    """How far inside its bound a check landed, and whether it is outside (breached). A
    recovery check is decided by its time, so its margin is `within` minus the time to
    recover (negative when late; 'never' when it never recovered)."""
    within = number(check.get("within"))
    if check.get("after_phase") and within is not None:
        got = number(check.get("recovered_after_s"))
        if got is None:
            failed = check.get("status") == "FAIL"
            return ("never" if failed else NO_DATA), failed
        spare = within - got
        return (f"-{duration(-spare)}" if spare < 0 else duration(spare)), spare < 0
    raw = check.get("margin")
    if isinstance(raw, float) and math.isinf(raw):
        return value(raw, check.get("unit")), raw < 0
    m = number(raw)
    return value(m, check.get("unit")), m is not None and m < 0


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
