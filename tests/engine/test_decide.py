"""decide(): rule order, continue, scenario-wide rules, load conditions, count patterns,
weighted outcomes, seeds and per-rule counts."""

from __future__ import annotations

from collections import Counter

import pytest
from multidict import CIMultiDict

from chaosproxy.config.model import FieldCond, MatchSpec
from chaosproxy.engine.adhoc import AdhocRules, TooManyRules
from chaosproxy.engine.compile import rule_from_faults
from chaosproxy.engine.matching import compile_match
from chaosproxy.faults import build
from tests.engine.helpers import View, rig, scenario


def one_phase(rules: str, extra: str = "") -> str:
    body = "\n".join("        " + line for line in rules.strip("\n").splitlines())
    return f"name: s\n{extra}phases:\n  - name: p\n    duration: 1h\n    rules:\n{body}\n"


def statuses(d: object) -> list[int]:
    return [f.status for f in d.faults]  # type: ignore[attr-defined]


def test_first_matching_rule_wins() -> None:
    r = rig()
    r.engine.start_scenario(
        scenario(
            one_phase(
                """
- {name: api, match: {path: "/api/**"}, fault: {error: {status: 502}}}
- {name: all, fault: {error: {status: 500}}}
"""
            )
        )
    )
    assert r.rule_of(View(path="/api/x")) == "api"
    assert r.rule_of(View(path="/web")) == "all"


def test_continue_adds_the_faults_of_later_matching_rules() -> None:
    r = rig()
    r.engine.start_scenario(
        scenario(
            one_phase(
                """
- {name: a, continue: true, fault: {error: {status: 502}}}
- {name: b, match: {path: /x}, fault: {error: {status: 503}}}
- {name: c, fault: {error: {status: 504}}}
"""
            )
        )
    )
    d = r.engine.decide(View(path="/x"))
    assert d is not None and d.rule == "a+b" and sorted(statuses(d)) == [502, 503]
    d = r.engine.decide(View(path="/y"))
    assert d is not None and d.rule == "a+c"


def test_each_fault_of_a_continued_decision_names_its_own_rule() -> None:
    r = rig()
    r.engine.start_scenario(
        scenario(
            one_phase(
                """
- {name: slow, continue: true, fault: {latency: {delay: 10ms}}}
- {name: broken, fault: {error: {status: 503}}}
"""
            )
        )
    )
    d = r.engine.decide(View(path="/x"))
    assert d is not None and d.rule == "slow+broken"
    latency, error = sorted(d.faults, key=lambda f: f.name != "latency")
    assert d.rule_of(latency) == "slow" and d.rule_of(error) == "broken"


def test_scenario_wide_rules_apply_in_every_phase_after_phase_rules() -> None:
    r = rig()
    r.engine.start_scenario(
        scenario(
            """
            name: s
            rules:
              - {name: wide, fault: {error: {status: 503}}}
            phases:
              - name: one
                duration: 10s
                rules:
                  - {name: own, match: {path: /a}, fault: {error: {status: 500}}}
              - name: two
                duration: 10s
            """
        )
    )
    assert r.rule_of(View(path="/a")) == "own"
    assert r.rule_of(View(path="/b")) == "wide"
    r.clock.advance(10)
    assert r.rule_of(View(path="/a")) == "wide"


def test_inflight_above_applies_only_while_load_exceeds_it() -> None:
    r = rig()
    r.engine.start_scenario(
        scenario(one_phase("- {when: {inflight_above: 3}, fault: {error: {status: 503}}}"))
    )
    for _ in range(3):
        r.load.started()
    assert r.rule_of() is None
    r.load.started()
    assert r.rule_of() is not None
    r.load.finished()
    assert r.rule_of() is None


def test_rps_above_reads_the_sliding_window() -> None:
    r = rig()
    r.engine.start_scenario(
        scenario(one_phase("- {when: {rps_above: 10, window: 2s}, fault: {error: {}}}"))
    )
    for _ in range(2):
        for _ in range(15):
            r.load.started()
            r.load.finished()
        r.clock.advance(1)
    assert r.rule_of() is not None  # 15 req/s over the last 2 s
    r.clock.advance(2)
    assert r.rule_of() is None  # the window has moved past the burst


def test_a_rule_whose_when_fails_lets_later_rules_decide() -> None:
    r = rig()
    r.engine.start_scenario(
        scenario(
            one_phase(
                """
- {name: peak, when: {inflight_above: 100}, fault: {error: {status: 503}}}
- {name: base, fault: {error: {status: 500}}}
"""
            )
        )
    )
    assert r.rule_of() == "base"


def pattern(rule: str, n: int = 10) -> list[bool]:
    r = rig()
    r.engine.start_scenario(scenario(one_phase(f"- {{{rule}, fault: {{error: {{}}}}}}")))
    return [r.engine.decide(View()) is not None for _ in range(n)]


def test_first_n_fail_then_pass() -> None:
    assert pattern("first: 3") == [True] * 3 + [False] * 7


def test_every_nth_fails() -> None:
    assert pattern("every: 3") == [False, False, True] * 3 + [False]


def test_after_n_passed_every_request_fails() -> None:
    assert pattern("after: 4") == [False] * 4 + [True] * 6


def test_count_patterns_count_only_matching_requests() -> None:
    r = rig()
    r.engine.start_scenario(
        scenario(one_phase("- {match: {path: /pay}, first: 2, fault: {error: {}}}"))
    )
    seen = [r.engine.decide(View(path=p)) is not None for p in ("/a", "/pay", "/b", "/pay", "/pay")]
    assert seen == [False, True, False, True, False]


def test_count_patterns_restart_when_the_phase_is_entered_again() -> None:
    r = rig()
    r.engine.start_scenario(
        scenario(
            """
            name: s
            repeat: 2
            phases:
              - name: broken
                duration: 10s
                rules: [{first: 1, fault: {error: {}}}]
              - name: ok
                duration: 10s
            """
        )
    )
    first_cycle = [r.engine.decide(View()) is not None for _ in range(2)]
    r.clock.advance(20)
    second_cycle = [r.engine.decide(View()) is not None for _ in range(2)]
    assert first_cycle == second_cycle == [True, False]


def test_weighted_outcomes_follow_their_weights() -> None:
    r = rig()
    r.engine.start_scenario(
        scenario(
            one_phase(
                """
- outcomes:
    - {weight: 60, fault: {error: {status: 500}}}
    - {weight: 30, fault: {error: {status: 503}}}
    - {weight: 10, fault: {error: {status: 504}}}
""",
                "seed: 11\n",
            )
        )
    )
    n = 10_000
    counts = Counter(statuses(r.engine.decide(View()))[0] for _ in range(n))
    assert abs(counts[500] / n - 0.6) < 0.03
    assert abs(counts[503] / n - 0.3) < 0.03
    assert abs(counts[504] / n - 0.1) < 0.02


def test_probability_is_rolled_once_per_request() -> None:
    r = rig()
    r.engine.start_scenario(scenario(one_phase("- {probability: 0.25, fault: {error: {}}}")))
    hits = sum(r.engine.decide(View()) is not None for _ in range(10_000))
    assert 2200 < hits < 2800


def seeded_decisions(seed: int, paths: list[str]) -> list[tuple[str, int, int | None]]:
    r = rig()
    r.engine.start_scenario(
        scenario(
            one_phase(
                """
- name: api
  match: {path: "/api/**"}
  probability: 0.5
  outcomes:
    - {weight: 1, fault: {error: {status: 500}}}
    - {weight: 1, fault: {error: {status: 503}}}
- {name: web, probability: 0.5, fault: {error: {status: 502}}}
"""
            )
        ),
        seed=seed,
    )
    out = []
    for p in paths:
        d = r.engine.decide(View(path=p))
        out.append((p, 0 if d is None else statuses(d)[0], None if d is None else d.seed))
    return out


def test_same_seed_same_decisions() -> None:
    paths = ["/api/a", "/web", "/api/b"] * 30
    assert seeded_decisions(42, paths) == seeded_decisions(42, paths)
    assert seeded_decisions(42, paths) != seeded_decisions(43, paths)


def test_traffic_on_one_route_does_not_shift_another_routes_dice() -> None:
    api_only = [d for d in seeded_decisions(7, ["/api/x"] * 40)]
    mixed = seeded_decisions(7, ["/api/x", "/web", "/web"] * 40)
    assert [d for d in mixed if d[0] == "/api/x"] == api_only


def test_a_seeded_decision_carries_a_seed_for_the_exchange_rng() -> None:
    decisions = [d for d in seeded_decisions(3, ["/web"] * 20) if d[1]]
    seeds = [s for *_, s in decisions]
    assert all(isinstance(s, int) for s in seeds) and len(set(seeds)) == len(seeds)


def test_unseeded_decisions_carry_no_seed() -> None:
    r = rig()
    r.engine.start_scenario(scenario(one_phase("- {fault: {error: {}}}")))
    d = r.engine.decide(View())
    assert d is not None and d.seed is None


def test_status_counts_matched_and_injected_per_rule() -> None:
    r = rig()
    r.engine.start_scenario(
        scenario(one_phase("- {name: half, match: {path: /a}, every: 2, fault: {error: {}}}"))
    )
    for p in ["/a", "/a", "/a", "/b"]:
        r.engine.decide(View(path=p))
    counts = r.engine.status()["scenario"]["rule_counts"]
    assert counts == [
        {"id": "half", "phase": "p", "faults": ["error"], "matched": 3, "injected": 1}
    ]


def test_adhoc_rules_win_over_the_scenario() -> None:
    r = rig()
    r.engine.start_scenario(scenario(one_phase("- {name: sc, fault: {error: {}}}")))
    rule = r.engine.add_rule([build("error", {"status": 418 + 81}, "fault")])
    assert r.rule_of() == rule.id
    r.engine.clear_rules()
    assert r.rule_of() == "sc"


def test_adhoc_rule_expires_after_its_ttl() -> None:
    r = rig()
    r.engine.add_rule([build("error", {}, "fault")], ttl=5)
    assert r.rule_of() is not None
    r.clock.advance(5)
    assert r.rule_of() is None
    r.engine.tick()
    assert r.engine.adhoc_rules() == [] and not r.engine.active


def test_nothing_active_means_no_decision() -> None:
    r = rig()
    assert not r.engine.active and r.rule_of() is None


def test_timeout_storm_preset_hangs_a_quarter_and_slows_half_the_rest() -> None:
    from collections import Counter

    r = rig(seed=11)
    r.engine.start_scenario(
        scenario(
            """
            name: storm
            phases:
              - name: p
                duration: 1h
                presets: [timeout-storm]
            """
        )
    )
    n = 8000
    seen: Counter[str] = Counter()
    for _ in range(n):
        d = r.engine.decide(View(path="/x"))
        seen[d.faults[0].name if d else "none"] += 1
    assert abs(seen["hang"] / n - 0.25) < 0.02
    assert abs(seen["latency"] / n - 0.375) < 0.02


def test_ad_hoc_rules_keep_their_order_through_the_path_index() -> None:
    """Ad-hoc rules are indexed by first path segment like a phase's: the first added that
    matches still decides, whether or not it names a route."""
    r = rig()
    error = build("error", {"status": 500}, "fault")
    e = r.engine
    first = e.add_rule([error], match=compile_match(MatchSpec(headers=(FieldCond("x-t", "a"),))))
    api = e.add_rule([error], match=compile_match(MatchSpec(path="/api/**")))
    tagged = View(path="/api/x", headers=CIMultiDict({"x-t": "a"}))
    assert r.rule_of(tagged) == first.id
    assert r.rule_of(View(path="/api/x")) == api.id
    assert r.rule_of(View(path="/other")) is None


def test_ad_hoc_rules_are_bounded() -> None:
    rules = AdhocRules(limit=2)
    rule = rule_from_faults([build("error", {"status": 500}, "fault")])
    rules.add(rule, None, None)
    rules.add(rule, None, None)
    with pytest.raises(TooManyRules, match="2 ad-hoc rules are active already"):
        rules.add(rule, None, None)
    assert rules.remove("r1") and len(rules.rules) == 1
    rules.add(rule, None, None)  # room again
