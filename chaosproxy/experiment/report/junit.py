"""junit.xml: one testcase per check, in a testsuite named after the experiment.

FAIL → <failure> (value vs bound, time to recover when the check is about recovery).
INCONCLUSIVE → <skipped>: there was no evidence either way, so CI neither passes nor fails it;
the experiment's own exit code carries the overall verdict. When the overall verdict is not PASS
for reasons no check carries (e.g. a fault phase that injected nothing), one more testcase,
"experiment verdict", fails or is skipped with those reasons, so a CI that reads only JUnit sees
them too. Each testcase also carries its raw numbers as <properties>: value, bound, margin,
the interval and its confidence, the time to recover and its interval, the requests that would
decide an INCONCLUSIVE, and the check's false-alarm rate; the suite carries the run's
confidence and false-alarm estimate.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from chaosproxy.experiment.report import (
    check_text,
    false_alarm_text,
    fmt,
    instants,
    not_reached,
    run_seed,
)
from chaosproxy.experiment.report.results_dir import ResultsDir, number

VERDICT_CASE = "experiment verdict"


def failure_message(c: dict[str, Any]) -> str:
    """'error_rate 41 % [38.2 %, 43.9 %] against bound < 2 % (margin -39 %)'; a recovery check
    leads with the time to recover, which is what decided it: 'recovered 9.2 s [8.8 s, 9.6 s]
    after X (allowed 5 s); ...'."""
    estimate, bound = check_text.check_estimate(c), check_text.bound(c)
    text = f"{c.get('metric', 'value')} {estimate} against bound {bound}"
    if not c.get("after_phase"):
        return f"{text} (margin {check_text.margin(c)[0]})"
    got = number(c.get("recovered_after_s"))
    within = fmt.duration(c.get("within"))
    phase = c["after_phase"]
    if got is None:
        return f"never recovered after {phase} (allowed {within}); {text} after it"
    # A recovery check is decided by its time: the margin is the time left (negative: late).
    return (
        f"recovered {check_text.recovered_estimate(c)} after {phase} (allowed {within}, margin "
        f"{check_text.margin(c)[0]}); {text} once settled"
    )


# results.json keys copied raw into each testcase's properties; an interval as _lo and _hi.
_CHECK_KEYS = ("status", "metric", "source", "value", "bound", "margin", "recovered_after_s")
_CHECK_EXTRA = ("confidence", "needs_more_requests")
_CHECK_INTERVALS = (("interval", "interval"), ("recovered_after_interval", "recovered_after"))


def _check_properties(parent: ET.Element, results: dict[str, Any], c: dict[str, Any]) -> None:
    props = ET.SubElement(parent, "properties")
    for key in _CHECK_KEYS + _CHECK_EXTRA:
        if key in c:
            ET.SubElement(props, "property", name=key, value=_raw(c[key]))
    for key, name in _CHECK_INTERVALS:
        iv = fmt.pair(c.get(key))
        if iv is not None:
            ET.SubElement(props, "property", name=f"{name}_lo", value=_raw(iv[0]))
            ET.SubElement(props, "property", name=f"{name}_hi", value=_raw(iv[1]))
    rate = false_alarm_text.false_alarm_of(results, c)
    if rate is not None:
        ET.SubElement(props, "property", name="false_alarm_rate", value=_raw(rate))


def _suite_properties(props: ET.Element, results: dict[str, Any]) -> None:
    """The run's confidence and false-alarm estimate, when the document has them."""
    if "confidence" in results:
        ET.SubElement(props, "property", name="confidence", value=_raw(results["confidence"]))
    fa = false_alarm_text.false_alarm(results)
    if fa is None:
        return
    iv = fmt.pair(fa.get("interval")) or (None, None)
    for name, v in (
        ("false_alarm_rate", fa.get("rate")),
        ("false_alarm_lo", iv[0]),
        ("false_alarm_hi", iv[1]),
        ("false_alarm_rounds", fa.get("rounds")),
        ("false_alarm_warning", "true" if fa.get("warning") is True else "false"),
    ):
        ET.SubElement(props, "property", name=name, value=_raw(v))


def render_junit(run: ResultsDir) -> str:
    checks = run.checks
    suite = ET.Element("testsuite")
    classname = f"chaosproxy.experiment.{run.name}"
    counts = {"FAIL": 0, "INCONCLUSIVE": 0}
    props = ET.SubElement(suite, "properties")
    seed, seed_source = run_seed.seed_in_force(run.results)
    for k, v in (
        ("verdict", run.verdict),
        ("run", run.run.get("id", "")),
        ("scenario", run.experiment.get("scenario", "")),
        ("seed", seed),
        ("seed_source", seed_source),
        ("command", run.run.get("command", "")),
    ):
        ET.SubElement(props, "property", name=k, value=str(v if v is not None else ""))
    _suite_properties(props, run.results)
    confidence = check_text.run_confidence(run.results, checks)
    said = fmt.sentence(fmt.confidence_note(confidence)) if confidence is not None else ""
    for c in checks:
        status = str(c.get("status", "INCONCLUSIVE"))
        case = ET.SubElement(suite, "testcase", classname=classname, name=str(c.get("name", "")))
        case.set("time", "0")
        _check_properties(case, run.results, c)
        unreached = not_reached.unreached_note(run.results, c)
        if unreached:  # a window the halt left empty: no evidence either way, never green
            counts["INCONCLUSIVE"] += 1
            ET.SubElement(case, "skipped", message=f"{not_reached.UNREACHED}: {unreached}")
        elif status == "FAIL":
            counts["FAIL"] += 1
            f = ET.SubElement(case, "failure", message=failure_message(c), type="CheckFailed")
            f.text = "\n".join(x for x in (str(c.get("message") or ""), said) if x)
        elif status != "PASS":
            counts["INCONCLUSIVE"] += 1
            msg = str(c.get("message") or "") or "inconclusive: no data for this check"
            needs = check_text.needs(c)
            if needs and "needs about" not in msg:  # the judge's message may say it already
                msg += f"; {needs}"
            ET.SubElement(case, "skipped", message=f"INCONCLUSIVE: {msg}")
        if status == "PASS" and c.get("message"):
            ET.SubElement(case, "system-out").text = str(c["message"])
    reasons = [str(r) for r in run.results.get("reasons") or []]
    tests = len(checks)
    if (
        run.verdict != "PASS"
        and reasons
        and not any(c.get("status") == run.verdict for c in checks)
    ):
        tests += 1
        case = ET.SubElement(suite, "testcase", classname=classname, name=VERDICT_CASE, time="0")
        if run.verdict == "FAIL":
            counts["FAIL"] += 1
            ET.SubElement(case, "failure", message="; ".join(reasons), type="VerdictFailed")
        else:
            counts["INCONCLUSIVE"] += 1
            ET.SubElement(case, "skipped", message="INCONCLUSIVE: " + "; ".join(reasons))
    suite.set("name", run.name)
    suite.set("tests", str(tests))
    suite.set("failures", str(counts["FAIL"]))
    suite.set("errors", "0")
    suite.set("skipped", str(counts["INCONCLUSIVE"]))
    suite.set("time", f"{max(run.end - run.start, 0.0):.3f}")
    suite.set(
        "timestamp", instants.utc(run.run.get("started")).replace(" UTC", "").replace(" ", "T")
    )
    ET.indent(suite)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        + _XML_ILLEGAL.sub("\ufffd", ET.tostring(suite, encoding="unicode"))
        + "\n"
    )


# Characters XML 1.0 cannot hold at all, even escaped: replaced, so the file always parses.
_XML_ILLEGAL = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _raw(v: Any) -> str:
    return "" if v is None else repr(v) if isinstance(v, float) else str(v)
