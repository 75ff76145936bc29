"""Per-second stats: counts, error rate and latency quantiles per second, bounded memory."""

from __future__ import annotations

import pytest

from chaosproxy.common.events import FaultInjected, RequestDone
from chaosproxy.observe.stats import Stats


def done(
    t: float, status: int = 200, duration: float = 0.01, injected: bool = False, run: str = ""
) -> RequestDone:
    """A request that ended at `t` (so it started at `t - duration`)."""
    return RequestDone(
        t=t,
        method="GET",
        status=status,
        duration=duration,
        upstream_duration=None,
        upstream_error=None,
        injected=injected,
        run=run,
    )


def test_each_second_counts_requests_errors_and_injected() -> None:
    s = Stats()
    s.on_request(done(100.1))
    s.on_request(done(100.5, status=503, injected=True))
    s.on_request(done(100.9, status=0))
    s.on_request(done(101.2, status=404))
    rows = s.series(now=102.0, seconds=2)
    assert [r["t"] for r in rows] == [100, 101]
    assert rows[0]["requests"] == 3 and rows[0]["errors"] == 2 and rows[0]["injected"] == 1
    assert rows[1]["requests"] == 1 and rows[1]["errors"] == 0


def test_current_incomplete_second_is_not_reported() -> None:
    s = Stats()
    s.on_request(done(100.2))
    assert s.series(now=100.5, seconds=1)[0]["requests"] == 0


def test_quiet_seconds_are_rows_of_zeros() -> None:
    s = Stats()
    rows = s.series(now=50.0, seconds=3)
    assert [r["requests"] for r in rows] == [0, 0, 0]
    assert rows[0]["p99"] is None


def test_quantiles_are_within_one_percent_of_the_true_order_statistic() -> None:
    s = Stats()
    for _ in range(98):
        s.on_request(done(10.5, duration=0.010))
    s.on_request(done(10.5, duration=0.200))
    s.on_request(done(10.5, duration=0.200))
    row = s.series(now=11.0, seconds=1)[0]
    assert row["p50"] == pytest.approx(0.010, rel=0.01)
    assert row["p99"] == pytest.approx(0.200, rel=0.01)


def test_a_very_long_latency_is_still_read_within_one_percent() -> None:
    s = Stats()
    s.on_request(done(1010.5, duration=1000.0))
    assert s.range(10, 10)[0]["p99"] == pytest.approx(1000.0, rel=0.01)


def test_rows_with_histograms_carry_the_sketch_and_the_coarse_buckets() -> None:
    s = Stats()
    for d in (0.010, 0.011, 0.5):
        s.on_request(done(100.5, duration=d))
    row = s.range(100, 100, histograms=True)[0]
    assert sum(row["sketch"].values()) == 3 == sum(row["hist"].values())
    assert len(row["sketch"]) == 3  # 10 ms and 11 ms are 10 % apart: two keys, not one bucket
    assert len(row["hist"]) == 2


def test_ring_forgets_seconds_older_than_it_keeps() -> None:
    s = Stats(keep=10)
    s.on_request(done(100.0))
    s.on_request(done(110.0))  # same slot, ten seconds later
    assert s.window(now=111.0, seconds=10).requests == 1


def test_window_aggregates_error_rate_and_p99() -> None:
    s = Stats()
    for t in (100.0, 101.0, 102.0):
        s.on_request(done(t + 1.0, status=500, duration=1.0))
        s.on_request(done(t + 0.5))
    w = s.window(now=103.0, seconds=3)
    assert w.requests == 6 and w.errors == 3 and w.error_rate == 0.5
    assert w.p99 == pytest.approx(1.0, rel=0.01)


def test_a_request_counts_in_the_second_it_started() -> None:
    s = Stats()
    s.on_request(done(102.5, duration=2.0))  # started at 100.5, ended two seconds later
    rows = s.range(100, 102)
    assert [r["requests"] for r in rows] == [1, 0, 0]


def test_run_traffic_is_counted_apart_as_well_as_in_the_whole() -> None:
    s = Stats()
    s.on_request(done(100.5, run="exp-1"))
    s.on_request(done(100.5, status=500, run="exp-1"))
    s.on_request(done(100.5))
    assert s.range(100, 100)[0]["requests"] == 3
    mine = s.range(100, 100, run="exp-1")[0]
    assert mine["requests"] == 2 and mine["errors"] == 1
    assert s.range(100, 100, run="other")[0]["requests"] == 0
    assert s.runs() == ["exp-1"]


def test_faults_on_tcp_connections_count_in_the_second_they_applied_all_traffic_only() -> None:
    """A connection has no request to count in and no run id: its faults are a count of their
    own in the all-traffic rows, quiet seconds included; HTTP faults are not counted there."""
    s = Stats()

    def fault(t: float, method: str) -> FaultInjected:
        return FaultInjected(t, "redis#1", method, "tcp:redis", "cut", "down", "r", "reset", "")

    s.on_fault(fault(100.2, "TCP"))
    s.on_fault(fault(100.7, "TCP"))
    s.on_fault(fault(101.1, "GET"))  # an HTTP fault: its request counts as `injected`
    s.on_request(done(101.5, run="exp-1"))
    rows = s.range(100, 101)
    assert [r["tcp_faults"] for r in rows] == [2, 0]
    assert rows[0]["requests"] == 0
    assert [r["tcp_faults"] for r in s.range(100, 101, run="exp-1")] == [0, 0]


def test_only_the_most_recent_runs_are_kept_apart() -> None:
    from chaosproxy.observe.stats import MAX_RUNS

    s = Stats()
    for i in range(MAX_RUNS + 2):
        s.on_request(done(100.5, run=f"r{i}"))
    assert len(s.runs()) == MAX_RUNS
    assert s.runs()[-1] == f"r{MAX_RUNS + 1}"
    assert s.range(100, 100, run="r0")[0]["requests"] == 0


def test_histograms_merge_into_any_window() -> None:
    s = Stats()
    s.on_request(done(100.5, duration=0.010))
    s.on_request(done(101.5, duration=0.010))
    rows = s.range(100, 101, histograms=True)
    buckets = [b for r in rows for b in r["hist"]]
    assert len(buckets) == 2 and buckets[0] == buckets[1]
    assert all(sum(r["hist"].values()) == r["requests"] for r in rows)
