"""The phase timeline on a fake clock: order, repeat, ramps, boundaries, events, the ticker."""

from __future__ import annotations

import asyncio

import pytest

from chaosproxy.engine.core import ScenarioRunning
from tests.engine.helpers import View, rig, scenario

THREE_PHASES = """
name: story
phases:
  - name: steady
    duration: 10s
  - name: broken
    duration: 20s
    rules:
      - name: boom
        fault: {error: {status: 500}}
  - name: recovered
    duration: 30s
"""


def test_phases_run_in_order_by_elapsed_time() -> None:
    r = rig()
    r.engine.start_scenario(scenario(THREE_PHASES))
    seen = []
    for t in (0, 9.9, 10, 29.9, 30, 59.9):
        r.clock.advance(t - (r.clock.monotonic() - 1000.0))
        seen.append(r.engine.status()["scenario"]["phase"])
    assert seen == ["steady", "steady", "broken", "broken", "recovered", "recovered"]


def test_a_phase_without_rules_is_healthy() -> None:
    r = rig()
    r.engine.start_scenario(scenario(THREE_PHASES))
    assert r.rule_of() is None
    r.clock.advance(10)
    assert r.rule_of() == "boom"
    r.clock.advance(20)
    assert r.rule_of() is None


def test_scenario_finishes_after_its_last_phase() -> None:
    r = rig()
    r.engine.start_scenario(scenario(THREE_PHASES))
    r.clock.advance(60)
    assert r.rule_of() is None
    assert r.engine.status()["scenario"]["state"] == "finished"
    r.engine.tick()
    assert not r.engine.active
    assert r.kinds()[-1] == "scenario_finished"
    assert r.engine.status()["scenario"]["state"] == "finished"


def test_decide_status_and_current_read_the_phase_in_force_without_emitting() -> None:
    r = rig()
    r.engine.start_scenario(scenario(THREE_PHASES))
    r.clock.advance(15)
    before = list(r.states)
    assert r.rule_of() == "boom"
    assert r.engine.status()["scenario"]["phase"] == "broken"
    assert r.engine.current() is not None
    assert r.states == before  # only the timeline's own tick reports the change
    r.engine.tick()
    assert r.phase_changes()[-1] == ("broken", 0)
    r.clock.advance(50)
    assert r.engine.current() is None and r.rule_of() is None
    assert r.kinds()[-1] == "phase_changed"
    r.engine.tick()
    assert r.kinds()[-2:] == ["phase_changed", "scenario_finished"]


def test_a_phase_count_restarts_once_per_entry_whether_decide_or_tick_sees_it_first() -> None:
    text = """
    name: s
    repeat: 3
    phases:
      - name: a
        duration: 10s
        rules:
          - {name: once, first: 1, fault: {error: {status: 500}}}
      - name: b
        duration: 10s
    """
    r = rig()
    r.engine.start_scenario(scenario(text))
    assert [r.rule_of(), r.rule_of()] == ["once", None]
    r.clock.advance(20)  # cycle 1, phase a: decide sees it before any tick
    assert [r.rule_of(), r.rule_of()] == ["once", None]
    r.engine.tick()  # the tick that notices it late does not restart the count again
    assert r.rule_of() is None
    r.clock.advance(20)  # cycle 2: the tick sees it first
    r.engine.tick()
    assert [r.rule_of(), r.rule_of()] == ["once", None]


def test_status_reports_phase_boundaries_elapsed_and_remaining() -> None:
    r = rig()
    r.engine.start_scenario(scenario(THREE_PHASES))
    r.clock.advance(15)
    st = r.engine.status()["scenario"]
    assert [(p["name"], p["start"], p["end"]) for p in st["phases"]] == [
        ("steady", 0.0, 10.0),
        ("broken", 10.0, 30.0),
        ("recovered", 30.0, 60.0),
    ]
    assert st["phase"] == "broken"
    assert st["elapsed"] == pytest.approx(15)
    assert st["remaining"] == pytest.approx(45)
    assert st["phase_elapsed"] == pytest.approx(5)
    assert st["phase_remaining"] == pytest.approx(15)


def test_repeat_runs_the_phases_again_then_finishes() -> None:
    r = rig()
    r.engine.start_scenario(scenario(THREE_PHASES + "repeat: 2\n"))
    r.clock.advance(70)
    r.engine.tick()
    assert r.engine.status()["scenario"]["phase"] == "broken"
    assert r.engine.status()["scenario"]["cycle"] == 1
    r.clock.advance(50)
    r.engine.tick()
    assert r.phase_changes() == [
        ("steady", 0),
        ("broken", 0),
        ("recovered", 0),
        ("steady", 1),
        ("broken", 1),
        ("recovered", 1),
    ]
    assert r.kinds()[-1] == "scenario_finished"


def test_repeat_forever_never_finishes_and_has_no_remaining() -> None:
    r = rig()
    r.engine.start_scenario(scenario(THREE_PHASES + "repeat: forever\n"))
    r.clock.advance(60 * 1000 + 15)
    st = r.engine.status()["scenario"]
    assert st["state"] == "running" and st["phase"] == "broken"
    assert st["remaining"] is None and st["cycle"] == 1000


def test_repeat_argument_overrides_the_scenario() -> None:
    r = rig()
    r.engine.start_scenario(scenario(THREE_PHASES), repeat=None)
    r.clock.advance(75)
    assert r.engine.status()["scenario"]["phase"] == "broken"


def test_phase_change_events_carry_the_boundary_time_even_when_noticed_late() -> None:
    r = rig()
    r.engine.start_scenario(scenario(THREE_PHASES))
    start = r.states[0].t
    r.clock.advance(45)  # nobody looked at the boundary at 10 s and 30 s
    r.engine.tick()
    changes = [s for s in r.states if s.kind == "phase_changed"]
    assert [round(s.t - start, 6) for s in changes] == [0.0, 10.0, 30.0]
    assert changes[1].details == {"from": "steady", "to": "broken", "cycle": 0, "offset": 10.0}


def test_started_and_stopped_events() -> None:
    r = rig()
    r.engine.start_scenario(scenario(THREE_PHASES), seed=5)
    assert r.states[0].kind == "scenario_started"
    assert r.states[0].scenario == "story" and r.states[0].details["seed"] == 5
    assert r.engine.stop_scenario()
    assert r.kinds()[-1] == "scenario_stopped"
    assert not r.engine.stop_scenario()


def test_starting_while_one_runs_needs_replace() -> None:
    r = rig()
    r.engine.start_scenario(scenario(THREE_PHASES))
    with pytest.raises(ScenarioRunning, match="'story' is running"):
        r.engine.start_scenario(scenario(THREE_PHASES))
    r.engine.start_scenario(scenario(THREE_PHASES), replace=True)
    assert r.kinds().count("scenario_started") == 2


def test_probability_ramps_linearly_across_the_phase() -> None:
    r = rig(seed=1)
    r.engine.start_scenario(
        scenario(
            """
            name: fade
            phases:
              - name: rollback
                duration: 100s
                rules:
                  - probability: {from: 1.0, to: 0.0}
                    fault: {error: {}}
            """
        )
    )

    def rate() -> float:
        hits = sum(r.engine.decide(View()) is not None for _ in range(2000))
        return hits / 2000

    near_start = rate()
    r.clock.advance(50)
    middle = rate()
    r.clock.advance(49)
    near_end = rate()
    assert near_start > 0.95
    assert 0.45 < middle < 0.55
    assert near_end < 0.05


async def test_ticker_emits_phase_changes_without_traffic() -> None:
    r = rig()
    t0 = r.clock.monotonic()
    task = asyncio.create_task(r.engine.run_ticker())
    try:
        await r.clock.wait_sleepers(1, until=t0 + 3600)  # nothing to do: its idle hour
        r.engine.start_scenario(scenario(THREE_PHASES))
        await r.clock.wait_sleepers(1, until=t0 + 10)  # woken: now it sleeps to the boundary
        r.clock.advance(10)
        await r.clock.wait_sleepers(1, until=t0 + 30)  # it ticked at 10 s, sleeps to 30 s
        assert r.phase_changes() == [("steady", 0), ("broken", 0)]
        r.clock.advance(50)
        await r.clock.wait_sleepers(1, until=r.clock.monotonic() + 3600)
        assert r.kinds()[-2:] == ["phase_changed", "scenario_finished"]
    finally:
        task.cancel()


async def test_ticker_removes_an_ad_hoc_rule_when_its_ttl_ends() -> None:
    from chaosproxy.faults import build

    r = rig()
    t0 = r.clock.monotonic()
    task = asyncio.create_task(r.engine.run_ticker())
    try:
        await r.clock.wait_sleepers(1, until=t0 + 3600)
        r.engine.add_rule([build("error", {}, "f")], ttl=5)
        await r.clock.wait_sleepers(1, until=t0 + 5)  # woken: it sleeps until the TTL ends
        r.clock.advance(6)
        await r.clock.wait_sleepers(1, until=r.clock.monotonic() + 3600)
        assert r.kinds()[-1] == "rule_removed"
        assert not r.engine.active and r.engine.adhoc_rules() == []
    finally:
        task.cancel()


def test_stopping_after_the_timeline_ended_reports_the_finish_and_stops_nothing() -> None:
    r = rig()
    r.engine.start_scenario(scenario(THREE_PHASES))
    r.clock.advance(61)  # the ticker has not run
    assert r.engine.stop_scenario() is False
    assert r.kinds()[-2:] == ["phase_changed", "scenario_finished"]
    assert r.engine.status()["scenario"]["state"] == "finished"
