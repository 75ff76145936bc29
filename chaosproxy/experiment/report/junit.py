"""junit.xml: one testcase per check, in a testsuite named after the experiment.

FAIL → <failure> (value vs bound, time to recover when the check is about recovery).
INCONCLUSIVE → <skipped>: there was no evidence either way, so CI neither passes nor fails it;
the experiment's own exit code carries the overall verdict. When the overall verdict is not PASS
for reasons no check carries (e.g. a fault phase that injected nothing), one more testcase,
"experiment verdict", fails or is skipped with those reasons, so a CI that reads only JUnit sees
them too. Each testcase also carries its raw numbers as <properties>.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from chaosproxy.experiment.report import fmt
from chaosproxy.experiment.report.load import Run, number

VERDICT_CASE = "experiment verdict"


def failure_message(c: dict[str, Any]) -> str:
    """'error_rate 41 % against bound < 2 % (margin -39 %)'; a recovery check leads with the
    time to recover, which is what decided it: 'recovered 9 s after X (allowed 5 s); ...'."""
    unit = c.get("unit")
    text = (
        f"{c.get('metric', 'value')} {fmt.value(c.get('value'), unit)} against bound "
        f"{fmt.bound(c)} (margin {fmt.value(c.get('margin'), unit)})"
    )
    if not c.get("after_phase"):
        return text
    got = number(c.get("recovered_after_s"))
    within = fmt.duration(c.get("within"))
    phase = c["after_phase"]
    if got is None:
        return f"never recovered after {phase} (allowed {within}); {text} after it"
    return f"recovered {fmt.duration(got)} after {phase} (allowed {within}); {text} once settled"


def render_junit(run: Run) -> str:
    checks = run.checks
    suite = ET.Element("testsuite")
    classname = f"chaosproxy.experiment.{run.name}"
    counts = {"FAIL": 0, "INCONCLUSIVE": 0}
    props = ET.SubElement(suite, "properties")
    for k, v in (
        ("verdict", run.verdict),
        ("run", run.run.get("id", "")),
        ("scenario", run.experiment.get("scenario", "")),
        ("seed", run.run.get("seed", "")),
        ("command", run.run.get("command", "")),
    ):
        ET.SubElement(props, "property", name=k, value=str(v if v is not None else ""))
    for c in checks:
        status = str(c.get("status", "INCONCLUSIVE"))
        case = ET.SubElement(suite, "testcase", classname=classname, name=str(c.get("name", "")))
        case.set("time", "0")
        cprops = ET.SubElement(case, "properties")
        for key in ("status", "metric", "source", "value", "bound", "margin", "recovered_after_s"):
            if key in c:
                ET.SubElement(cprops, "property", name=key, value=_raw(c[key]))
        if status == "FAIL":
            counts["FAIL"] += 1
            f = ET.SubElement(case, "failure", message=failure_message(c), type="CheckFailed")
            f.text = str(c.get("message") or "")
        elif status != "PASS":
            counts["INCONCLUSIVE"] += 1
            msg = str(c.get("message") or "") or "inconclusive: no data for this check"
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
    suite.set("timestamp", fmt.utc(run.run.get("started")).replace(" UTC", "").replace(" ", "T"))
    ET.indent(suite)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
    )


def _raw(v: Any) -> str:
    return "" if v is None else repr(v) if isinstance(v, float) else str(v)
