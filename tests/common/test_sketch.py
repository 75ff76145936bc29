"""Latency sketches: every quantile read back is within the stated 1 % of a true order
statistic, and sketches merge by adding counts, exactly as one sketch of all the data."""

from __future__ import annotations

import math
import random

from chaosproxy.common import sketch


def _sketch_of(durations: list[float]) -> dict[int, int]:
    out: dict[int, int] = {}
    for d in durations:
        k = sketch.key(d)
        out[k] = out.get(k, 0) + 1
    return out


def test_every_rank_is_within_the_stated_relative_error() -> None:
    rng = random.Random(7)
    data = sorted(rng.lognormvariate(-3, 1.2) for _ in range(5000))
    s = _sketch_of(data)
    assert sketch.count(s) == len(data)
    for rank in (1, 50, 2500, 4750, 4950, 5000):
        got = sketch.at_rank(s, rank)
        assert got is not None
        assert abs(got - data[rank - 1]) <= sketch.ACCURACY * data[rank - 1] * (1 + 1e-9)


def test_a_key_stands_for_values_between_its_bounds() -> None:
    for x in (1e-5, 0.0123, 0.5, 3.0, 250.0):
        k = sketch.key(x)
        assert sketch.lower(k) < x <= sketch.lower(k + 1) * (1 + 1e-12)
        assert math.isclose(sketch.value(k), x, rel_tol=sketch.ACCURACY * (1 + 1e-9))


def test_durations_at_or_below_the_floor_share_one_key() -> None:
    assert sketch.key(0.0) == sketch.key(-1.0) == sketch.key(sketch.FLOOR)


def test_merged_sketches_equal_the_sketch_of_all_the_data() -> None:
    rng = random.Random(3)
    a = [rng.expovariate(20) for _ in range(700)]
    b = [rng.expovariate(5) for _ in range(300)]
    merged = _sketch_of(a)
    sketch.add(merged, _sketch_of(b))
    assert merged == _sketch_of(a + b)


def test_several_ranks_in_one_pass_agree_with_one_at_a_time() -> None:
    rng = random.Random(11)
    s = _sketch_of([rng.uniform(0.001, 2) for _ in range(1000)])
    ranks = [990, 1, 500, 500, 1000, 1001, 0]
    assert sketch.at_ranks(s, ranks) == [sketch.at_rank(s, r) for r in ranks]
    assert sketch.at_rank(s, 0) is None and sketch.at_rank(s, 1001) is None
    assert sketch.at_rank({}, 1) is None


def test_above_counts_the_durations_over_a_bound() -> None:
    s = _sketch_of([0.01] * 90 + [1.0] * 10)
    assert sketch.above(s, 0.5) == 10
    assert sketch.above(s, 0.001) == 100
    assert sketch.above(s, 5.0) == 0
