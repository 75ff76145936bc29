"""Per-second cohort sub-rows, the per-run client book and its bounds, and the `--workers`
merge of cohort rows (pure: events in, rows out)."""

from __future__ import annotations

import pytest

from chaosproxy.common.events import RequestDone
from chaosproxy.observe import blast_radius
from chaosproxy.observe.stats import Stats
from chaosproxy.workers import merge


def done(
    t: float,
    cohort: str = "",
    client: str = "c",
    status: int = 200,
    duration: float = 0.01,
    run: str = "r",
) -> RequestDone:
    return RequestDone(
        t=t + duration,
        method="GET",
        status=status,
        duration=duration,
        upstream_duration=None,
        upstream_error=None,
        injected=status == 503,
        client=client,
        run=run,
        cohort=cohort,
    )


def test_rows_get_cohort_sub_rows_only_where_labelled_traffic_is() -> None:
    s = Stats()
    s.on_request(done(100.1))
    s.on_request(done(101.1, "fault", status=503, duration=0.5))
    s.on_request(done(101.2, "control"))
    s.on_request(done(101.3, "control", duration=0.02))
    rows = s.range(100, 101, histograms=True)
    assert "cohorts" not in rows[0]
    fault, control = rows[1]["cohorts"]["fault"], rows[1]["cohorts"]["control"]
    assert (fault["requests"], fault["errors"], fault["injected"]) == (1, 1, 1)
    assert (control["requests"], control["errors"], control["injected"]) == (2, 0, 0)
    assert fault["p50"] == pytest.approx(0.5, rel=0.01)
    assert sum(control["sketch"].values()) == 2 and sum(control["hist"].values()) == 2
    assert set(fault) == set(rows[1]) - {"cohorts"}  # the row's own shape
    assert s.range(101, 101, run="r")[0]["cohorts"]["control"]["requests"] == 2


def test_a_cohort_without_traffic_that_second_is_there_with_zeros() -> None:
    s = Stats()
    s.on_request(done(50.5, "control"))
    row = s.range(50, 50)[0]
    assert row["cohorts"]["fault"]["requests"] == 0 and row["cohorts"]["fault"]["p99"] is None


def test_workers_cohort_rows_add_up() -> None:
    a, b = Stats(), Stats()
    a.on_request(done(10.1, "fault", status=503))
    b.on_request(done(10.2, "fault", duration=2.0))
    b.on_request(done(10.3, "control"))
    b.on_request(done(11.3))
    rows = merge.timeseries(
        [a.range(10, 11, histograms=True), b.range(10, 11, histograms=True)], histograms=True
    )
    fault = rows[0]["cohorts"]["fault"]
    assert (fault["requests"], fault["errors"], fault["injected"]) == (2, 1, 1)
    assert fault["p99"] == pytest.approx(2.0, rel=0.01)
    assert sum(fault["sketch"].values()) == 2
    assert rows[0]["cohorts"]["control"]["requests"] == 1
    assert "cohorts" not in rows[1]


def test_the_client_book_says_cohort_first_last_and_hurt_seconds() -> None:
    s = Stats()
    s.on_request(done(99.5, "", client="a"))  # before the scenario labelled traffic
    s.on_request(done(100.2, "fault", client="a", status=503))
    s.on_request(done(100.7, "fault", client="a", status=503))
    s.on_request(done(103.1, "fault", client="a"))
    s.on_request(done(101.1, "control", client="b"))
    s.on_request(done(101.1, "control", client="c", run="other"))
    book = s.clients("r")
    assert book["count"] == 2 and not book["truncated"]
    assert book["clients"] == [
        {"cohort": "fault", "first": 99, "last": 103, "hurt": [100]},
        {"cohort": "control", "first": 101, "last": 101, "hurt": []},
    ]
    s.clear()
    assert s.clients("r")["clients"] == []


def test_the_client_book_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blast_radius, "MAX_CLIENTS", 3)
    monkeypatch.setattr(blast_radius, "MAX_HURT", 2)
    s = Stats()
    for i in range(5):
        s.on_request(done(100.0 + i * 10, "fault", client=f"u{i}"))
    for sec in range(3):
        s.on_request(done(200.0 + sec, "fault", client="u0", status=503))
    book = s.clients("r")
    assert book["count"] == 3 and book["truncated"]
    first = book["clients"][0]
    assert first["hurt"] == [200, 201] and first["hurt_truncated"]


def test_client_books_are_kept_for_a_few_runs() -> None:
    from chaosproxy.observe.stats import MAX_CLIENT_RUNS

    s = Stats()
    for i in range(MAX_CLIENT_RUNS + 1):
        s.on_request(done(100.0, "fault", run=f"run{i}"))
    assert s.clients("run0")["count"] == 0
    assert s.clients(f"run{MAX_CLIENT_RUNS}")["count"] == 1
