"""The claims of docs/experiments.md ("Against a control group"), by seeded simulation with the
project's own judgement: on equal cohorts the two-proportion check FAILs at most 1 - confidence
of the time even with its bound at "no worse at all", and it finds real differences."""

from __future__ import annotations

import pytest

from chaosproxy.experiment.inference import wilson
from tests.experiment.cohort_sim import simulate_difference, simulate_latency

RUNS = 1000


@pytest.mark.parametrize("p", [0.005, 0.02, 0.1])
@pytest.mark.parametrize("rate", [50, 200])
def test_equal_cohorts_fail_at_most_alpha_of_the_time(rate: int, p: float) -> None:
    r = simulate_difference("equal", RUNS, 1, rate=rate, bound=0.0, p_control=p, p_fault=p)
    lo, _ = wilson(round(r.fail * RUNS), RUNS, 0.95)
    assert lo <= 0.05, r  # not shown above the 5 % it may cost
    assert r.fail <= 0.065


def test_a_difference_on_the_bound_fails_at_most_alpha_of_the_time() -> None:
    r = simulate_difference("on the bound", RUNS, 2, rate=200, p_fault=0.03)
    assert wilson(round(r.fail * RUNS), RUNS, 0.95)[0] <= 0.05


def test_real_differences_are_found() -> None:
    three = simulate_difference("3 pp worse", RUNS, 3, rate=200, p_fault=0.05)
    assert three.fail >= 0.9 and three.passed == 0
    six = simulate_difference("6 pp worse", RUNS, 3, rate=50, p_fault=0.08)
    assert six.fail >= 0.95 and six.passed == 0


@pytest.mark.slow
def test_the_latency_comparison_rarely_cries_wolf_and_sees_a_doubling() -> None:
    equal = simulate_latency(100, 1, slow=1.0, bound=1.0)
    assert equal.fail <= 0.1
    doubled = simulate_latency(50, 1, slow=2.0, bound=1.5)
    assert doubled.fail >= 0.9
