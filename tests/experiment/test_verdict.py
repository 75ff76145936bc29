"""Verdict arithmetic on synthetic per-second series: windows, time to recover, `for`,
compare_to, INCONCLUSIVE cases, the baseline gate, halts and client behaviour."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import pytest

from chaosproxy.experiment.false_alarm import add_false_alarms
from chaosproxy.experiment.halts import live_breach
from chaosproxy.experiment.model import BaselineSpec, CheckSpec
from chaosproxy.experiment.outcome import FAIL, INCONCLUSIVE, PASS
from chaosproxy.experiment.recovery import recovery
from chaosproxy.experiment.series import PhaseWindow, Second, View
from chaosproxy.experiment.verdict import judge
from chaosproxy.observe.stats import BOUNDS

T0 = 1_800_000_000


def bucket(latency: float) -> int:
    return bisect.bisect_left(BOUNDS, latency)


def view(requests: int, failures: int = 0, latency: float = 0.01, injected: int = 0) -> View:
    return View(requests, failures, injected, {bucket(latency): requests} if requests else {})


def run(*spans: tuple[str, int, dict[str, float]]) -> tuple[list[Second], list[PhaseWindow]]:
    """Spans of (phase, seconds, per-second numbers): rps, err (client failures per second),
    inj (injected per second), lat, prps (proxy requests per second, default rps)."""
    rows: list[Second] = []
    phases: list[PhaseWindow] = []
    t = T0
    for name, seconds, k in spans:
        rps = int(k.get("rps", 50))
        err = int(k.get("err", 0))
        inj = int(k.get("inj", 0))
        lat = k.get("lat", 0.01)
        prps = int(k.get("prps", rps))
        for _ in range(seconds):
            rows.append(
                Second(
                    t,
                    name,
                    client=view(rps, err, lat),
                    proxy=view(prps, min(inj, prps), lat, injected=inj),
                )
            )
            t += 1
        phases.append(PhaseWindow(name, t - seconds, t, bool(k.get("rules", inj > 0))))
    return rows, phases


def check(**kw: object) -> CheckSpec:
    base: dict[str, object] = {"name": "c", "metric": "error_rate", "bound": 0.01}
    base.update(kw)
    return CheckSpec(**base)  # type: ignore[arg-type]


def errors_per_second(rows: Sequence[Second]) -> list[int]:
    return [s.client.failures for s in rows]


# ---------------------------------------------------------------- during a phase


def test_during_phase_judges_the_metric_over_that_window_only() -> None:
    rows, phases = run(("steady", 5, {}), ("broken", 5, {"err": 1, "inj": 50}))
    v = judge([check(during_phase="broken", bound=0.05)], rows, phases)
    r = v.checks[0]
    assert r.status == PASS and r.value == pytest.approx(0.02) and r.samples == 250
    assert r.margin == pytest.approx(0.03)


def test_a_breached_bound_fails_with_a_negative_margin() -> None:
    rows, phases = run(("steady", 5, {}), ("broken", 5, {"err": 25, "inj": 50}))
    r = judge([check(during_phase="broken", bound=0.02)], rows, phases).checks[0]
    assert r.status == FAIL and r.value == pytest.approx(0.5) and r.margin == pytest.approx(-0.48)


def test_above_bounds_served_share() -> None:
    rows, phases = run(("steady", 5, {}), ("broken", 5, {"err": 5, "inj": 50}))
    r = judge(
        [check(during_phase="broken", metric="served", comparison="above", bound=0.95)],
        rows,
        phases,
    ).checks[0]
    assert r.status == FAIL and r.value == pytest.approx(0.9)


def test_latency_percentiles_come_from_the_merged_histogram() -> None:
    rows, phases = run(("steady", 5, {}), ("slow", 5, {"lat": 0.4, "inj": 50}))
    r = judge([check(during_phase="slow", metric="latency_p95", bound=0.25)], rows, phases).checks[
        0
    ]
    assert r.status == FAIL and 0.4 <= (r.value or 0) < 0.4 * 1.26


def test_throughput_is_requests_per_second_of_the_window() -> None:
    rows, phases = run(("steady", 4, {"rps": 30}), ("peak", 4, {"rps": 90, "inj": 1}))
    r = judge(
        [check(during_phase="peak", metric="throughput", comparison="above", bound=50)],
        rows,
        phases,
    ).checks[0]
    assert r.status == PASS and r.value == pytest.approx(90)


def test_compare_to_judges_the_ratio_against_another_phase() -> None:
    rows, phases = run(("steady", 5, {"lat": 0.1}), ("broken", 5, {"lat": 0.2, "inj": 50}))
    spec = check(during_phase="broken", metric="latency_p95", compare_to="steady", bound=1.5)
    r = judge([spec], rows, phases).checks[0]
    assert r.status == FAIL and r.value == pytest.approx(2.0, rel=0.3)
    spec = check(during_phase="broken", metric="latency_p95", compare_to="steady", bound=2.5)
    assert judge([spec], rows, phases).checks[0].status == PASS


def test_too_few_samples_is_inconclusive_not_pass() -> None:
    rows, phases = run(("steady", 5, {}), ("broken", 2, {"rps": 5, "inj": 5}))
    r = judge([check(during_phase="broken", bound=0.5)], rows, phases).checks[0]
    assert r.status == INCONCLUSIVE and "10 < 20" in r.message


def test_min_samples_is_per_check() -> None:
    rows, phases = run(("steady", 5, {}), ("broken", 2, {"rps": 5, "inj": 5}))
    r = judge([check(during_phase="broken", bound=0.5, min_samples=5)], rows, phases).checks[0]
    assert r.status == PASS


# ---------------------------------------------------------------- time to recover


def recovering(tail: list[int], rps: int = 50) -> tuple[list[Second], list[PhaseWindow]]:
    """steady 5 s, broken 5 s (all errors), then `tail` = client failures per second."""
    rows, phases = run(("steady", 5, {}), ("broken", 5, {"err": rps, "inj": rps}))
    t = rows[-1].t + 1
    for i, err in enumerate(tail):
        rows.append(Second(t + i, "rollback", client=view(rps, err), proxy=view(rps, err)))
    phases.append(PhaseWindow("rollback", t, t + len(tail), False))
    return rows, phases


def test_time_to_recover_is_the_start_of_the_first_run_of_for_seconds_in_bound() -> None:
    rows, phases = recovering([50, 30, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0])
    spec = check(after_phase="broken", within=30.0, for_=3.0)
    r = recovery(spec, rows, phases[1])
    # second 2 starts a run of 2 only (10 errors in second 4); the run of 3 starts at 5
    assert r.status == PASS and r.recovered_after_s == 5.0 and r.value == 0.0


def test_a_blip_back_into_errors_moves_recovery_past_it_whatever_for_says() -> None:
    """Time to recover is the last moment the error process was out of bound; `for` is how
    long it must then hold, not a run-length that reads noise as relapse."""
    rows, phases = recovering([50, 0, 50, 0, 0, 0, 0, 0])
    r1 = recovery(check(after_phase="broken", within=30.0, for_=1.0), rows, phases[1])
    r3 = recovery(check(after_phase="broken", within=30.0, for_=3.0), rows, phases[1])
    assert r1.recovered_after_s == 3.0 and r3.recovered_after_s == 3.0


def test_recovering_later_than_within_fails_and_says_when() -> None:
    rows, phases = recovering([50] * 8 + [0] * 5)
    r = recovery(check(after_phase="broken", within=5.0, for_=3.0), rows, phases[1])
    assert r.status == FAIL and r.recovered_after_s == 8.0 and "only 8 s [8 s, 9 s]" in r.message


def test_never_recovering_fails_when_the_data_covers_the_deadline() -> None:
    rows, phases = recovering([50] * 12)
    r = recovery(check(after_phase="broken", within=5.0, for_=3.0), rows, phases[1])
    assert r.status == FAIL and r.recovered_after_s is None and "never recovered" in r.message


def test_a_run_that_ends_before_the_deadline_is_inconclusive() -> None:
    rows, phases = recovering([50, 50, 50])
    r = recovery(check(after_phase="broken", within=30.0, for_=3.0), rows, phases[1])
    assert r.status == INCONCLUSIVE and "too soon" in r.message


def test_seconds_without_traffic_are_not_recovery() -> None:
    rows, phases = recovering([50, 0, 0, 0, 0, 0, 0])
    for s in rows[11:14]:
        s.client = View()  # the clients sent nothing for three seconds
    r = recovery(check(after_phase="broken", within=30.0, for_=3.0), rows, phases[1])
    assert r.recovered_after_s == 4.0


def test_immediate_recovery_is_zero_seconds() -> None:
    rows, phases = recovering([0] * 6)
    r = recovery(check(after_phase="broken", within=1.0, for_=3.0), rows, phases[1])
    assert r.status == PASS and r.recovered_after_s == 0.0


def test_recovery_of_latency_against_a_duration_bound() -> None:
    rows, phases = run(
        ("steady", 3, {}), ("slow", 3, {"lat": 2.0, "inj": 50}), ("after", 12, {"lat": 0.05})
    )
    r = recovery(
        check(after_phase="slow", metric="latency_p99", bound=0.1, within=2.0), rows, phases[1]
    )
    assert r.status == PASS and r.recovered_after_s == 0.0


# ---------------------------------------------------------------- the run


def test_all_checks_pass_is_a_pass() -> None:
    rows, phases = recovering([0] * 8)
    v = judge([check(after_phase="broken", within=5.0)], rows, phases)
    assert v.status == PASS and v.reasons == [] and v.baseline == "steady"


def test_a_phase_whose_rules_never_fired_makes_the_run_inconclusive() -> None:
    rows, phases = run(("steady", 5, {}), ("broken", 5, {"rules": True}), ("after", 5, {}))
    v = judge([check(during_phase="broken", bound=0.5)], rows, phases)
    assert v.status == INCONCLUSIVE
    assert "broken has rules but the scenario injected nothing" in v.reasons[0]
    assert v.checks[0].status == INCONCLUSIVE


def test_faults_on_tcp_connections_count_as_acting_without_any_proxy_request() -> None:
    """A cache cut: the phase's faults are on a TCP proxy, the HTTP listener saw nothing."""
    rows, phases = run(
        ("steady", 5, {"prps": 0}), ("broken", 5, {"prps": 0, "rules": True}), ("after", 5, {})
    )
    for s in rows:
        if s.phase == "broken":
            s.proxy.tcp_faults = 3
    v = judge([check(during_phase="broken", bound=0.5)], rows, phases)
    assert v.status == PASS and v.reasons == []
    broken = next(p for p in v.phases if p["name"] == "broken")
    assert broken["resilience"]["tcp_faults"] == 15 and broken["proxy"]["tcp_faults"] == 15


def test_no_traffic_at_the_proxy_is_inconclusive_and_says_so() -> None:
    rows, phases = run(("steady", 5, {"prps": 0}), ("broken", 5, {"prps": 0, "rules": True}))
    v = judge([check(during_phase="broken", bound=0.5)], rows, phases)
    assert v.status == INCONCLUSIVE and "no traffic reached the proxy during broken" in v.reasons


def test_baseline_gate_an_unhealthy_steady_phase_does_not_blame_the_fault() -> None:
    rows, phases = run(("steady", 5, {"err": 10}), ("broken", 5, {"err": 50, "inj": 50}))
    v = judge([check(during_phase="broken", bound=0.02)], rows, phases)
    assert v.checks[0].status == FAIL  # the check itself is still reported as measured
    assert v.status == INCONCLUSIVE and "baseline phase steady" in v.reasons[0]


def test_baseline_gate_threshold_is_configurable() -> None:
    rows, phases = run(("steady", 5, {"err": 10}), ("broken", 5, {"err": 0, "inj": 50}))
    spec = check(during_phase="broken", bound=0.02)
    assert judge([spec], rows, phases, BaselineSpec(error_rate_above=0.5)).status == PASS


def test_baseline_gate_trips_on_a_check_that_names_the_baseline() -> None:
    rows, phases = run(("steady", 5, {"lat": 0.5}), ("broken", 5, {"inj": 50}))
    spec = check(during_phase="steady", metric="latency_p95", bound=0.2)
    v = judge([spec], rows, phases)
    assert v.status == INCONCLUSIVE and "already breaks 'c'" in v.reasons[0]


def test_halted_check_fails_the_run_and_is_marked() -> None:
    rows, phases = run(("steady", 5, {}), ("broken", 2, {"err": 50, "inj": 50}))
    phases.append(PhaseWindow("rollback", phases[-1].end, phases[-1].end + 5, True))
    specs = [check(during_phase="broken", bound=0.02, halt=True, name="served")]
    v = judge(specs, rows, phases, halted="served")
    assert v.status == FAIL and v.checks[0].halted and v.reasons[0].startswith("halted")


def test_interrupted_without_failures_is_inconclusive() -> None:
    rows, phases = recovering([0] * 8)
    v = judge([check(after_phase="broken", within=5.0)], rows, phases, interrupted=True)
    assert v.status == INCONCLUSIVE and v.reasons[0].startswith("interrupted")


def test_live_breach_needs_enough_samples() -> None:
    rows, _ = run(("steady", 5, {}), ("broken", 1, {"rps": 10, "err": 10, "inj": 10}))
    spec = check(during_phase="broken", bound=0.02, halt=True)
    assert live_breach(spec, rows) is None
    rows, _ = run(("steady", 5, {}), ("broken", 1, {"rps": 30, "err": 30, "inj": 30}))
    breach = live_breach(spec, rows)
    assert breach is not None and breach.value == 1.0


def test_a_noisy_healthy_phase_straddling_the_bound_is_inconclusive_and_says_how_many_more() -> (
    None
):
    rows, phases = run(("steady", 5, {}), ("broken", 10, {"rps": 20, "inj": 1}))
    for s in rows[5::4]:
        s.client.failures = 1  # 0.5 %... of 200 requests: 1/80 per 4 s ≈ 1.25 %
    r = judge([check(during_phase="broken", bound=0.02)], rows, phases).checks[0]
    assert r.status == INCONCLUSIVE and r.lo is not None and r.hi is not None
    assert r.lo < 0.02 < r.hi and r.needs is not None and r.needs > 0
    assert f"needs about {r.needs} more requests" in r.message


def test_a_pass_needs_the_whole_interval_inside_the_bound() -> None:
    rows, phases = run(("steady", 5, {}), ("broken", 10, {"rps": 50, "inj": 1}))
    r = judge([check(during_phase="broken", bound=0.01)], rows, phases).checks[0]
    assert r.status == PASS and r.value == 0.0 and r.hi is not None and r.hi < 0.01


def test_a_client_fail_is_not_downgraded_when_the_proxy_saw_no_traffic() -> None:
    """The system stopped calling the broken dependency: that is why clients failed."""
    rows, phases = run(
        ("steady", 5, {}),
        ("broken", 5, {"prps": 0, "rules": True, "err": 50}),
        ("after", 12, {"prps": 0, "err": 50}),
    )
    spec = check(after_phase="broken", within=5.0, for_=2.0)
    v = judge([spec], rows, phases)
    assert v.checks[0].status == FAIL and v.status == FAIL
    assert any("no traffic reached the proxy" in r for r in v.reasons)


def test_a_pass_in_an_idle_phase_still_proves_nothing() -> None:
    rows, phases = run(("steady", 5, {}), ("broken", 5, {"prps": 0, "rules": True}))
    r = judge([check(during_phase="broken", bound=0.5)], rows, phases).checks[0]
    assert r.status == INCONCLUSIVE


def test_a_halted_check_is_judged_up_to_the_halt() -> None:
    """The second after the halt (injection stopped) does not dilute what was measured."""
    rows, phases = run(("steady", 5, {}), ("broken", 2, {"err": 50, "inj": 50}))
    rows[-1].client.failures = 0  # the second after the halt: healthy again
    spec = check(during_phase="broken", bound=0.02, halt=True, name="served")
    v = judge([spec], rows, phases, halted="served", halted_at=float(rows[-1].t) + 0.3)
    assert v.checks[0].value == 1.0 and v.checks[0].samples == 50


def test_problems_make_the_run_inconclusive_whatever_the_checks_say() -> None:
    rows, phases = recovering([0] * 8)
    v = judge([check(after_phase="broken", within=5.0)], rows, phases, problems=["Locust exited"])
    assert v.checks[0].status == PASS and v.status == INCONCLUSIVE
    assert v.reasons[0] == "the run did not go as planned: Locust exited"


def test_live_halts_look_every_second_without_crying_wolf_on_a_share_at_the_bound() -> None:
    """Thirty looks at a phase whose errors sit exactly on the bound: no halt."""
    rows, _ = run(("steady", 5, {}), ("broken", 30, {"rps": 100, "err": 2, "inj": 1}))
    spec = check(during_phase="broken", bound=0.02, halt=True)
    looks = [live_breach(spec, rows[: 5 + k], look=k) for k in range(1, 31)]
    assert looks == [None] * 30


def test_false_alarm_estimate_comes_from_the_baseline_alone() -> None:
    rows, phases = run(("steady", 20, {}), ("broken", 10, {"err": 50, "inj": 50}))
    spec = check(during_phase="broken", bound=0.02)
    v = add_false_alarms(judge([spec], rows, phases), [spec], rows, phases)
    assert v.false_alarm is not None and v.false_alarm["rate"] == 0.0
    assert v.false_alarm["baseline"] == "steady" and v.checks[0].false_alarm == {
        "rate": 0.0,
        "rounds": 200,
    }


def test_a_fault_in_the_next_phase_is_not_blamed_on_the_one_being_recovered_from() -> None:
    rows, phases = run(
        ("steady", 5, {}),
        ("p", 5, {"err": 25, "inj": 25}),
        ("calm", 3, {}),
        ("r", 10, {"err": 25, "inj": 25}),
    )
    r = judge([check(after_phase="p", within=10.0, for_=3.0)], rows, phases).checks[0]
    assert r.status == INCONCLUSIVE and r.recovered_after_s == 0.0, r.message


def test_the_phase_right_after_is_read_even_when_it_fades_errors_out_by_rules() -> None:
    """A rollback phase with rules of its own (errors fading) is what recovery is about."""
    rows, phases = run(
        ("steady", 5, {}), ("broken", 5, {"err": 50, "inj": 50}), ("rollback", 12, {"inj": 1})
    )
    r = judge([check(after_phase="broken", within=5.0, for_=2.0)], rows, phases).checks[0]
    assert r.status == PASS and r.recovered_after_s == 0.0, r.message


def test_a_ratio_to_a_phase_with_no_errors_bounds_nothing() -> None:
    rows, phases = run(("steady", 5, {}), ("broken", 5, {"err": 1, "inj": 50}))
    spec = check(during_phase="broken", compare_to="steady", bound=3.0)
    r = judge([spec], rows, phases).checks[0]
    assert r.status == INCONCLUSIVE and "a ratio to nothing" in r.message


def test_a_spent_alpha_halt_needs_ten_seconds_of_evidence() -> None:
    """Retry amplification over the bound for two seconds is no reason to halt yet."""
    rows, _ = run(("steady", 5, {"rps": 40}), ("broken", 2, {"rps": 40, "prps": 100, "inj": 1}))
    spec = check(
        during_phase="broken", metric="retry_amplification", source="proxy", bound=2.0, halt=True
    )
    assert live_breach(spec, rows, reference=1.0, look=2) is None
    rows, _ = run(("steady", 5, {"rps": 40}), ("broken", 12, {"rps": 40, "prps": 100, "inj": 1}))
    breach = live_breach(spec, rows, reference=1.0, look=12)
    assert breach is not None and breach.value == pytest.approx(2.5)


def test_a_halt_on_a_bound_near_one_never_crashes() -> None:
    rows, _ = run(("steady", 5, {}), ("broken", 3, {"err": 50, "inj": 50}))
    spec = check(during_phase="broken", metric="served", comparison="above", bound=0.0005)
    assert live_breach(spec, rows) is None


# ---------------------------------------------------------------- evidence


def test_resilience_evidence_counts_what_failover_absorbed() -> None:
    rows, phases = run(("steady", 5, {}), ("broken", 5, {"err": 5, "inj": 40}))
    broken = judge([check(during_phase="broken", bound=0.5)], rows, phases).phases[1]
    assert broken["resilience"] == {
        "injected": 200,
        "client_failures": 25,
        "absorbed": 175,
        "absorbed_share": 0.875,
    }


def test_retry_amplification_is_proxy_requests_per_client_request_against_baseline() -> None:
    rows, phases = run(
        ("steady", 5, {"rps": 40}), ("broken", 5, {"rps": 40, "prps": 100, "inj": 60})
    )
    v = judge([check(during_phase="broken", bound=0.5)], rows, phases)
    assert v.phases[1]["client_behaviour"]["retry_amplification"] == pytest.approx(2.5)
    spec = check(during_phase="broken", metric="retry_amplification", source="proxy", bound=2.0)
    r = judge([spec], rows, phases).checks[0]
    assert r.status == FAIL and r.value == pytest.approx(2.5)


def test_early_retry_share_comes_from_the_proxys_retry_after_memory() -> None:
    rows, phases = run(("steady", 5, {}), ("limited", 5, {"inj": 10}))
    for s in rows[5:]:
        s.proxy.retry_after, s.proxy.retried_early, s.proxy.retried_waited = 10, 6, 2
    spec = check(
        during_phase="limited", metric="early_retry_share", source="proxy", bound=0.5, min_samples=1
    )
    r = judge([spec], rows, phases).checks[0]
    assert r.status == FAIL and r.value == pytest.approx(0.75)
    assert judge([spec], rows, phases).phases[1]["client_behaviour"]["early_retry_share"] == 0.75


def test_prometheus_values_are_averaged_over_the_window() -> None:
    rows, phases = run(("steady", 5, {}), ("broken", 4, {"inj": 50}))
    for s, value in zip(rows[5:], [0.0, 0.1, 0.3, None], strict=True):
        if value is not None:
            s.prom["c"] = value
    spec = check(during_phase="broken", source="prometheus", bound=0.5, min_samples=3)
    r = judge([spec], rows, phases).checks[0]
    assert r.status == PASS and r.value == pytest.approx(0.1333, rel=1e-3) and r.samples == 3
    assert r.lo is not None and r.hi is not None and r.lo < r.value < r.hi < 0.5


def test_prometheus_checks_need_five_points_by_default() -> None:
    """Two stale points once PASSed a check while the service answered 100 % 5xx."""
    rows, phases = run(("steady", 5, {}), ("broken", 8, {"inj": 50}))
    for s in rows[5:7]:
        s.prom["c"] = 0.0
    spec = check(during_phase="broken", source="prometheus", bound=0.5)
    r = judge([spec], rows, phases).checks[0]
    assert r.status == INCONCLUSIVE and "too few data points" in r.message and "2 < 5" in r.message


def test_prometheus_without_data_is_inconclusive() -> None:
    rows, phases = run(("steady", 5, {}), ("broken", 4, {"inj": 50}))
    spec = check(during_phase="broken", source="prometheus", bound=0.2)
    assert judge([spec], rows, phases).checks[0].status == INCONCLUSIVE


def test_a_recovery_check_after_a_phase_that_never_ran_is_inconclusive() -> None:
    """Interrupted before the outage: no time to recover is invented for it."""
    rows, phases = run(("steady", 5, {}))
    phases.append(PhaseWindow("broken", 0.0, 0.0, True))
    r = judge([check(after_phase="broken", within=5.0)], rows, phases, interrupted=True)
    assert r.checks[0].status == INCONCLUSIVE and r.checks[0].recovered_after_s is None
    assert "never ran" in r.checks[0].message
