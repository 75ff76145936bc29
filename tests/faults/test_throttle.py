"""The `throttle` fault: the body arrives at `rate`, in pieces of `chunk`."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from chaosproxy.common.clock import FakeClock
from chaosproxy.common.errors import ConfigError
from chaosproxy.faults import build
from chaosproxy.faults.base import Reply
from chaosproxy.faults.throttle import ThrottleFault
from tests.faults.conftest import StartProxy, Upstream, pattern
from tests.faults.fakes import FakeExchange, drive, run


def throttle(params: dict[str, object]) -> ThrottleFault:
    fault = build("throttle", params, "fault")
    assert isinstance(fault, ThrottleFault)
    return fault


def test_rate_accepts_units_per_second() -> None:
    f = throttle({"rate": "16KiB/s", "chunk": "2KiB"})
    assert (f.rate, f.chunk) == (16384.0, 2048)


def test_missing_rate_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"fault\.throttle\.rate: missing"):
        throttle({})


def test_bad_rate_names_key_and_value() -> None:
    with pytest.raises(ConfigError, match=r"fault\.throttle\.rate: expected a rate.*'fast'"):
        throttle({"rate": "fast"})


async def test_each_chunk_leaves_when_the_link_would_have_carried_it() -> None:
    clock = FakeClock()
    ex = FakeExchange(clock, upstream=(Reply(200, "OK", []), [b"x" * 4000]))
    task = asyncio.create_task(run(throttle({"rate": 1000, "chunk": 1000}), ex))
    seen = []
    for _ in range(4):
        await clock.wait_sleepers(1)  # waiting for the link to carry the next chunk
        seen.append(len(ex.sent_body))
        clock.advance(1.0)
    await task
    assert seen == [0, 1000, 2000, 3000] and len(ex.sent_body) == 4000


async def test_throttled_body_is_unchanged() -> None:
    clock = FakeClock()
    body = pattern(10_000)
    ex = FakeExchange(clock, upstream=(Reply(200, "OK", []), [body[:3000], body[3000:]]))
    task = asyncio.create_task(run(throttle({"rate": "1KiB/s", "chunk": 700}), ex))
    await drive(clock, task, 0.5)
    assert ex.sent_body == body


async def test_a_client_never_reads_faster_than_the_rate(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(upstream.url)
    rt.engine.add_rule([throttle({"rate": "64KiB/s"})])
    async with aiohttp.ClientSession() as s:
        t0 = time.monotonic()
        async with s.get(rt.proxy_url + "/bytes?n=65536") as r:
            body = await r.read()
        took = time.monotonic() - t0
    assert body == pattern(65536)
    # The last 1 KiB chunk leaves no earlier than 64 KiB / (64 KiB/s) after pacing began, which
    # is after t0. No upper bound: a loaded machine only ever makes it slower.
    assert took >= 1.0


async def test_headers_arrive_at_once_even_when_the_body_is_small(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    """Only the body is slow on a slow link: the status line does not wait for the first chunk.
    On a fake clock that stands still the pacing never lets a chunk go, yet the head arrives."""
    clock = FakeClock()
    rt = await start_proxy(upstream.url, clock=clock)
    rt.engine.add_rule([throttle({"rate": "1KiB/s", "chunk": "1KiB"})])
    async with aiohttp.ClientSession() as s, s.get(rt.proxy_url + "/bytes?n=2048") as r:
        assert r.status == 200  # the head is here; the first chunk still waits for the clock
        start = clock.monotonic()
        await clock.wait_sleepers(1, until=start + 1.0)
        assert r.content.total_bytes == 0
        clock.advance(1.0)  # the first KiB may go; the second waits for its second
        await clock.wait_sleepers(1, until=start + 2.0)
        clock.advance(1.0)
        body = await r.read()
    assert body == pattern(2048)
