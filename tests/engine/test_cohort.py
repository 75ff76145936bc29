"""Cohort rules in the engine: only members are faulted, every request of the run is labelled
in every phase, the run's seed chooses the members, ad-hoc rules keep one cohort spec, and the
journal records the label."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from multidict import CIMultiDict

from chaosproxy.common.cohort import CONTROL, FAULT, cohort_of
from chaosproxy.common.events import FaultInjected
from chaosproxy.config.model import CohortSpec
from chaosproxy.engine.adhoc import CohortMismatch
from chaosproxy.engine.compile import compile_rule
from chaosproxy.engine.journal import Journal
from tests.engine.helpers import View, rig, scenario

COHORT = """
name: s
{seed}
phases:
  - name: steady
    duration: 10s
  - name: broken
    duration: 10s
    rules:
      - name: hurt
        match: {{path: "/api/**", cohort: {{share: 0.25, by: header X-Chaos-User}}}}
        fault: {{error: {{status: 503}}}}
"""


def user(name: str | None, path: str = "/api/x", ip: str = "127.0.0.1") -> View:
    headers: CIMultiDict[str] = CIMultiDict()
    if name is not None:
        headers["X-Chaos-User"] = name
    return View(path=path, headers=headers, client_ip=ip)


USERS = [f"user-{i}" for i in range(400)]


def test_only_cohort_members_are_faulted_and_every_phase_is_labelled() -> None:
    r = rig()
    r.engine.start_scenario(scenario(COHORT.format(seed="seed: 11")))
    members = {u for u in USERS if cohort_of(11, u, 0.25)}
    assert 60 < len(members) < 140
    # steady: no rule, yet each request carries its cohort label (the baseline per cohort)
    for u in USERS:
        assert r.engine.decide(user(u)) is None
        assert r.engine.label(user(u)) == (FAULT if u in members else CONTROL)
    r.clock.advance(10)
    r.engine.tick()
    faulted = set()
    for u in USERS:
        d = r.engine.decide(user(u))
        if d is not None:
            faulted.add(u)
            assert d.cohort == FAULT
    assert faulted == members
    cohort = r.engine.status()["scenario"]["cohort"]
    assert cohort == {"share": 0.25, "by": "header X-Chaos-User", "seed": 11}
    # no header: control, never faulted
    assert r.engine.decide(user(None)) is None
    assert r.engine.label(user(None)) == CONTROL


def test_the_start_seed_overrides_the_scenarios_and_unseeded_runs_use_0() -> None:
    def members(seed_line: str, seed: int | None = None) -> set[str]:
        r = rig()
        r.engine.start_scenario(scenario(COHORT.format(seed=seed_line)), seed=seed)
        return {u for u in USERS if r.engine.label(user(u)) == FAULT}

    assert members("seed: 5") == {u for u in USERS if cohort_of(5, u, 0.25)}
    assert members("seed: 5", seed=6) == {u for u in USERS if cohort_of(6, u, 0.25)}
    assert members("") == {u for u in USERS if cohort_of(0, u, 0.25)}
    assert members("seed: 5") == members("seed: 5")  # a replay picks the same clients


def test_by_client_follows_the_client_id_header_else_the_address() -> None:
    text = COHORT.format(seed="seed: 2").replace("by: header X-Chaos-User", "by: client")
    r = rig()
    r.engine.start_scenario(scenario(text))
    ips = [f"10.0.{i // 250}.{i % 250}" for i in range(400)]
    by_ip = {ip for ip in ips if cohort_of(2, ip, 0.25)}
    assert {ip for ip in ips if r.engine.label(user("x", ip=ip)) == FAULT} == by_ip
    r.engine.client_id_header = "X-Chaos-User"
    assert {u for u in USERS if r.engine.label(user(u)) == FAULT} == {
        u for u in USERS if cohort_of(2, u, 0.25)
    }
    assert r.engine.label(user(None, ip="10.0.0.7")) == (FAULT if "10.0.0.7" in by_ip else CONTROL)


def test_no_cohort_spec_no_label() -> None:
    r = rig()
    assert r.engine.label(user("a")) == ""
    r.engine.start_scenario(
        scenario("name: s\nphases:\n  - {name: p, duration: 1m, rules: [{fault: {error: {}}}]}")
    )
    d = r.engine.decide(user("a"))
    assert d is not None and d.cohort == "" and r.engine.label(user("a")) == ""
    r.engine.stop_scenario()
    assert r.engine.labels is None


def adhoc(cohort: str) -> object:
    from chaosproxy.config.loader import load_scenario_text

    text = (
        "name: a\nphases:\n  - name: p\n    duration: 1s\n    rules:\n"
        f"      - {{match: {{cohort: {cohort}}}, fault: {{error: {{status: 503}}}}}}\n"
    )
    return compile_rule(load_scenario_text(text).phases[0].rules[0])


def test_adhoc_rules_have_one_cohort_spec_and_label_traffic() -> None:
    r = rig()
    r.engine.add_compiled_rule(adhoc("{share: 0.5, by: header X-Chaos-User}"))  # type: ignore[arg-type]
    assert r.engine.labels is not None and r.engine.labels.spec == CohortSpec(
        0.5, "header X-Chaos-User"
    )
    with pytest.raises(CohortMismatch, match="one cohort spec at a time"):
        r.engine.add_compiled_rule(adhoc("{share: 0.4, by: header X-Chaos-User}"))  # type: ignore[arg-type]
    r.engine.add_compiled_rule(adhoc("{share: 0.5, by: header X-Chaos-User}"))  # type: ignore[arg-type]
    inside = {u for u in USERS if cohort_of(0, u, 0.5)}
    assert {u for u in USERS if r.engine.decide(user(u)) is not None} == inside
    r.engine.clear_rules()
    assert r.engine.labels is None


def test_the_journal_records_the_cohort(tmp_path: Path) -> None:
    r = rig()
    journal = Journal(tmp_path / "j.jsonl", r.clock)
    journal.attach(r.engine.bus)
    base = dict(t=1.0, request_id="r1", method="GET", path="/", scenario="", phase="")
    r.engine.bus.emit(FaultInjected(**base, rule="x", fault="error", outcome="503"))  # type: ignore[arg-type]
    r.engine.bus.emit(
        FaultInjected(**base, rule="x", fault="error", outcome="503", cohort=FAULT)  # type: ignore[arg-type]
    )
    journal.close()
    lines = [json.loads(line) for line in (tmp_path / "j.jsonl").read_text().splitlines()]
    assert "cohort" not in lines[0] and lines[1]["cohort"] == FAULT
