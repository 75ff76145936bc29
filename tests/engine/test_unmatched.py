"""A phase whose rules match none of the requests flowing through says so live: a warning log
line, a `rules_unmatched` event (once per phase of a run) and an entry in the status."""

from __future__ import annotations

import logging

import pytest

from chaosproxy.engine import unmatched
from tests.engine.helpers import Rig, View, rig, scenario

TWO_PHASES = """\
name: elsewhere
repeat: 2
phases:
  - name: calm
    duration: 1m
  - name: broken
    duration: 1m
    rules:
      - name: api-500
        match: {path: "/api/**"}
        fault: {error: {status: 500}}
      - match: {methods: [POST], path: "/checkout"}
        fault: {error: {status: 503}}
"""


def started(text: str = TWO_PHASES) -> Rig:
    r = rig()
    r.engine.start_scenario(scenario(text))
    return r


def traffic(r: Rig, n: int, over: float, path: str = "/v1/items") -> None:
    """`n` requests spread evenly over `over` seconds (the ticker runs in between)."""
    for _ in range(n):
        r.engine.decide(View(path=path))
        r.clock.advance(over / n)
        r.engine.tick()


def warnings(r: Rig) -> list[dict[str, object]]:
    return [s.details | {"phase": s.phase} for s in r.states if s.kind == "rules_unmatched"]


def test_rules_that_match_no_request_are_reported_once_per_phase(
    caplog: pytest.LogCaptureFixture,
) -> None:
    r = started()
    traffic(r, 500, 50)  # the calm phase has no rules: nothing to report
    assert warnings(r) == []
    r.clock.advance(10)
    r.engine.tick()  # broken
    with caplog.at_level(logging.WARNING, "chaosproxy.engine"):
        traffic(r, 150, 15, "/v1/items")
        traffic(r, 50, 5, "/v1/users/7")
        traffic(r, 300, 30, "/v1/items")  # warned already: counted no more
    [w] = warnings(r)
    assert (
        w["phase"] == "broken"
        and w["requests"] == 200
        and w["rules"]
        == [
            "api-500",
            "phases[1].rules[1]",
        ]
    )
    assert w["match"] == ["/api/**", "POST /checkout"]
    assert w["paths"] == [
        {"path": "/v1/items", "requests": 150},
        {"path": "/v1/users/7", "requests": 50},
    ]
    text = (
        "rules /api/**, POST /checkout matched none of the last 200 requests in 20 s; "
        "paths seen: /v1/items (150), /v1/users/7 (50)"
    )
    assert w["message"] == text
    logged = [rec for rec in caplog.records if "matched none" in rec.getMessage()]
    assert len(logged) == 1 and logged[0].levelno == logging.WARNING
    assert logged[0].getMessage() == f"scenario elsewhere phase broken: {text}"
    [st] = r.engine.status()["scenario"]["warnings"]
    assert st["message"] == text and st["matched_since"] == 0 and st["cycle"] == 0
    r.engine.decide(View(path="/api/items"))
    assert r.engine.status()["scenario"]["warnings"][0]["matched_since"] == 1
    # The second cycle enters the phase again: reported already, not again.
    traffic(r, 400, 120)
    assert len(warnings(r)) == 1


def test_both_bounds_must_pass_a_burst_or_a_trickle_is_not_enough() -> None:
    r = started()
    r.clock.advance(60)
    r.engine.tick()
    traffic(r, unmatched.REQUESTS * 5, 5)  # 1,000 requests in 5 s
    assert warnings(r) == []
    r.clock.advance(5.5)
    traffic(r, 1, 1)  # 10 s after the first: the same phase entry goes on
    assert [w["requests"] for w in warnings(r)] == [1001]

    r = started()
    r.clock.advance(60)
    r.engine.tick()
    traffic(r, unmatched.REQUESTS - 1, 59)  # a trickle over the whole phase
    assert warnings(r) == []


def test_one_matching_request_ends_the_watch_of_that_phase_entry() -> None:
    r = started()
    r.clock.advance(60)
    r.engine.tick()
    traffic(r, 1, 0.1, "/api/items")
    traffic(r, 400, 40)
    assert warnings(r) == []
    assert r.engine.status()["scenario"]["warnings"] == []


def test_a_rule_whose_match_holds_but_not_its_load_condition_still_matches() -> None:
    """`when` (load) and probability are the scenario's intent, not a mistake in its paths."""
    r = started(
        """\
name: only-under-load
phases:
  - name: p
    duration: 1h
    rules:
      - match: {path: "/api/**"}
        when: {inflight_above: 1000}
        probability: 0
        fault: {error: {status: 503}}
"""
    )
    traffic(r, 400, 40, "/api/items")
    assert warnings(r) == []
    traffic(r, 400, 40, "/elsewhere")  # the entry was seen to match: no longer watched
    assert warnings(r) == []


def test_a_path_from_a_client_is_shown_escaped_and_cut() -> None:
    r = started()
    r.clock.advance(60)
    r.engine.tick()
    traffic(r, 200, 12, "/x\x1b[31m\n" + "a" * 200)
    [w] = warnings(r)
    shown = w["paths"][0]["path"]  # type: ignore[index]
    assert shown.startswith("/x\\x1b[31m\\n") and len(shown) == unmatched.MAX_PATH
    assert "\n" not in str(w["message"]) and "\x1b" not in str(w["message"])
