"""range_query against a stand-in API for every answer shape (hostile ones included), and
against a real Prometheus scraping a real chaosproxy (slow)."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiohttp import web

from chaosproxy.experiment import prom_client
from chaosproxy.experiment.prom_client import (
    PrometheusQueryError,
    PrometheusUnreachable,
    range_query,
)
from chaosproxy.experiment.prom_series import PromSeries, series_query
from tests.conftest import StartProxy
from tests.experiment.prom_api import BARE_ERROR_RATIO, ERROR_RATIO, REQUESTS, Serve, api, matrix
from tests.experiment.prom_fixture import StartPrometheus, poll_until, start_prometheus

__all__ = ["start_prometheus"]  # the fixture, imported explicitly


async def test_one_series_becomes_second_to_value_without_nan_or_inf(start_upstream: Serve) -> None:
    seen: list[dict[str, str]] = []
    url = await start_upstream(
        api(
            matrix([[100, "1.5"], [101.0, "NaN"], [102, "+Inf"], [103.5, "2"], [104, "-Inf"]]),
            seen=seen,
        )
    )
    async with aiohttp.ClientSession() as s:
        got = await range_query(s, url + "/", REQUESTS, 100.0, 104.0, step=1.0)
    assert got == {100: 1.5, 103: 2.0}
    assert seen == [{"query": REQUESTS, "start": "100.000", "end": "104.000", "step": "1"}]


async def test_no_data_is_an_empty_dict(start_upstream: Serve) -> None:
    url = await start_upstream(api(matrix()))
    async with aiohttp.ClientSession() as s:
        assert await range_query(s, url, "absent_metric", 1.0, 2.0) == {}


async def test_several_series_is_an_error_naming_the_query_and_count(start_upstream: Serve) -> None:
    url = await start_upstream(api(matrix([[1, "1"]], [[1, "2"]], [[1, "3"]])))
    async with aiohttp.ClientSession() as s:
        with pytest.raises(PrometheusQueryError, match=r"query 'by_code' returned 3 series"):
            await range_query(s, url, "by_code", 1.0, 2.0)


async def test_a_rejected_query_carries_prometheus_own_message(start_upstream: Serve) -> None:
    answer = {"status": "error", "errorType": "bad_data", "error": 'parse error: unexpected "}"'}
    url = await start_upstream(api(answer, status=400))
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
    url = await start_upstream(api(matrix(weird)))
    not_a_series = await start_upstream(
        api({"status": "success", "data": {"resultType": "matrix", "result": ["x"]}})
    )
    values_not_a_list = await start_upstream(
        api(
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
    chatty = await start_upstream(api(long_error, status=422))
    async with aiohttp.ClientSession() as s:
        with pytest.raises(PrometheusUnreachable, match="without a Prometheus API answer"):
            await range_query(s, url + "/deep", "x", 1.0, 2.0)
        with pytest.raises(PrometheusQueryError) as e:
            await range_query(s, chatty, "x" * 10_000, 1.0, 2.0)
        assert len(str(e.value)) < 1000
        monkeypatch.setattr(prom_client, "MAX_BODY", 4096)
        with pytest.raises(PrometheusUnreachable, match="answer larger than 4,096 bytes"):
            await range_query(s, url + "/big", "x", 1.0, 2.0)


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
