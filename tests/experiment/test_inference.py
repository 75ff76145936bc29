"""The statistics behind verdicts, on known values: Wilson bounds, sample sizes, order-statistic
ranks, the anytime-valid evidence and the change point of a recovery."""

from __future__ import annotations

import pytest

from chaosproxy.experiment import inference
from chaosproxy.experiment.inference import Bin


def test_wilson_bounds_match_the_published_formula() -> None:
    lo, hi = inference.wilson(10, 100, 0.975)  # z = 1.96
    assert lo == pytest.approx(0.0552, abs=1e-4) and hi == pytest.approx(0.1744, abs=1e-4)


def test_zero_events_bound_the_rate_by_about_three_over_n() -> None:
    lo, hi = inference.wilson(0, 300, 0.95)
    assert lo == 0.0 and 0.008 < hi < 0.01


def test_claiming_below_one_percent_on_zero_errors_needs_about_three_hundred_requests() -> None:
    need = inference.needed_for_proportion(0, 10, 0.01, 0.95)
    assert need is not None and 250 <= need <= 300
    assert inference.wilson(0, need, 0.95)[1] < 0.01 <= inference.wilson(0, need - 1, 0.95)[1]


def test_a_rate_on_the_bound_can_never_be_decided() -> None:
    assert inference.needed_for_proportion(5, 500, 0.01, 0.95) is None


def test_quantile_ranks_bracket_the_quantile_and_a_small_sample_has_no_upper_rank() -> None:
    lo, hi = inference.quantile_ranks(1000, 0.95, 0.95)
    assert lo is not None and hi is not None and lo < 950 < hi <= 1000
    assert inference.quantile_ranks(20, 0.99, 0.95)[1] is None


def test_evidence_grows_with_errors_above_the_bound_and_not_below_it() -> None:
    assert inference.breached_anytime(30, 100, 0.01, 0.01)
    assert not inference.breached_anytime(1, 100, 0.01, 0.01)
    assert inference.log_evidence(0, 10_000, 0.01) < 0


def test_spent_confidence_sums_to_alpha() -> None:
    total = sum(1 - inference.spent_confidence(0.01, k) for k in range(1, 100_000))
    assert total == pytest.approx(0.01, rel=1e-3)


def bins(*spans: tuple[float, int, float]) -> list[Bin]:
    """(seconds, requests per tenth, share failing) spans as tenth-of-a-second bins."""
    out: list[Bin] = []
    t = 0.0
    for seconds, n, share in spans:
        for _ in range(round(seconds * 10)):
            out.append(Bin(t, n, round(n * share)))
            t = round(t + 0.1, 1)
    return out


def test_recovery_is_where_the_failing_stretch_ends() -> None:
    r = inference.recovery_point(bins((2.3, 5, 1.0), (10, 5, 0.0)), 0.0, 0.01, 0.95)
    assert r is not None and r.changed and r.seconds == pytest.approx(2.3)
    assert r.lo <= 2.3 <= r.hi


def test_healthy_from_the_start_is_zero_with_zero_in_the_interval() -> None:
    r = inference.recovery_point(bins((10, 5, 0.0)), 0.0, 0.01, 0.95)
    assert r is not None and not r.changed and r.seconds == 0.0 and r.lo == 0.0


def test_never_recovering_leaves_what_follows_out_of_bound() -> None:
    r = inference.recovery_point(bins((10, 5, 1.0)), 0.0, 0.01, 0.95)
    assert r is not None and not r.changed
    assert inference.wilson(r.after_events, r.after_n, 0.95)[0] > 0.01


def test_a_relapse_moves_recovery_past_it() -> None:
    r = inference.recovery_point(
        bins((1, 5, 1.0), (1, 5, 0.0), (1, 5, 1.0), (8, 5, 0.0)), 0.0, 0.01, 0.95
    )
    assert r is not None and r.seconds == pytest.approx(3.0)
