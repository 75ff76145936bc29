"""The resilience evidence per phase (results.json `resilience`, the reports' table): "absorbed"
reads injected faults against client failures, which holds only while the system calls the
dependency for its clients' requests. When it stopped calling it (a circuit breaker, a cache,
routing around it), the evidence says what was measured and computes no "absorbed"."""

from __future__ import annotations

import json
from pathlib import Path

from chaosproxy.experiment import numbers
from chaosproxy.experiment.model import CheckSpec
from chaosproxy.experiment.report import write_reports
from chaosproxy.experiment.report.markdown import render_markdown
from chaosproxy.experiment.report.results_dir import load_run
from chaosproxy.experiment.series import PhaseWindow, Second, View
from chaosproxy.experiment.verdict import judge
from tests.experiment.support_dom import Dom
from tests.experiment.support_results import make_run

T0 = 1_800_000_000


def run(*spans: tuple[str, int, int, int, int, int]) -> tuple[list[Second], list[PhaseWindow]]:
    """Spans of (phase, seconds, client requests, client failures, proxy requests, injected)
    per second."""
    rows: list[Second] = []
    phases: list[PhaseWindow] = []
    t = T0
    for name, seconds, creq, cfail, preq, inj in spans:
        for _ in range(seconds):
            rows.append(
                Second(t, name, client=View(creq, cfail), proxy=View(preq, inj, injected=inj))
            )
            t += 1
        phases.append(PhaseWindow(name, t - seconds, t, inj > 0))
    return rows, phases


CHECK = CheckSpec(name="served", metric="error_rate", during_phase="outage", bound=0.02)


def test_a_system_that_stopped_calling_the_dependency_gets_no_absorbed() -> None:
    # A breaker opened: of 100 client requests a second, 2 still reach the dependency, both
    # failed by the fault; the clients see 99 failures (the breaker's fast failures).
    rows, phases = run(("steady", 5, 100, 0, 100, 0), ("outage", 5, 100, 99, 2, 2))
    outage = judge([CHECK], rows, phases).phases[1]
    assert outage["resilience"] == {
        "injected": 10,
        "client_failures": 495,
        "absorbed": None,
        "absorbed_share": None,
        "proxy_requests": 10,
        "client_requests": 500,
        "note": "the system stopped calling the dependency: 10 proxy requests for 500 client "
        "requests (the baseline: 1.00 per client request); absorbed is not computed (it "
        "assumes the clients' requests reach the dependency)",
    }


def test_the_baseline_ratio_is_what_far_fewer_calls_are_measured_against() -> None:
    # This system calls the dependency for one client request in four (a cache in front):
    # the same one in four during the outage is no change, so absorbed still means something.
    rows, phases = run(("steady", 5, 100, 0, 25, 0), ("outage", 5, 100, 5, 25, 20))
    outage = judge([CHECK], rows, phases).phases[1]
    assert outage["resilience"] == {
        "injected": 100,
        "client_failures": 25,
        "absorbed": 75,
        "absorbed_share": 0.75,
    }
    # Failover with retries (more calls than requests) keeps the plain evidence too.
    rows, phases = run(("steady", 5, 100, 0, 100, 0), ("outage", 5, 100, 1, 200, 100))
    assert "note" not in judge([CHECK], rows, phases).phases[1]["resilience"]


def test_a_proxy_that_saw_nothing_all_run_is_not_a_system_that_stopped_calling() -> None:
    # no traffic reached the proxy at all: the verdict's own finding, not this one
    rows, phases = run(("steady", 5, 100, 0, 0, 0), ("outage", 5, 100, 0, 0, 0))
    assert "note" not in judge([CHECK], rows, phases).phases[1]["resilience"]


def _breaker_run(tmp_path: Path) -> Path:
    """A results directory whose broken-release phase saw the system stop calling the
    dependency (as phase_summary writes it)."""
    run_dir = make_run(tmp_path / "run", failover=False)
    doc = json.loads((run_dir / "results.json").read_text())
    broken = next(p for p in doc["phases"] if p["name"] == "broken-release")
    rows, phases = run(("steady", 5, 100, 0, 100, 0), ("outage", 5, 100, 99, 2, 2))
    broken["resilience"] = judge([CHECK], rows, phases).phases[1]["resilience"]
    (run_dir / "results.json").write_text(json.dumps(doc))
    write_reports(run_dir)
    return run_dir


def test_the_reports_say_what_was_measured_instead(tmp_path: Path) -> None:
    run_dir = _breaker_run(tmp_path)
    dom = Dom((run_dir / "report.html").read_text())
    # The first row of the phase: the resilience table's (the client behaviour's follows).
    phase = "broken-release"
    row = next(e for e in dom.having("data-phase", "tr") if e.attrs["data-phase"] == phase)
    cells = [c.all_text().strip() for c in row.children if c.tag == "td"]
    # injected, absorbed, seen by clients, absorbed share
    assert cells[2:6] == ["10", numbers.NO_DATA, "495", numbers.NO_DATA]
    (note,) = dom.having("data-phase-note", "tr")
    assert note.attrs["data-phase-note"] == "broken-release"
    assert "the system stopped calling the dependency: 10 proxy requests for 500" in (
        note.all_text()
    )
    text = render_markdown(load_run(run_dir))
    line = next(ln for ln in text.splitlines() if ln.startswith("- **broken-release**"))
    assert "10 faults injected; the system stopped calling the dependency" in line
    assert "absorbed (" not in line
