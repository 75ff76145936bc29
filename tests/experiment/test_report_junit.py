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
    assert during.get("message") == "error_rate 80 % against bound < 5 % (margin -75 %)"
    recover = cases["recovers after broken-release"].find("failure")
    assert recover is not None
    assert recover.get("message") == (
        "recovered 5 s after broken-release (allowed 4 s); "
        "error_rate 0 % against bound < 1 % (margin 1 %) once settled"
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
