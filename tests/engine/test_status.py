"""What `/status` says of a scenario run: its identity, where it stands, and per rule how
many requests it matched and faulted; a finished run keeps its last numbers."""

from __future__ import annotations

import pytest

from tests.engine.helpers import View, rig, scenario

STORY = """
name: story
description: the API breaks for a while
seed: 5
repeat: 2
phases:
  - name: steady
    duration: 10s
  - name: broken
    duration: 20s
    rules:
      - name: boom
        match: {path: "/api/**"}
        probability: 1.0
        fault: {error: {status: 500}}
      - name: slow
        match: {path: "/slow"}
        fault: {latency: {delay: 1s}}
"""


def test_a_run_says_what_it_is_and_where_it_stands() -> None:
    r = rig()
    r.engine.start_scenario(scenario(STORY, source="story.yaml"))
    r.clock.advance(45)  # one 30 s cycle done, then 15 s: 5 s into `broken`
    st = r.engine.status()["scenario"]
    assert (st["name"], st["description"], st["source"]) == (
        "story",
        "the API breaks for a while",
        "story.yaml",
    )
    assert (st["state"], st["seed"], st["repeat"]) == ("running", 5, 2)
    assert (st["cycle"], st["phase"], st["phase_index"]) == (1, "broken", 1)
    assert (st["phase_elapsed"], st["phase_remaining"]) == pytest.approx((5, 15))
    assert st["cycle_duration"] == pytest.approx(30)
    assert st["total_duration"] == pytest.approx(60)
    assert st["remaining"] == pytest.approx(15)
    assert st["cohort"] is None
    assert [p["rules"] for p in st["phases"]] == [0, 2]
    assert st["warnings"] == []


def test_rule_counts_show_matched_and_injected_per_rule() -> None:
    r = rig()
    r.engine.start_scenario(scenario(STORY))
    r.clock.advance(12)
    r.engine.tick()
    for path in ("/api/a", "/api/b", "/api/c", "/other"):
        r.engine.decide(View(path=path))
    counts = {c["id"]: c for c in r.engine.status()["scenario"]["rule_counts"]}
    assert set(counts) == {"boom", "slow"}
    assert (counts["boom"]["matched"], counts["boom"]["injected"]) == (3, 3)
    assert (counts["slow"]["matched"], counts["slow"]["injected"]) == (0, 0)
    assert counts["boom"]["phase"] == "broken"
    assert counts["boom"]["faults"]


def test_a_finished_run_shows_as_finished_with_nothing_remaining() -> None:
    r = rig()
    r.engine.start_scenario(scenario(STORY))
    r.clock.advance(12)
    r.engine.tick()
    r.engine.decide(View(path="/api/a"))
    r.clock.advance(500)
    st = r.engine.status()["scenario"]
    assert st["state"] == "finished"
    assert st["remaining"] == 0.0 and st["phase_remaining"] == 0.0
    assert st["elapsed"] == pytest.approx(60)  # frozen at the end of the timeline
    boom = next(c for c in st["rule_counts"] if c["id"] == "boom")
    assert boom["injected"] == 1


def test_a_cohort_run_says_which_clients_it_splits_and_by_what_seed() -> None:
    r = rig()
    text = STORY.replace(
        'match: {path: "/api/**"}',
        'match: {path: "/api/**", cohort: {share: 0.25, by: header X-User}}',
    )
    r.engine.start_scenario(scenario(text))
    cohort = r.engine.status()["scenario"]["cohort"]
    assert cohort == {"share": 0.25, "by": cohort["by"], "seed": 5}
    assert "X-User" in str(cohort["by"])
