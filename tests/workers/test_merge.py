"""Several workers' answers read as one proxy's: metrics, per-second rows, status."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from chaosproxy.common.errors import UsageError
from chaosproxy.common.events import RequestDone, StateChanged, StateKind
from chaosproxy.observe.metrics import Metrics
from chaosproxy.observe.stats import Stats
from chaosproxy.workers import merge
from chaosproxy.workers.supervisor import reserve, worker_journal


def _done(
    status: int = 200,
    duration: float = 0.002,
    protocol: str = "http/1.1",
    grpc_status: int | None = None,
) -> RequestDone:
    """A request that started at 1000.1 (the second its row counts it in)."""
    return RequestDone(
        t=1000.1 + duration,
        method="GET",
        status=status,
        duration=duration,
        upstream_duration=duration,
        upstream_error=None,
        injected=status == 503,
        protocol=protocol,
        grpc_status=grpc_status,
    )


def _samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text.decode())
        for s in fam.samples
    }


def test_counters_and_histograms_add_up_across_workers() -> None:
    a, b = Metrics(), Metrics()
    for _ in range(3):
        a.on_request(_done())
    b.on_request(_done(503, duration=0.2))
    got = _samples(merge.metrics([a.exposition().decode(), b.exposition().decode()], 2))
    assert (
        got[
            (
                "chaosproxy_requests_total",
                (("code", "200"), ("method", "GET"), ("protocol", "http/1.1")),
            )
        ]
        == 3
    )
    assert (
        got[
            (
                "chaosproxy_requests_total",
                (("code", "503"), ("method", "GET"), ("protocol", "http/1.1")),
            )
        ]
        == 1
    )
    count = "chaosproxy_request_duration_seconds_count"
    assert got[(count, ())] == 4
    assert got[("chaosproxy_request_duration_seconds_bucket", (("le", "0.005"),))] == 3
    assert got[("chaosproxy_request_duration_seconds_bucket", (("le", "+Inf"),))] == 4
    assert got[("chaosproxy_workers", ())] == 2


def test_a_state_every_worker_records_is_counted_once() -> None:
    workers = [Metrics(), Metrics()]
    for m in workers:
        m.on_state(StateChanged(1.0, StateKind.SCENARIO_STARTED, "sc", "p1"))
        m.on_state(StateChanged(1.0, StateKind.RELOAD_FAILED, "sc"))
    got = _samples(merge.metrics([m.exposition().decode() for m in workers], 2))
    assert got[("chaosproxy_scenario_active", (("phase", "p1"), ("scenario", "sc")))] == 1
    assert got[("chaosproxy_config_reload_errors_total", ())] == 1


def test_in_flight_requests_are_summed() -> None:
    texts = [Metrics(inflight=lambda n=n: n).exposition().decode() for n in (2, 5)]
    assert _samples(merge.metrics(texts, 2))[("chaosproxy_inflight_requests", ())] == 7


def _rows(*events: RequestDone) -> list[dict[str, Any]]:
    stats = Stats()
    for ev in events:
        stats.on_request(ev)
    return stats.range(999, 1001, histograms=True)


def test_rows_are_summed_second_by_second_with_quantiles_of_the_whole() -> None:
    fast = _rows(*[_done(duration=0.001) for _ in range(9)])
    slow = _rows(_done(503, duration=2.0))
    rows = merge.timeseries([fast, slow], histograms=False)
    assert [r["t"] for r in rows] == [999, 1000, 1001]
    row = rows[1]
    assert (row["requests"], row["errors"], row["injected"]) == (10, 1, 1)
    assert row["error_rate"] == 0.1
    everything = _rows(*[_done(duration=0.001) for _ in range(9)], _done(503, duration=2.0))[1]
    assert (row["p50"], row["p99"]) == (everything["p50"], everything["p99"])
    assert "hist" not in row


def test_grpc_statuses_of_a_second_are_summed_across_workers() -> None:
    a = _rows(_done(protocol="h2", grpc_status=0), _done(grpc_status=14))
    b = _rows(_done(protocol="h2", grpc_status=14), _done())
    row = merge.timeseries([a, b], histograms=False)[1]
    assert row["grpc"] == {"OK": 1, "UNAVAILABLE": 2}
    assert row["errors"] == 2  # UNAVAILABLE is an error although its HTTP status is 200


def test_rows_keep_the_merged_histogram_when_asked() -> None:
    rows = merge.timeseries([_rows(_done()), _rows(_done())], histograms=True)
    assert sum(rows[1]["hist"].values()) == 2


def _status(matched: int, injected: int, active: int, trips: list[Any]) -> dict[str, Any]:
    return {
        "active": True,
        "scenario": {
            "name": "sc",
            "phase": "p1",
            "rule_counts": [
                {"id": "boom", "phase": "p1", "matched": matched, "injected": injected}
            ],
        },
        "scheduled": None,
        "rules": [],
        "adhoc_rules": [{"id": "r1", "matched": matched, "injected": 0}],
        "guardrails": {"active_faults": active, "skipped_faults": 1, "trips": trips},
    }


def test_status_sums_counts_and_says_which_worker_tripped() -> None:
    trip = {"guardrail": "abort_if.error_rate", "scenario": "sc", "t": 5.0, "reason": "x"}
    out = merge.status([_status(3, 2, 1, []), _status(4, 4, 2, [trip])])
    assert out["scenario"]["rule_counts"][0] == {
        "id": "boom",
        "phase": "p1",
        "matched": 7,
        "injected": 6,
    }
    assert out["adhoc_rules"][0]["matched"] == 7
    assert out["guardrails"]["active_faults"] == 3
    assert out["guardrails"]["skipped_faults"] == 2
    assert out["guardrails"]["trips"] == [trip | {"worker": 1}]


def test_each_worker_journals_to_a_file_of_its_own() -> None:
    assert worker_journal("/var/log/faults.jsonl", 1) == "/var/log/faults.w1.jsonl"
    assert worker_journal("journal", 0) == "journal.w0"
    assert worker_journal(None, 0) is None


def test_reserving_port_0_gives_one_port_the_workers_can_share() -> None:
    port, held = reserve("127.0.0.1", 0)
    try:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind(("127.0.0.1", port))
            s.listen()
    finally:
        for sock in held:
            sock.close()


def test_a_port_taken_by_another_program_names_listen() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(UsageError, match=rf"--listen 127.0.0.1:{port}: cannot listen: Address"):
            reserve("127.0.0.1", port)
