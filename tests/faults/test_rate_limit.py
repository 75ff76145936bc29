"""The `rate_limit` fault: a token bucket; over the limit, 429 with Retry-After."""

from __future__ import annotations

import json

import aiohttp
import pytest

from chaosproxy.common.clock import FakeClock
from chaosproxy.common.errors import ConfigError
from chaosproxy.faults import build
from chaosproxy.faults.rate_limit import RateLimitFault, TokenBucket
from tests.faults.conftest import StartProxy, Upstream
from tests.faults.fakes import FakeExchange, run


def rate_limit(params: dict[str, object]) -> RateLimitFault:
    fault = build("rate_limit", params, "fault")
    assert isinstance(fault, RateLimitFault)
    return fault


def test_rps_is_required() -> None:
    with pytest.raises(ConfigError, match=r"fault\.rate_limit\.rps: missing"):
        rate_limit({})


def test_burst_defaults_to_one_second_of_requests() -> None:
    assert rate_limit({"rps": 2.5}).burst == 3


def test_bucket_admits_the_burst_then_refills_at_rps() -> None:
    bucket = TokenBucket(rps=2, burst=3)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5) == 0.0


async def test_over_the_limit_answers_429_with_retry_after_rounded_up() -> None:
    clock = FakeClock()
    f = rate_limit({"rps": 0.4, "burst": 1})
    first, second = FakeExchange(clock), FakeExchange(clock)
    await run(f, first)
    await run(f, second)
    assert first.sent_status == 200
    assert second.sent_status == 429 and second.upstream_calls == 0
    assert ("Retry-After", "3") in second.sent_headers  # 2.5 s rounds up


async def test_tokens_come_back_with_time() -> None:
    clock = FakeClock()
    f = rate_limit({"rps": 1, "burst": 1})
    await run(f, FakeExchange(clock))
    clock.advance(1.0)
    ex = FakeExchange(clock)
    await run(f, ex)
    assert ex.sent_status == 200


async def test_client_over_the_limit_gets_429_with_retry_after(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(upstream.url)
    rt.engine.add_rule([rate_limit({"rps": 0.1, "burst": 2})])
    async with aiohttp.ClientSession() as s:
        statuses = []
        for _ in range(3):
            async with s.get(rt.proxy_url + "/bytes?n=1") as r:
                statuses.append(r.status)
                body = await r.read()
    assert statuses == [200, 200, 429]
    assert r.headers["Retry-After"] == "10"
    assert json.loads(body)["error"]["code"] == 429
    assert len(upstream.hits) == 2
