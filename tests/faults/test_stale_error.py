"""The `stale_error` fault: an error response to a URL keeps being served for `ttl`."""

from __future__ import annotations

import aiohttp
import pytest

from chaosproxy.common.clock import FakeClock
from chaosproxy.common.errors import ConfigError
from chaosproxy.faults import build
from chaosproxy.faults.base import Reply
from chaosproxy.faults.stale_error import StaleErrorFault
from tests.faults.conftest import StartProxy, Upstream
from tests.faults.fakes import FakeExchange, run


def stale(params: dict[str, object]) -> StaleErrorFault:
    fault = build("stale_error", params, "fault")
    assert isinstance(fault, StaleErrorFault)
    return fault


def origin(status: int, body: bytes = b"origin") -> tuple[Reply, list[bytes]]:
    return Reply(status, "", [("Content-Type", "text/html"), ("Content-Length", "6")]), [body]


def test_zero_ttl_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"fault\.stale_error\.ttl: must be > 0"):
        stale({"ttl": 0})


async def test_real_upstream_error_is_served_again_after_the_origin_recovered() -> None:
    clock, f = FakeClock(), stale({"ttl": "1m"})
    await run(f, FakeExchange(clock, upstream=origin(500, b"broken")))
    clock.advance(30)
    ex = FakeExchange(clock, upstream=origin(200))
    await run(f, ex)
    assert (ex.sent_status, ex.sent_body, ex.upstream_calls) == (500, b"broken", 0)
    assert ("Content-Type", "text/html") in ex.sent_headers and ("Age", "30") in ex.sent_headers
    assert ex.events == [("stale_error", "status=500 age=30")]


async def test_injected_error_is_cached_through_respond() -> None:
    clock, f = FakeClock(), stale({"ttl": "1m"})
    injected = FakeExchange(clock)
    await f.apply(injected, lambda: injected.respond(503, b"injected", [("X-A", "1")]))
    ex = FakeExchange(clock)
    await run(f, ex)
    assert (ex.sent_status, ex.sent_body) == (503, b"injected") and ("X-A", "1") in ex.sent_headers


async def test_success_is_not_cached() -> None:
    clock, f = FakeClock(), stale({"ttl": "1m"})
    await run(f, FakeExchange(clock, upstream=origin(200)))
    ex = FakeExchange(clock, upstream=origin(200, b"second"))
    await run(f, ex)
    assert ex.sent_body == b"second" and ex.upstream_calls == 1


async def test_cached_error_expires_after_ttl() -> None:
    clock, f = FakeClock(), stale({"ttl": "10s"})
    await run(f, FakeExchange(clock, upstream=origin(500)))
    clock.advance(10)
    ex = FakeExchange(clock, upstream=origin(200))
    await run(f, ex)
    assert ex.sent_status == 200


async def test_other_urls_are_not_affected() -> None:
    clock, f = FakeClock(), stale({"ttl": "1m"})
    await run(f, FakeExchange(clock, path="/a", upstream=origin(500)))
    other = FakeExchange(clock, path="/a", query_string="page=2", upstream=origin(200))
    await run(f, other)
    assert other.sent_status == 200


async def test_client_keeps_getting_the_real_error_after_the_origin_recovered(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(upstream.url)
    rt.engine.add_rule([stale({"ttl": "1m"})])
    upstream.status = 503
    async with aiohttp.ClientSession() as s:
        async with s.get(rt.proxy_url + "/flip") as r:
            first = await r.read()
        upstream.status = 200
        async with s.get(rt.proxy_url + "/flip") as r:
            again = await r.read()
        assert (r.status, again) == (503, first) and "Age" in r.headers
        async with s.get(rt.proxy_url + "/flip?fresh=1") as r:
            assert r.status == 200
    assert upstream.hits == ["/flip", "/flip?fresh=1"]


async def test_injected_error_stays_after_its_rule_is_gone(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(upstream.url)
    cache = stale({"ttl": "1m"})
    rule = rt.engine.add_rule([cache, build("error", {"status": 500, "body": "down"}, "fault")])
    async with aiohttp.ClientSession() as s:
        async with s.get(rt.proxy_url + "/bytes") as r:
            assert (r.status, await r.read()) == (500, b"down")
        rt.engine.remove_rule(rule.id)
        rt.engine.add_rule([cache])
        async with s.get(rt.proxy_url + "/bytes") as r:
            assert (r.status, await r.read()) == (500, b"down")
            assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert upstream.hits == []
