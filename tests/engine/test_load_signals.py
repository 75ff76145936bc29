"""Load signals on a fake clock: requests in flight, and the mean rate over whole seconds."""

from __future__ import annotations

import pytest

from chaosproxy.common.clock import FakeClock
from chaosproxy.engine.load_signals import LoadSignals


def test_inflight_counts_started_minus_finished() -> None:
    load = LoadSignals(FakeClock())
    for _ in range(3):
        load.started()
    load.finished()
    assert load.inflight == 2


def test_rps_is_the_mean_over_the_last_whole_seconds_not_the_current_one() -> None:
    clock = FakeClock(1000.5)  # mid-second: arrivals fall in one second
    load = LoadSignals(clock, window=2)
    for _ in range(10):
        load.started()
    assert load.rps() == 0  # the current second is still counting
    clock.advance(1)
    assert load.rps() == pytest.approx(5.0)  # 10 over the last 2 s
    assert load.rps(1) == pytest.approx(10.0)
    clock.advance(2)
    assert load.rps() == 0  # the burst left the window


def test_a_slot_of_the_ring_is_reused_after_a_full_turn() -> None:
    clock = FakeClock(1000.5)  # mid-second: arrivals fall in one second
    load = LoadSignals(clock, window=1, keep=2)  # a ring of 3 seconds
    load.started()
    clock.advance(3)  # the same slot, three seconds later
    load.started()
    clock.advance(1)
    assert load.rps(1) == 1.0  # the old second's count did not add up


def test_a_window_longer_than_kept_history_is_capped() -> None:
    clock = FakeClock(1000.5)  # mid-second: arrivals fall in one second
    load = LoadSignals(clock, window=5, keep=5)
    for _ in range(6):
        load.started()
    clock.advance(1)
    assert load.rps(100) == pytest.approx(6 / 5)
