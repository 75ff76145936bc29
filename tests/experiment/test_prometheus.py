"""range_query and series_query: against a stand-in API for every answer shape (hostile ones
included), PromQL reading (lag, instant selectors) and the staleness rule as pure functions, and
against a real Prometheus scraping a real chaosproxy and a real exporter (slow)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from chaosproxy.experiment import prometheus
from chaosproxy.experiment.align import build_rows
from chaosproxy.experiment.model import CheckSpec, PrometheusSpec
from chaosproxy.experiment.outcome import INCONCLUSIVE, PASS
from chaosproxy.experiment.prometheus import (
    PrometheusQueryError,
    PrometheusUnreachable,
    PromSeries,
    drop_stale,
    grafana_annotations,
    instant_selectors,
    lag_seconds,
    parse_duration,
    phase_annotations,
    range_query,
    scrape_spacing,
    series_query,
)
from chaosproxy.experiment.series import PhaseWindow
from chaosproxy.experiment.verdict import judge
from tests.conftest import StartProxy
from tests.experiment.prom_fixture import StartPrometheus, poll_until, start_prometheus

__all__ = ["start_prometheus"]  # the fixture, imported explicitly

Serve = Callable[[web.Application], Awaitable[str]]
REQUESTS = "sum(rate(chaosproxy_requests_total[5s]))"
ERRORS = 'sum(rate(chaosproxy_requests_total{code=~"5..|0"}[5s]))'
# `or vector(0)`: until a 5xx series exists, the numerator has no data and so would the ratio.
ERROR_RATIO = f"({ERRORS} or vector(0)) / sum(rate(chaosproxy_requests_total[5s]))"
BARE_ERROR_RATIO = f"{ERRORS} / sum(rate(chaosproxy_requests_total[5s]))"


def _api(
    answer: dict[str, Any], status: int = 200, seen: list[dict[str, str]] | None = None
) -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        if seen is not None:
            seen.append(dict(await request.post()))
        return web.json_response(answer, status=status)

    app = web.Application()
    app.router.add_route("*", "/api/v1/query_range", handler)
    return app


def _by_query(
    answers: dict[str, dict[str, Any]], seen: list[dict[str, str]] | None = None
) -> web.Application:
    """A stand-in API answering each query with its own document (unknown: an error)."""

    async def handler(request: web.Request) -> web.Response:
        form = dict(await request.post())
        if seen is not None:
            seen.append({k: str(v) for k, v in form.items()})
        answer = answers.get(str(form.get("query")))
        if answer is None:
            return web.json_response(
                {"status": "error", "errorType": "bad_data", "error": "unknown query"}, status=400
            )
        return web.json_response(answer)

    app = web.Application()
    app.router.add_route("*", "/api/v1/query_range", handler)
    return app


def _matrix(*series: list[list[Any]]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {"resultType": "matrix", "result": [{"metric": {}, "values": v} for v in series]},
    }


async def test_one_series_becomes_second_to_value_without_nan_or_inf(start_upstream: Serve) -> None:
    seen: list[dict[str, str]] = []
    url = await start_upstream(
        _api(
            _matrix([[100, "1.5"], [101.0, "NaN"], [102, "+Inf"], [103.5, "2"], [104, "-Inf"]]),
            seen=seen,
        )
    )
    async with aiohttp.ClientSession() as s:
        got = await range_query(s, url + "/", REQUESTS, 100.0, 104.0, step=1.0)
    assert got == {100: 1.5, 103: 2.0}
    assert seen == [{"query": REQUESTS, "start": "100.000", "end": "104.000", "step": "1"}]


async def test_no_data_is_an_empty_dict(start_upstream: Serve) -> None:
    url = await start_upstream(_api(_matrix()))
    async with aiohttp.ClientSession() as s:
        assert await range_query(s, url, "absent_metric", 1.0, 2.0) == {}


async def test_several_series_is_an_error_naming_the_query_and_count(start_upstream: Serve) -> None:
    url = await start_upstream(_api(_matrix([[1, "1"]], [[1, "2"]], [[1, "3"]])))
    async with aiohttp.ClientSession() as s:
        with pytest.raises(PrometheusQueryError, match=r"query 'by_code' returned 3 series"):
            await range_query(s, url, "by_code", 1.0, 2.0)


async def test_a_rejected_query_carries_prometheus_own_message(start_upstream: Serve) -> None:
    answer = {"status": "error", "errorType": "bad_data", "error": 'parse error: unexpected "}"'}
    url = await start_upstream(_api(answer, status=400))
    async with aiohttp.ClientSession() as s:
        with pytest.raises(PrometheusQueryError) as e:
            await range_query(s, url, "sum(}", 1.0, 2.0)
    assert f"{url}/api/v1/query_range" in str(e.value)
    assert 'parse error: unexpected "}"' in str(e.value) and "HTTP 400" in str(e.value)


async def test_not_prometheus_is_unreachable_naming_the_url(start_upstream: Serve) -> None:
    async def gateway(request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>bad gateway</html>")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", gateway)
    url = await start_upstream(app)
    async with aiohttp.ClientSession() as s:
        with pytest.raises(PrometheusUnreachable, match=rf"{url}/api/v1/query_range: HTTP 502"):
            await range_query(s, url, "up", 1.0, 2.0)


async def test_refused_connection_is_unreachable_naming_the_url(refused_url: str) -> None:
    async with aiohttp.ClientSession() as s:
        with pytest.raises(PrometheusUnreachable, match=rf"{refused_url}/api/v1/query_range"):
            await range_query(s, refused_url, "up", 1.0, 2.0)


async def test_no_answer_within_the_timeout_is_unreachable(start_upstream: Serve) -> None:
    never = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await never.wait()
        return web.Response()

    app = web.Application()
    app.router.add_route("*", "/api/v1/query_range", hang)
    url = await start_upstream(app)
    async with aiohttp.ClientSession() as s:
        with pytest.raises(PrometheusUnreachable, match=r"no answer within 0.2s"):
            await range_query(s, url, "up", 1.0, 2.0, timeout=0.2)
    never.set()


async def test_hostile_matrices_are_skipped_or_rejected_never_a_crash(
    start_upstream: Serve,
) -> None:
    weird = [
        [100, "1"],
        {"t": 101},
        [102],
        [103, "2", "extra"],
        ["nope", "3"],
        [None, "4"],
        ["+Inf", "5"],
        ["NaN", "6"],
        [1e400, "7"],
        [104, ["8"]],
        [105, "9"],
    ]
    url = await start_upstream(_api(_matrix(weird)))
    not_a_series = await start_upstream(
        _api({"status": "success", "data": {"resultType": "matrix", "result": ["x"]}})
    )
    values_not_a_list = await start_upstream(
        _api(
            {
                "status": "success",
                "data": {"resultType": "matrix", "result": [{"values": {"a": 1}}]},
            }
        )
    )
    async with aiohttp.ClientSession() as s:
        assert await range_query(s, url, "x", 100.0, 105.0) == {100: 1.0, 105: 9.0}
        assert await range_query(s, not_a_series, "x", 1.0, 2.0) == {}
        assert await range_query(s, values_not_a_list, "x", 1.0, 2.0) == {}


async def test_hostile_bodies_are_bounded(
    start_upstream: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def deep(request: web.Request) -> web.Response:
        return web.Response(text="[" * 200_000 + "]" * 200_000)

    async def big(request: web.Request) -> web.Response:
        return web.Response(text=" " * 5000 + "{}")

    app = web.Application()
    app.router.add_route("*", "/deep/api/v1/query_range", deep)
    app.router.add_route("*", "/big/api/v1/query_range", big)
    url = await start_upstream(app)
    long_error = {"status": "error", "errorType": "x" * 10_000, "error": "y" * 100_000}
    chatty = await start_upstream(_api(long_error, status=422))
    async with aiohttp.ClientSession() as s:
        with pytest.raises(PrometheusUnreachable, match="without a Prometheus API answer"):
            await range_query(s, url + "/deep", "x", 1.0, 2.0)
        with pytest.raises(PrometheusQueryError) as e:
            await range_query(s, chatty, "x" * 10_000, 1.0, 2.0)
        assert len(str(e.value)) < 1000
        monkeypatch.setattr(prometheus, "MAX_BODY", 4096)
        with pytest.raises(PrometheusUnreachable, match="answer larger than 4,096 bytes"):
            await range_query(s, url + "/big", "x", 1.0, 2.0)


@pytest.mark.parametrize(
    ("query", "lag"),
    [
        ("rate(x[5s])", 5.0),
        ("sum(rate(x[1m]))", 60.0),
        ("max_over_time(x[30s:1s])", 30.0),
        ("x", 0.0),
        ("rate(x[1m30s])", 90.0),
        ("sum(rate(x[5s])) / sum(rate(y[1m]))", 60.0),
        ("max_over_time(rate(x[5s])[30s:1s])", 35.0),  # a subquery adds its operand's reach
        ("max_over_time(x[5m:])", 300.0),
        ("rate(x[250ms])", 0.25),
        ("avg_over_time(x[300])", 300.0),  # a number of seconds
        ('sum(rate(x{path=~"/a[0-9]m"}[5s]))', 5.0),  # brackets in a string are not ranges
        ("sum(x) # [1h] in a comment\n", 0.0),
        (f"({ERRORS} or vector(0)) / sum(rate(chaosproxy_requests_total[5s]))", 5.0),
        ("rate(x[oops])", 0.0),
        ("rate(x[5s", 0.0),
    ],
)
def test_lag_seconds_is_how_far_the_query_reaches_back(query: str, lag: float) -> None:
    assert lag_seconds(query) == lag


def test_parse_duration() -> None:
    assert parse_duration("1h2m3s4ms") == 3723.004
    assert parse_duration(" 1d ") == 86400.0
    assert parse_duration("1.5") == 1.5
    for bad in ("", "5", "5x", "-1", "nan", "inf", "1e400", "9" * 30 + "y", "s"):
        if bad != "5":
            assert parse_duration(bad) is None, bad


@pytest.mark.parametrize(
    ("query", "selectors"),
    [
        ("x", ["x"]),
        ('sum by (code) (x{a="b"})', ['x{a="b"}']),
        ("sum(x) by (code) / on() group_left sum(y)", ["x", "y"]),
        ('{__name__="up"}', ['{__name__="up"}']),
        ("rate(x[5s])", []),  # a range: its window excludes old samples
        (ERROR_RATIO, []),
        ("max_over_time(g[30s:1s])", ["g"]),  # a subquery evaluates g with the lookback
        ("max_over_time((g)[30s:1s])", ["g"]),
        ("x offset 5m + y @ 100 + z", ["z"]),  # old on purpose
        ("x > bool 1e-3", ["x"]),
        ('label_replace(x, "a", "$1", "b", "(.*)") or vector(0)', ["x"]),
        ('x{a="}"} + x{a="}"}', ['x{a="}"}']),
        ("job:rate5m:sum", ["job:rate5m:sum"]),
        ("histogram_quantile(0.9, sum by (le) (rate(b[5s])))", []),
        ("sum(", []),
        ('"unterminated', []),
    ],
)
def test_instant_selectors(query: str, selectors: list[str]) -> None:
    assert instant_selectors(query) == selectors


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
        query: _matrix([[t, "7"] for t in range(100, 111)]),
        'min(timestamp(level{job="a"}))': _matrix(
            [[t, str(t - 0.5)] for t in range(40, 105)] + [[t, "104.5"] for t in range(105, 111)]
        ),
    }
    url = await start_upstream(_by_query(answers, seen))
    async with aiohttp.ClientSession() as s:
        got = await series_query(s, url, query, 100.0, 110.0)
    assert got == PromSeries({t: 7.0 for t in range(101, 107)}, 5.0, 5, ())  # 100: 99.5 < start
    assert [q["query"] for q in seen] == [query, 'min(timestamp(level{job="a"}))']
    assert seen[1]["start"] == "40.000" and seen[1]["end"] == "110.000"


async def test_a_failed_staleness_query_keeps_the_points_and_says_so(
    start_upstream: Serve,
) -> None:
    url = await start_upstream(_by_query({"level": _matrix([[100, "1"], [101, "2"]])}))
    async with aiohttp.ClientSession() as s:
        got = await series_query(s, url, "level", 100.0, 101.0)
        assert got.points == {100: 1.0, 101: 2.0} and got.stale_dropped == 0
        assert len(got.notes) == 1
        assert "staleness not checked for level, points kept" in got.notes[0]
        assert "unknown query" in got.notes[0]
        # No points: no staleness query at all, and the lag still said.
        empty = await start_upstream(_api(_matrix()))
        assert await series_query(s, empty, "rate(x[1m])", 1.0, 2.0) == PromSeries({}, 60.0)


async def test_prometheus_series_gives_each_check_its_series_and_notes(
    start_upstream: Serve, refused_url: str
) -> None:
    # Imported here: gather pulls in the whole verdict, which this file does not test.
    from chaosproxy.experiment.finish import prometheus_series

    answers = {
        "sum(rate(x[5s]))": _matrix([[t, "1"] for t in range(100, 106)]),
        "level": _matrix([[t, "3"] for t in range(100, 106)]),
        "min(timestamp(level))": _matrix([[t, "90"] for t in range(40, 106)]),
    }
    url = await start_upstream(_by_query(answers))

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


def test_phase_annotations_and_their_grafana_shape() -> None:
    phases = [
        {"name": "steady", "start": 100.0, "end": 106.0},
        {"name": "broken-release", "start": 106.0, "end": 114.5},
    ]
    ann = phase_annotations(phases, "post-deploy-breakage", run_id="9f2c")
    assert ann[1] == {
        "time": 106.0,
        "end": 114.5,
        "title": "phase broken-release",
        "tags": [
            "chaosproxy",
            "phase",
            "broken-release",
            "scenario:post-deploy-breakage",
            "run:9f2c",
        ],
    }
    assert grafana_annotations(ann)[1] == {
        "time": 106000,
        "timeEnd": 114500,
        "text": "phase broken-release",
        "tags": ann[1]["tags"],
    }


# ----------------------------------------------------------------- a real Prometheus


async def _drive(session: aiohttp.ClientSession, url: str, seconds: float) -> None:
    """Steady client traffic: a few requests every 50 ms for `seconds` (pacing, not syncing)."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        for _ in range(3):
            async with session.get(url + "/api/items") as r:
                await r.read()
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_range_query_agrees_with_the_proxys_own_timeseries(
    start_proxy: StartProxy, demo_upstream: str, start_prometheus: StartPrometheus
) -> None:
    rt = await start_proxy(demo_upstream)
    admin = rt.admin_url
    prom = await start_prometheus([admin.removeprefix("http://")])
    async with aiohttp.ClientSession() as s:
        clean_start = time.time()
        await _drive(s, rt.proxy_url, 9)
        faulty_start = time.time()
        async with s.post(
            admin + "/rules", json={"fault": {"error": {"status": 500}}, "ttl": "1m"}
        ) as r:
            assert r.status in (200, 201), await r.text()
        await _drive(s, rt.proxy_url, 8)
        end = time.time()

        # Wait (bounded) until Prometheus has scraped past the end of the traffic.
        async def scraped_to_end() -> bool:
            got = await range_query(s, prom, REQUESTS, clean_start, end + 2)
            return bool(got) and max(got) >= int(end)

        await poll_until("a scrape after the traffic", time.monotonic() + 30, scraped_to_end)
        rates = await range_query(s, prom, REQUESTS, clean_start, end)
        ratio = await range_query(s, prom, ERROR_RATIO, clean_start, end)
        bare = await range_query(s, prom, BARE_ERROR_RATIO, clean_start, end)
        checked = await series_query(s, prom, ERROR_RATIO, clean_start, end)
        async with s.get(admin + "/stats/timeseries", params={"seconds": "60"}) as r:
            own = {row["t"]: row for row in (await r.json())["series"]}

    # Requests: per-second values where the proxy saw traffic, of the same order as its own.
    busy = [t for t in rates if clean_start + 5 <= t <= end - 1]
    assert len(busy) >= 5
    assert all(rates[t] > 0 for t in busy)
    prom_mean = sum(rates[t] for t in busy) / len(busy)
    own_mean = sum(own[t]["requests"] for t in busy if t in own) / len(busy)
    assert own_mean / 2 < prom_mean < own_mean * 2

    # Error ratio: near 0 before the rule, near 1 once the rule has filled a whole 5 s window.
    before = [v for t, v in ratio.items() if clean_start + 5 <= t < faulty_start]
    during = [v for t, v in ratio.items() if faulty_start + 6 <= t <= end]
    assert before and max(before) < 0.05
    assert not [t for t in bare if t < faulty_start]  # the caveat: no error series, no ratio
    assert during and min(during) > 0.9
    own_during = [own[t]["error_rate"] for t in range(int(faulty_start) + 1, int(end)) if t in own]
    assert own_during and min(own_during) == 1.0
    # rate() reads no stale samples (nothing dropped, nothing to query), and its [5s] window
    # is the lag: the first seconds of the faulty phase read the clean one.
    assert checked == PromSeries(ratio, 5.0, 0, ())
    lagging = [v for t, v in ratio.items() if faulty_start < t < faulty_start + checked.lag - 1]
    assert lagging and min(lagging) < 0.9


@pytest.mark.slow
async def test_real_prometheus_several_series_and_no_data(
    start_proxy: StartProxy, demo_upstream: str, start_prometheus: StartPrometheus
) -> None:
    rt = await start_proxy(demo_upstream)
    prom = await start_prometheus([rt.admin_url.removeprefix("http://")])
    now = time.time()
    async with aiohttp.ClientSession() as s:
        # `up` and `scrape_duration_seconds` exist for the target: two series by __name__.
        with pytest.raises(PrometheusQueryError, match=r"returned 2 series"):
            await range_query(s, prom, '{__name__=~"up|scrape_duration_seconds"}', now - 30, now)
        assert (
            await range_query(s, prom, 'chaosproxy_requests_total{code="999"}', now - 30, now) == {}
        )
        # 0/0 is NaN in PromQL: dropped, not a number.
        assert await range_query(s, prom, "up / 0 * 0", now - 30, now) == {}
        up = await range_query(s, prom, "up", now - 30, now)
        assert up and set(up.values()) == {1.0}


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
