"""junit.xml agrees with results.json: one testcase per check, statuses, values."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from chaosproxy.experiment.report import write_reports
from chaosproxy.experiment.report.junit import VERDICT_CASE
from tests.experiment.support_results import make_run


def _suite(run_dir: Path) -> ET.Element:
    write_reports(run_dir)
    return ET.parse(run_dir / "junit.xml").getroot()


def _props(el: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in el.findall("properties/property")}


def test_one_testcase_per_check_with_its_status(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run", failover=False, prometheus=True, prometheus_data=False)
    suite = _suite(run_dir)
    checks = json.loads((run_dir / "results.json").read_text())["checks"]
    assert suite.tag == "testsuite"
    assert suite.get("name") == "checkout-survives-bad-deploy"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [c["name"] for c in checks]
    for case, check in zip(cases, checks, strict=True):
        status = (
            "FAIL"
            if case.find("failure") is not None
            else "INCONCLUSIVE"
            if case.find("skipped") is not None
            else "PASS"
        )
        assert status == check["status"]
        props = _props(case)
        assert props["status"] == check["status"]
        assert props["value"] == ("" if check["value"] is None else repr(check["value"]))
        assert props["bound"] == repr(check["bound"])
    assert suite.get("tests") == str(len(checks))
    assert suite.get("failures") == "2"
    assert suite.get("skipped") == "1"
    assert suite.get("errors") == "0"
    assert _props(suite)["verdict"] == "FAIL"


def test_failure_message_gives_value_bound_and_time_to_recover(tmp_path: Path) -> None:
    cases = {
        c.get("name"): c for c in _suite(make_run(tmp_path / "r", failover=False)).iter("testcase")
    }
    during = cases["error rate stays low during broken-release"].find("failure")
    assert during is not None
    assert during.get("message") == (
        "error_rate 80 % [78.2 %, 81.8 %] against bound < 5 % (margin -75 %)"
    )
    assert (during.text or "").endswith(
        "Intervals at 95 % confidence, each side: [low, high] "
        "after a value, … where the data cannot bound a side."
    )
    recover = cases["recovers after broken-release"].find("failure")
    assert recover is not None
    # Decided by its time: the margin is the time left, negative when late (not the 1 % the
    # error rate then had to spare, which read as a pass).
    assert recover.get("message") == (
        "recovered 4.7 s [4.4 s, 5.1 s] after broken-release (allowed 4 s, margin -0.7 s); "
        "error_rate 0 % [0 %, 0.562 %] against bound < 1 % once settled"
    )


def test_inconclusive_check_is_skipped_with_its_reason(tmp_path: Path) -> None:
    suite = _suite(make_run(tmp_path / "r", prometheus=True, prometheus_data=False))
    (skipped,) = suite.iter("skipped")
    assert skipped.get("message") == "INCONCLUSIVE: no data from Prometheus for this window"


def test_a_verdict_reason_no_check_carries_gets_its_own_testcase(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "r")
    doc = json.loads((run_dir / "results.json").read_text())
    doc["verdict"] = "INCONCLUSIVE"
    doc["reasons"] = ["phase broken-release has rules but the scenario injected nothing"]
    (run_dir / "results.json").write_text(json.dumps(doc))
    suite = _suite(run_dir)
    case = suite.findall("testcase")[-1]
    assert case.get("name") == VERDICT_CASE
    skipped = case.find("skipped")
    assert skipped is not None and "injected nothing" in skipped.get("message", "")
    assert suite.get("tests") == str(len(doc["checks"]) + 1)


def test_all_pass_has_no_failures(tmp_path: Path) -> None:
    suite = _suite(make_run(tmp_path / "r"))
    assert suite.get("failures") == "0" and suite.get("skipped") == "0"
    assert not list(suite.iter("failure"))


def test_intervals_and_false_alarms_are_properties(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "r", failover=False, prometheus=True)
    suite = _suite(run_dir)
    doc = json.loads((run_dir / "results.json").read_text())
    props = _props(suite)
    fa = doc["false_alarm"]
    assert props["confidence"] == "0.95"
    assert props["false_alarm_rate"] == repr(fa["rate"])
    assert [props["false_alarm_lo"], props["false_alarm_hi"]] == [repr(v) for v in fa["interval"]]
    assert props["false_alarm_rounds"] == "200" and props["false_alarm_warning"] == "false"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    for check in doc["checks"]:
        p = _props(cases[check["name"]])
        assert [p["interval_lo"], p["interval_hi"]] == [repr(v) for v in check["interval"]]
        assert p["confidence"] == "0.95"
        rate = fa["checks"].get(check["name"])
        assert p.get("false_alarm_rate") == (None if rate is None else repr(rate))
    recover = _props(cases["recovers after broken-release"])
    assert (recover["recovered_after_lo"], recover["recovered_after_hi"]) == ("4.4", "5.1")


def test_inconclusive_says_once_how_many_more_requests_would_decide_it(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "r", borderline=True)
    suite = _suite(run_dir)
    n = json.loads((run_dir / "results.json").read_text())["checks"][-1]["needs_more_requests"]
    (skipped,) = suite.iter("skipped")
    message = skipped.get("message", "")
    assert f"needs about {n} more requests" in message  # the judge's own words
    assert message.count("needs about") == 1
    # a message that does not say it gets it appended
    doc = json.loads((run_dir / "results.json").read_text())
    doc["checks"][-1]["message"] = "the interval straddles the bound"
    (run_dir / "results.json").write_text(json.dumps(doc))
    (skipped,) = _suite(run_dir).iter("skipped")
    assert skipped.get("message") == (
        f"INCONCLUSIVE: the interval straddles the bound; needs about {n:,} more requests"
    )


def test_a_run_from_before_intervals_has_the_old_properties(tmp_path: Path) -> None:
    suite = _suite(make_run(tmp_path / "r", failover=False, intervals=False))
    assert "confidence" not in _props(suite) and "false_alarm_rate" not in _props(suite)
    case = next(suite.iter("testcase"))
    assert set(_props(case)) == {
        "status",
        "metric",
        "source",
        "value",
        "bound",
        "margin",
        "recovered_after_s",
    }
    failure = case.find("failure")
    assert failure is not None
    assert failure.get("message") == "error_rate 80 % against bound < 5 % (margin -75 %)"
    assert "confidence" not in (failure.text or "")


def test_names_and_messages_that_xml_cannot_hold_still_give_a_file_that_parses(
    tmp_path: Path,
) -> None:
    """A results.json written by an older version (or by hand) with control characters and a
    lone surrogate in a check's name and message: every report is written, junit.xml parses."""
    run_dir = make_run(tmp_path / "run", failover=False)
    doc = json.loads((run_dir / "results.json").read_text())
    doc["checks"][0]["name"] = "bad\x01name \x1b[31mred\ud800"
    doc["checks"][0]["message"] = "message \x07 with a bell"
    (run_dir / "results.json").write_text(json.dumps(doc, ensure_ascii=True))
    suite = _suite(run_dir)
    names = [c.get("name") for c in suite.findall("testcase")]
    assert "bad\ufffdname \ufffd[31mred\ufffd" in names
    assert (run_dir / "report.html").is_file() and (run_dir / "report.md").is_file()
