"""The control group: `compare_to: control` (fault cohort against control cohort in the same
seconds) and `metric: blast_radius`, on seeded synthetic runs and known statistics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chaosproxy.common.cohort import CONTROL, FAULT
from chaosproxy.experiment import control
from chaosproxy.experiment.control import ClientRecord, mann_whitney, newcombe
from chaosproxy.experiment.halts import live_breach
from chaosproxy.experiment.model import CheckSpec
from chaosproxy.experiment.outcome import FAIL, INCONCLUSIVE, PASS
from chaosproxy.experiment.rejudge import read_series, write_series
from chaosproxy.experiment.results import write_timeseries
from chaosproxy.experiment.series import Second, View
from chaosproxy.experiment.verdict import judge
from tests.experiment.cohort_sim import T0, Span, cohort_run, confounded


def check(**kw: object) -> CheckSpec:
    base: dict[str, object] = {
        "name": "c",
        "metric": "error_rate",
        "bound": 0.01,
        "during_phase": "outage",
        "compare_to": "control",
    }
    base.update(kw)
    return CheckSpec(**base)  # type: ignore[arg-type]


# ---------------------------------------------------------------- the statistics


def test_newcombe_matches_his_worked_example() -> None:
    # Newcombe (1998), method 10, example (a): 56/70 - 48/80, 95 % two-sided: 0.0524 .. 0.3339
    d, lo, hi = newcombe(56, 70, 48, 80, confidence=0.975)
    assert d == pytest.approx(0.2)
    assert lo == pytest.approx(0.0524, abs=5e-4)
    assert hi == pytest.approx(0.3339, abs=5e-4)


def test_newcombe_keeps_a_width_at_zero_events() -> None:
    d, lo, hi = newcombe(0, 100, 0, 100, confidence=0.95)
    assert d == 0 and lo < 0 < hi  # never the collapsed [0, 0] of a Wald interval


def test_mann_whitney_sees_a_shift_and_not_noise() -> None:
    same = mann_whitney({10: 50, 11: 50}, {10: 50, 11: 50})
    assert same is not None and same.superiority == pytest.approx(0.5)
    assert same.p_slower > 0.4
    slower = mann_whitney({11: 60, 12: 40}, {10: 50, 11: 50})
    assert slower is not None and slower.superiority > 0.7 and slower.p_slower < 0.001
    assert slower.p_faster > 0.99


def test_mann_whitney_all_ties_is_no_evidence() -> None:
    r = mann_whitney({5: 30}, {5: 70})
    assert r is not None and r.p_slower == 1.0 and r.superiority == pytest.approx(0.5)


# ---------------------------------------------------------------- time confounding (the point)


def _confounded(seed: int = 7) -> list[Second]:
    return confounded(seed).rows


def test_time_confounding_is_blamed_on_the_fault_by_the_phase_comparison_only() -> None:
    run = confounded()
    rows, phases = run.rows, run.phases
    checks = [
        check(name="errors vs steady", compare_to="steady", bound=2.0),
        check(name="p95 vs steady", metric="latency_p95", compare_to="steady", bound=1.5),
        check(name="errors vs control", bound=0.05),
        check(name="p95 vs control", metric="latency_p95", bound=1.5),
    ]
    v = judge(checks, rows, phases)
    by = {r.spec.name: r for r in v.checks}
    assert by["errors vs steady"].status == FAIL  # blames the fault for the deploy
    assert by["p95 vs steady"].status == FAIL
    assert by["errors vs control"].status == PASS, by["errors vs control"].message
    assert by["p95 vs control"].status == PASS, by["p95 vs control"].message
    r = by["errors vs control"]
    assert r.lo is not None and r.hi is not None and r.lo < 0 < r.hi  # no fault-caused difference
    assert "fault cohort" in r.message and "control" in r.message and " pp" in r.message


def test_a_real_difference_fails_against_control() -> None:
    run = cohort_run(
        3,
        [Span("steady", 10), Span("outage", 20, rules=True, injected=1.0, fault_err=0.2)],
        rate=100,
    )
    v = judge([check(bound=0.01)], run.rows, run.phases)
    r = v.checks[0]
    assert r.status == FAIL and r.lo is not None and r.lo > 0.1
    assert r.value == pytest.approx(0.2, abs=0.05)


def test_served_against_control_is_the_same_difference_turned_over() -> None:
    run = cohort_run(
        3,
        [Span("steady", 10), Span("outage", 20, rules=True, injected=1.0, fault_err=0.2)],
        rate=100,
    )
    err = judge([check(bound=0.01)], run.rows, run.phases).checks[0]
    srv = judge(
        [check(metric="served", comparison="above", bound=-0.01)], run.rows, run.phases
    ).checks[0]
    assert srv.status == FAIL
    assert srv.value == pytest.approx(-(err.value or 0))
    assert srv.hi == pytest.approx(-(err.lo or 0)) and srv.lo == pytest.approx(-(err.hi or 0))


def test_a_slower_fault_cohort_fails_the_latency_comparison() -> None:
    run = cohort_run(
        5, [Span("steady", 10), Span("outage", 20, rules=True, injected=1.0, fault_slow=3.0)]
    )
    r = judge([check(metric="latency_p95", bound=1.5)], run.rows, run.phases).checks[0]
    assert r.status == FAIL, r.message
    assert r.value == pytest.approx(3.0, rel=0.3)
    assert "rank test" in r.message


def test_a_straddling_difference_says_how_many_more_requests_would_decide() -> None:
    run = cohort_run(
        11,
        [Span("steady", 5), Span("outage", 5, rules=True, injected=1.0, fault_err=0.02)],
        rate=40,
    )
    r = judge([check(bound=0.02)], run.rows, run.phases).checks[0]
    assert r.status == INCONCLUSIVE
    assert r.needs is not None and r.needs > 0
    assert f"needs about {r.needs:,} more requests" in r.message


def test_too_few_requests_in_a_cohort_is_inconclusive() -> None:
    run = cohort_run(1, [Span("steady", 3), Span("outage", 2, rules=True, injected=1.0)], rate=8)
    r = judge([check()], run.rows, run.phases).checks[0]
    assert r.status == INCONCLUSIVE and "too few requests" in r.message


def test_no_cohort_split_is_inconclusive_and_says_why() -> None:
    run = cohort_run(1, [Span("steady", 5), Span("outage", 20, rules=True, injected=1.0)], rate=100)
    for s in run.rows:
        s.client_cohorts = {}
    r = judge([check()], run.rows, run.phases).checks[0]
    assert r.status == INCONCLUSIVE and "no control group in the client view" in r.message
    proxy = judge([check(source="proxy")], run.rows, run.phases).checks[0]
    assert proxy.status == PASS  # the proxy view still has the split


def test_halt_against_control_spends_alpha_and_waits_ten_seconds() -> None:
    run = cohort_run(
        2,
        [Span("steady", 10), Span("outage", 30, rules=True, injected=1.0, fault_err=0.5)],
        rate=100,
    )
    spec = check(halt=True)
    nine = [s for s in run.rows if s.phase == "steady" or s.t < T0 + 10 + 9]
    assert live_breach(spec, nine, look=9) is None  # too few seconds to halt on
    r = live_breach(spec, run.rows, look=30)
    assert r is not None and r.status == FAIL and "alpha spent" in r.message
    healthy = cohort_run(2, [Span("steady", 10), Span("outage", 30, rules=True, injected=1.0)])
    assert live_breach(spec, healthy.rows, look=30) is None


# ---------------------------------------------------------------- blast radius


def _clients(active: int, hurt: int, start: int = T0 + 10) -> list[ClientRecord]:
    return [
        ClientRecord(
            FAULT if i < hurt else CONTROL, start, start + 9, (start + 3,) if i < hurt else ()
        )
        for i in range(active)
    ]


def test_blast_radius_is_the_share_of_active_clients_hurt_with_a_wilson_interval() -> None:
    run = cohort_run(1, [Span("steady", 10), Span("outage", 10, rules=True, injected=1.0)])
    spec = CheckSpec("radius", "blast_radius", "proxy", during_phase="outage", bound=0.3)
    few = judge([spec], run.rows, run.phases, clients=_clients(200, 20)).checks[0]
    assert few.status == PASS and few.value == pytest.approx(0.1)
    assert "20 of 200 active clients hurt (fault 20/20, control 0/180)" in few.message
    many = judge([spec], run.rows, run.phases, clients=_clients(200, 120)).checks[0]
    assert many.status == FAIL
    edge = judge([spec], run.rows, run.phases, clients=_clients(20, 6)).checks[0]
    assert edge.status == INCONCLUSIVE and edge.needs is None  # 0.3 is the bound itself
    # clients that left before the phase, or were hurt only outside it, do not count
    before = _clients(50, 50, start=T0 - 100)
    r = judge([spec], run.rows, run.phases, clients=before + _clients(100, 10)).checks[0]
    assert r.value == pytest.approx(0.1) and r.samples == 100


def test_blast_radius_without_a_client_record_is_inconclusive() -> None:
    run = cohort_run(1, [Span("steady", 10), Span("outage", 10, rules=True, injected=1.0)])
    spec = CheckSpec("radius", "blast_radius", "proxy", during_phase="outage", bound=0.3)
    r = judge([spec], run.rows, run.phases).checks[0]
    assert r.status == INCONCLUSIVE and "/stats/clients" in r.message


# ---------------------------------------------------------------- kept for `judge` and charts


def test_cohort_views_survive_series_jsonl_and_reach_timeseries_csv(tmp_path: Path) -> None:
    run = cohort_run(4, [Span("steady", 3), Span("outage", 3, rules=True, injected=1.0)])
    write_series(tmp_path / "series.jsonl", run.rows)
    back = read_series(tmp_path / "series.jsonl")
    assert [s.client_cohorts for s in back] == [s.client_cohorts for s in run.rows]
    assert [s.proxy_cohorts for s in back] == [s.proxy_cohorts for s in run.rows]
    write_timeseries(tmp_path / "timeseries.csv", run.rows, float(T0), [])
    header, first, *_ = (tmp_path / "timeseries.csv").read_text().splitlines()
    cols = header.split(",")
    for name in ("client_error_rate_fault", "client_p95_control", "proxy_injected_fault"):
        assert name in cols
    cells = dict(zip(cols, first.split(","), strict=True))
    assert int(cells["client_requests_fault"]) == run.rows[0].client_cohorts[FAULT].requests
    assert float(cells["client_p95_control"]) > 0


def test_a_run_without_cohorts_keeps_its_files_as_before(tmp_path: Path) -> None:
    rows = [Second(T0, "steady", View(10, 1))]
    write_series(tmp_path / "s.jsonl", rows)
    assert "cohorts" not in (tmp_path / "s.jsonl").read_text()
    write_timeseries(tmp_path / "t.csv", rows, float(T0), [])
    assert "_fault" not in (tmp_path / "t.csv").read_text()


def test_client_records_read_the_proxy_answer_and_skip_bad_entries() -> None:
    from chaosproxy.experiment.align import client_records, clients_to_json

    body = {
        "clients": [
            {"cohort": "fault", "first": 5, "last": 9, "hurt": [6, 7]},
            {"cohort": "control", "first": 5, "last": 6},
            {"cohort": "fault", "first": -1, "last": 2},
            "junk",
        ],
        "truncated": False,
    }
    got = client_records(body)
    assert got == [ClientRecord("fault", 5, 9, (6, 7)), ClientRecord("control", 5, 6, ())]
    assert client_records(json.loads(json.dumps(clients_to_json(got)))) == got
    assert control.blast_radius  # the judgement reads these records
