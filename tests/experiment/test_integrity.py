"""The run's integrity rules over recorded data: no Locust, no proxy, no clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chaosproxy.experiment import integrity
from chaosproxy.experiment.integrity import Plan
from chaosproxy.observe.stats import BOUNDS

AT = 1000.0
PHASES = (("steady", 3.0), ("outage", 4.0), ("after", 6.0))


@dataclass(frozen=True)
class W:
    name: str
    start: float
    end: float


@dataclass
class C:
    requests: int
    hist: dict[int, int] = field(default_factory=dict)


FAST = BOUNDS.index(next(b for b in BOUNDS if b >= 0.01))  # a 10 ms bucket


def plan(users: int = 5, rate: float = 5.0, stages: tuple[Any, ...] = ()) -> Plan:
    return Plan(AT, PHASES, (users, rate), stages)


def windows() -> list[W]:
    return [W("steady", AT, AT + 3), W("outage", AT + 3, AT + 7), W("after", AT + 7, AT + 13)]


def steady_load(first: int, last: int, n: int = 50) -> dict[int, C]:
    return {t: C(n, {FAST: n}) for t in range(first, last + 1)}


# ---------------------------------------------------------------- the plan


def test_the_plan_knows_its_phases_and_targets() -> None:
    p = plan(stages=((AT + 3, 20.0, 5.0),))
    assert p.duration == 13.0
    assert p.phase_at(AT - 1) is None and p.phase_at(AT) == "steady"
    assert p.phase_at(AT + 3) == "outage" and p.phase_at(AT + 13) is None
    assert p.after("steady") == ["outage", "after"] and p.after("nope") == []
    assert p.target(AT + 2.9) == (5.0, 5.0) and p.target(AT + 3) == (20.0, 5.0)


def test_reachable_users_follow_the_spawn_rate() -> None:
    p = plan(stages=((AT + 3, 20.0, 5.0), (AT + 7, 10.0, 10.0)))
    can = p.reachable(int(AT), int(AT) + 9)
    assert [can[int(AT) + i] for i in range(10)] == [5, 5, 5, 5, 10, 15, 20, 20, 10, 10]


# ---------------------------------------------------------------- sentences


def test_a_dead_locust_is_named_with_its_code_phase_and_what_had_no_load() -> None:
    text = integrity.load_exited("locust", -9, plan(), AT + 4.2)
    assert text == (
        "Locust exited (code -9) 4s into the scenario, during phase outage; "
        "the rest of the scenario (outage, after) had no load"
    )
    assert "before the scenario started" in integrity.load_exited("locust", 1, plan(), AT - 1)
    assert "the cool-down had no load" in integrity.load_exited("locust", 0, plan(), AT + 14)
    worker = integrity.load_exited("locust-worker-1", -9, plan(), AT + 1)
    assert worker.startswith("Locust worker 1 exited (code -9) 1s into the scenario")
    assert "fewer users" in worker
    assert integrity.load_exited("locust-master", 2, None, 0).startswith("the Locust master")


def test_proxy_sentences_name_the_proxy_and_when() -> None:
    assert integrity.proxy_exited("http://p:1", -9, plan(), AT + 5) == (
        "the proxy the run started (http://p:1) exited (code -9) 5s into the scenario, "
        "during phase outage"
    )
    gone = integrity.proxy_unreachable("http://a:2", plan(), AT + 8, "refused")
    assert gone.startswith("the proxy at http://a:2 stopped answering 8s into the scenario")
    assert "restarted" in integrity.proxy_restarted("http://a:2", plan(), AT, "h:1", "h:2")
    assert "http://a:2" in integrity.no_series("http://a:2", "timed out")


# ---------------------------------------------------------------- cut short


def ev(seq: int, t: float, kind: str, phase: str = "", **details: Any) -> dict[str, Any]:
    return {"seq": seq, "t": t, "kind": kind, "scenario": "s", "phase": phase, "details": details}


def started() -> list[dict[str, Any]]:
    return [
        ev(1, AT, "scenario_started", "steady"),
        ev(2, AT, "phase_changed", "steady"),
        ev(3, AT + 3, "phase_changed", "outage"),
    ]


def test_a_stop_from_outside_cuts_the_phase_short() -> None:
    events = [*started(), ev(4, AT + 5, "scenario_stopped", "outage", elapsed=5.0)]
    problems = integrity.cut_short("http://a", "s", events, plan(), AT + 13.2)
    assert problems == [
        "phase outage was cut short at 2s (of 4s planned) on http://a: stopped from outside "
        "the run (chaosproxy ctl stop, the admin API); after never ran"
    ]


def test_a_guardrail_or_a_replacement_is_named() -> None:
    guard = [
        *started(),
        ev(4, AT + 5, "scenario_stopped", "outage"),
        ev(5, AT + 5, "guardrail_tripped", guardrail="abort_if.error_rate", reason="too many"),
    ]
    (text,) = integrity.cut_short("http://a", "s", guard, plan(), AT + 13)
    assert "guardrail abort_if.error_rate tripped (too many)" in text
    replaced = [*started(), ev(4, AT + 4, "scenario_stopped", "outage", reason="replaced")]
    (text,) = integrity.cut_short("http://a", "s", replaced, plan(), AT + 13)
    assert "another scenario replaced it" in text


def test_the_runs_own_stop_a_halt_and_a_finish_are_not_cut_short() -> None:
    finished = [*started(), ev(4, AT + 7, "phase_changed", "after")]
    finished.append(ev(5, AT + 13, "scenario_finished", "after"))
    assert integrity.cut_short("http://a", "s", finished, plan(), AT + 13.2) == []
    # Locust died at 5 s: the runner stopped the scenario itself at 6 s.
    ours = [*started(), ev(4, AT + 6, "scenario_stopped", "outage")]
    assert integrity.cut_short("http://a", "s", ours, plan(), AT + 5.8) == []
    # A halt at 4.5 s stopped it at 4.6 s; the load stopped 3 s later.
    halt = [*started(), ev(4, AT + 4.6, "scenario_stopped", "outage")]
    assert integrity.cut_short("http://a", "s", halt, plan(), AT + 7.6, AT + 4.5) == []


def test_a_scenario_that_never_started_is_a_problem_once_it_should_have() -> None:
    assert integrity.cut_short("http://a", "s", [], plan(), AT + 13) == [
        "the scenario never started on http://a"
    ]
    assert integrity.cut_short("http://a", "s", [], plan(), AT - 1) == []


# ---------------------------------------------------------------- users never reached


def test_users_that_held_the_plan_are_fine() -> None:
    users = {int(AT) + i: 5 for i in range(13)}
    assert integrity.users_short(plan(), windows(), users, AT + 13) == []


def test_users_below_the_plan_for_a_whole_phase_are_a_problem() -> None:
    users = {int(AT) + i: 5 if i < 3 else 2 for i in range(13)}
    problems = integrity.users_short(plan(), windows(), users, AT + 13)
    assert problems == [
        "Locust's users stayed below the plan for all of phase outage: at most 2 of the planned 5",
        "Locust's users stayed below the plan for all of phase after: at most 2 of the planned 5",
    ]


def test_the_spawn_ramp_and_a_lagging_report_are_allowed() -> None:
    """5 -> 20 users at 5/s as outage starts: reachable after 3 s; the reports lag 2 s more."""
    p = plan(stages=((AT + 3, 20.0, 5.0),))
    users = {int(AT) + i: u for i, u in enumerate([5, 5, 5, 5, 5, 5, 10, 15, 20, 20, 20, 20, 20])}
    assert integrity.users_short(p, windows(), users, AT + 13) == []
    stuck = {t: min(u, 12) for t, u in users.items()}
    (text,) = integrity.users_short(p, windows(), stuck, AT + 13)
    assert "phase after: at most 12 of the planned 20" in text


def test_a_phase_with_no_status_line_or_past_the_load_is_left_alone() -> None:
    users = {int(AT) + i: 5 for i in range(3)}  # reports stop when Locust died at 3 s
    assert integrity.users_short(plan(), windows(), users, AT + 3) == []
    assert integrity.users_short(plan(), [], users, AT + 13) == []


# ---------------------------------------------------------------- gaps


def test_three_empty_seconds_at_a_high_rate_are_a_gap() -> None:
    """The first empty second is taken as covered by the requests of the second before."""
    client = steady_load(int(AT) - 5, int(AT) + 12)
    for t in range(int(AT) + 4, int(AT) + 8):
        del client[t]
    users = {t: 5 for t in range(int(AT) - 5, int(AT) + 13)}
    assert integrity.gaps(plan(), windows(), client, users, AT + 13) == [
        "no client request for 3s from 5s into the scenario (phase outage), "
        "where about 117 were expected"
    ]
    client[int(AT) + 6] = C(10, {FAST: 10})  # two runs of one second each
    assert integrity.gaps(plan(), windows(), client, users, AT + 13) == []


def test_empty_seconds_at_a_low_rate_need_a_longer_run() -> None:
    """1 user, one request every 2 s: single empty seconds are normal; a run counts once
    rate * users * length >= 7 (here the rate the run showed, about 0.4 req/s: ~18 s)."""
    p = Plan(AT, (("one", 80.0),), (1, 1.0))
    one = [W("one", AT, AT + 80)]
    users = {int(AT) + i: 1 for i in range(80)}
    every_other = {int(AT) + i: C(1, {FAST: 1}) for i in range(0, 80, 2)}
    assert integrity.gaps(p, one, every_other, users, AT + 80) == []
    quiet = dict(every_other)
    for t in range(int(AT) + 10, int(AT) + 21):  # 12 quiet seconds (10..21): no gap
        quiet.pop(t, None)
    assert integrity.gaps(p, one, quiet, users, AT + 80) == []
    for t in range(int(AT) + 10, int(AT) + 31):  # 22 quiet seconds (10..31): a gap
        every_other.pop(t, None)
    (text,) = integrity.gaps(p, one, every_other, users, AT + 80)
    assert text.startswith("no client request for 22s from 10s") and "phase one" in text


def test_requests_in_flight_are_not_a_gap() -> None:
    """A 5 s latency fault: users wait on their requests, nothing new starts for 5 s."""
    client = steady_load(int(AT) - 5, int(AT) + 12)
    slow = BOUNDS.index(next(b for b in BOUNDS if b >= 5.0))
    client[int(AT) + 3] = C(5, {slow: 5})
    for t in range(int(AT) + 4, int(AT) + 9):
        del client[t]
    users = {t: 5 for t in range(int(AT) - 5, int(AT) + 13)}
    assert integrity.gaps(plan(), windows(), client, users, AT + 13) == []


def test_a_trailing_gap_counts_only_when_locust_stopped_reporting() -> None:
    client = steady_load(int(AT) - 5, int(AT) + 8)
    users = {t: 5 for t in range(int(AT) - 5, int(AT) + 13)}
    # Requests still in flight as the load stopped: Locust reported its users throughout.
    assert integrity.gaps(plan(), windows(), client, users, AT + 13) == []
    hung = {t: u for t, u in users.items() if t <= int(AT) + 8}
    (text,) = integrity.gaps(plan(), windows(), client, hung, AT + 13)
    assert "for 3s from 10s into the scenario (phase after)" in text


def test_no_rate_to_expect_no_gap() -> None:
    assert integrity.gaps(plan(), windows(), {}, {}, AT + 13) == []
    assert integrity.gaps(plan(), windows(), steady_load(int(AT), int(AT) + 12), {}, AT) == []
