"""series_query and the staleness rule: as pure functions, against a stand-in API, each check's
series as the run gathers them, and against a real Prometheus whose target goes away (slow)."""

from __future__ import annotations

import math
import time
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from chaosproxy.experiment.align import build_rows
from chaosproxy.experiment.model import CheckSpec, PrometheusSpec
from chaosproxy.experiment.outcome import INCONCLUSIVE, PASS
from chaosproxy.experiment.prom_client import range_query
from chaosproxy.experiment.prom_series import PromSeries, drop_stale, scrape_spacing, series_query
from chaosproxy.experiment.series import PhaseWindow
from chaosproxy.experiment.verdict import judge
from tests.experiment.prom_api import Serve, api, by_query, matrix
from tests.experiment.prom_fixture import StartPrometheus, poll_until, start_prometheus

__all__ = ["start_prometheus"]  # the fixture, imported explicitly


def test_drop_stale_keeps_fresh_points_and_counts_the_rest() -> None:
    points = {t: float(t) for t in range(100, 111)}
    # Scraped every second until 104.3, then never again: the lookback repeats 104.3.
    stamps = {t: t - 0.7 for t in range(40, 105)} | {t: 104.3 for t in range(105, 111)}
    kept, dropped = drop_stale(points, [stamps], start=100.0)
    assert sorted(kept) == [101, 102, 103, 104, 105, 106]  # 100 rests on 99.3: before start
    assert dropped == 5
    # A selector without a timestamp at a second says nothing about it.
    kept, dropped = drop_stale(points, [{}, {108: 50.0}], start=100.0)
    assert 108 not in kept and dropped == 1
    # A 15 s scrape: a sample up to two intervals old is still fresh.
    slow = {t: 100.0 + 15 * ((t - 100) // 15) for t in range(100, 160)}
    kept, dropped = drop_stale({t: 1.0 for t in range(100, 160)}, [slow], start=100.0)
    assert dropped == 0
    kept, dropped = drop_stale({t: 1.0 for t in range(100, 160)}, [slow], start=100.0, step=20)
    assert dropped == 0
    assert drop_stale({}, [stamps], start=0.0) == ({}, 0)


def test_scrape_spacing_is_the_median_gap_between_distinct_timestamps() -> None:
    assert scrape_spacing([1.0, 1.0, 2.0, 3.0, 3.0, 60.0, 61.0]) == 1.0
    assert scrape_spacing([5.0, 5.0]) == 0.0
    assert scrape_spacing([]) == 0.0


async def test_series_query_drops_stale_points_and_reports_the_lag(start_upstream: Serve) -> None:
    seen: list[dict[str, str]] = []
    query = 'sum(level{job="a"}) + sum(rate(hits[5s]))'
    answers = {
        query: matrix([[t, "7"] for t in range(100, 111)]),
        'min(timestamp(level{job="a"}))': matrix(
            [[t, str(t - 0.5)] for t in range(40, 105)] + [[t, "104.5"] for t in range(105, 111)]
        ),
    }
    url = await start_upstream(by_query(answers, seen))
    async with aiohttp.ClientSession() as s:
        got = await series_query(s, url, query, 100.0, 110.0)
    assert got == PromSeries({t: 7.0 for t in range(101, 107)}, 5.0, 5, ())  # 100: 99.5 < start
    assert [q["query"] for q in seen] == [query, 'min(timestamp(level{job="a"}))']
    assert seen[1]["start"] == "40.000" and seen[1]["end"] == "110.000"


async def test_a_failed_staleness_query_keeps_the_points_and_says_so(
    start_upstream: Serve,
) -> None:
    url = await start_upstream(by_query({"level": matrix([[100, "1"], [101, "2"]])}))
    async with aiohttp.ClientSession() as s:
        got = await series_query(s, url, "level", 100.0, 101.0)
        assert got.points == {100: 1.0, 101: 2.0} and got.stale_dropped == 0
        assert len(got.notes) == 1
        assert "staleness not checked for level, points kept" in got.notes[0]
        assert "unknown query" in got.notes[0]
        # No points: no staleness query at all, and the lag still said.
        empty = await start_upstream(api(matrix()))
        assert await series_query(s, empty, "rate(x[1m])", 1.0, 2.0) == PromSeries({}, 60.0)


async def test_prometheus_series_gives_each_check_its_series_and_notes(
    start_upstream: Serve, refused_url: str
) -> None:
    # Imported here: gather pulls in the whole verdict, which this file does not test.
    from chaosproxy.experiment.finish import prometheus_series

    answers = {
        "sum(rate(x[5s]))": matrix([[t, "1"] for t in range(100, 106)]),
        "level": matrix([[t, "3"] for t in range(100, 106)]),
        "min(timestamp(level))": matrix([[t, "90"] for t in range(40, 106)]),
    }
    url = await start_upstream(by_query(answers))

    def check(name: str, at: str, query: str) -> CheckSpec:
        return CheckSpec(
            name, "value", "prometheus", during_phase="p", prometheus=PrometheusSpec(at, query)
        )

    run: Any = SimpleNamespace(
        exp=SimpleNamespace(
            checks=(
                check("rate", url, "sum(rate(x[5s]))"),
                check("stale", url, "level"),
                check("down", refused_url, "max_over_time(x[30s:1s])"),
                CheckSpec("client", "error_rate"),
            )
        ),
        notes=[],
    )
    got = await prometheus_series(run, 100, 105)
    assert got["rate"] == PromSeries({t: 1.0 for t in range(100, 106)}, 5.0)
    assert got["stale"] == PromSeries({}, 0.0, 6)
    assert got["down"].points == {} and got["down"].lag == 30.0
    assert set(got) == {"rate", "stale", "down"}
    notes = "\n".join(run.notes)
    assert "check 'rate': the query reaches back 5s" in notes
    assert "check 'stale': 6 stale Prometheus point(s) dropped" in notes
    assert f"check 'down': {refused_url}/api/v1/query_range" in notes
    assert "check 'down': the query reaches back 30s" in notes


def _exporter(state: dict[str, bool]) -> web.Application:
    """A scrape target with two gauges: `chaostest_stamped` carries explicit timestamps (as
    federation and many exporters do, so Prometheus writes no staleness marker for it) and
    `chaostest_plain` does not."""

    async def metrics(request: web.Request) -> web.Response:
        ms = int(time.time() * 1000)
        return web.Response(
            text=(
                "# TYPE chaostest_stamped gauge\n"
                f"chaostest_stamped 7 {ms}\n"
                "# TYPE chaostest_plain gauge\n"
                "chaostest_plain 3\n"
            )
        )

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    return app


@pytest.mark.slow
async def test_real_prometheus_stale_gauge_of_a_target_gone_is_dropped(
    start_prometheus: StartPrometheus,
) -> None:
    target = TestServer(_exporter({}), host="127.0.0.1")
    await target.start_server()
    try:
        prom = await start_prometheus([f"127.0.0.1:{target.port}"])
        async with aiohttp.ClientSession() as s:
            alive_from = math.floor(time.time())

            async def scraped_a_while() -> bool:
                got = await range_query(s, prom, "chaostest_stamped", alive_from, time.time())
                return len(got) >= 4

            await poll_until("4 s of the stamped gauge", time.monotonic() + 30, scraped_a_while)
            await target.close()  # the target goes away: every scrape from now on fails
            gone = time.time()
            after = math.ceil(gone) + 3  # a window that starts after the stop
            until = after + 6

            async def scraped_past_the_window() -> bool:
                if time.time() < until:
                    return False
                up = await range_query(s, prom, "up", after, time.time())
                return bool(up) and max(up) >= until and set(up.values()) == {0.0}

            await poll_until("failed scrapes past the window", time.monotonic() + 40,
                             scraped_past_the_window)  # fmt: skip

            # The bug: a plain query repeats the last sample through the lookback.
            raw = await range_query(s, prom, "chaostest_stamped", after, until)
            assert raw and set(raw.values()) == {7.0}
            # Prometheus marked the untimestamped gauge stale itself: nothing to drop.
            assert await range_query(s, prom, "chaostest_plain", after, until) == {}

            # After the stop: no point survives, for the gauge or an aggregate of it.
            for query in ("chaostest_stamped", 'sum(chaostest_stamped{job="chaosproxy"})'):
                got = await series_query(s, prom, query, after, until)
                assert got == PromSeries({}, 0.0, len(raw), ()), query

            # Across the stop: the points while scraped stay, none rests on a stale sample.
            span = await range_query(s, prom, "chaostest_stamped", alive_from, until)
            got = await series_query(s, prom, "chaostest_stamped", alive_from, until)
            assert max(span) == until  # the lookback fills the whole span...
            assert got.points and max(got.points) <= gone + 2  # ...the check reads the live part
            assert got.stale_dropped == len(span) - len(got.points) >= until - (gone + 2)
            assert all(got.points[t] == span[t] for t in got.points)

            # The verdict: what PASSed on repeated stale samples is INCONCLUSIVE now.
            spec = CheckSpec(
                "gauge stays low",
                "error_rate",
                source="prometheus",
                during_phase="gone",
                bound=10.0,
                prometheus=PrometheusSpec(prom, "chaostest_stamped"),
            )
            windows = [PhaseWindow("gone", float(after), float(until), False)]
            naive = build_rows(after, until - 1, {}, {}, windows, {spec.name: raw})
            old = judge([spec], naive, windows).checks[0]
            assert old.status == PASS, old.message  # the old answer
            rows = build_rows(after, until - 1, {}, {}, windows, {spec.name: got.points})
            r = judge([spec], rows, windows).checks[0]
            assert r.status == INCONCLUSIVE and "too few data points" in r.message
    finally:
        await target.close()
