"""The claims of docs/experiments.md ("How sure is a verdict"), shown by seeded simulation over
1,000 synthetic runs per rate: the project's own verdict code judges healthy systems at half
the bound, a rate on the bound, and real degradations."""

from __future__ import annotations

import pytest

from tests.experiment.simulate import breaker_recovers_at, simulate

pytestmark = pytest.mark.slow

RUNS = 1000


@pytest.mark.parametrize("rate", [20, 50, 200])
def test_a_healthy_system_rarely_fails_halts_or_reads_as_slow_to_recover(rate: int) -> None:
    r = simulate(rate, RUNS, seed=1)
    assert r.false_fail <= 0.05
    assert r.false_halt <= 0.01
    assert r.ttr_median <= 0.5
    assert r.ttr_covers_zero >= 0.95
    assert r.at_bound_halt <= 0.01  # anytime-valid: looking every second costs nothing


def test_a_degradation_to_three_times_the_bound_for_ten_seconds_fails_at_50_rps() -> None:
    r = simulate(50, RUNS, seed=2)
    assert r.power_fail >= 0.95


@pytest.mark.parametrize("truth", [0.0, 0.5, 2.0, 4.0, 4.3])
def test_time_to_recover_reads_the_true_end_of_an_outage(truth: float) -> None:
    """To a tenth of a second, and inside its interval (give or take a tenth), in at least 18
    of 20 seeded runs: a burst of noise right after recovery reads as part of the outage."""
    close = covered = 0
    for seed in range(20):
        got = breaker_recovers_at(truth, 50, seed)
        assert got is not None
        value, lo, hi = got
        covered += lo - 0.1 - 1e-9 <= truth <= hi + 0.1 + 1e-9
        close += abs(value - truth) <= 0.1 + 1e-9
    assert close >= 18 and covered >= 18
