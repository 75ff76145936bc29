"""The `pool_exhaustion` fault: a shared pool of slots, a FIFO queue, failure after a timeout."""

from __future__ import annotations

import asyncio
import collections
import json

import aiohttp
import pytest

from chaosproxy._clock import FakeClock
from chaosproxy.errors import ConfigError
from chaosproxy.faults import build
from chaosproxy.faults.pool_exhaustion import PoolExhaustionFault
from tests.faults.conftest import StartProxy, Upstream
from tests.faults.fakes import FakeExchange, run


def pool(params: dict[str, object]) -> PoolExhaustionFault:
    fault = build("pool_exhaustion", params, "fault")
    assert isinstance(fault, PoolExhaustionFault)
    return fault


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def test_size_is_required() -> None:
    with pytest.raises(ConfigError, match=r"fault\.pool_exhaustion\.size: missing"):
        pool({})


def test_status_only_goes_with_on_exhausted_error() -> None:
    with pytest.raises(ConfigError, match=r"fault\.pool_exhaustion\.status: only applies"):
        pool({"size": 1, "on_exhausted": "reset", "status": 503})


def test_state_reads_as_gauges() -> None:
    f = pool({"size": 4})
    assert (f.state.size, f.state.in_use, f.state.waiting) == (4, 0, 0)
    assert repr(f.state) == "<PoolState size=4 in_use=0 waiting=0>"


async def test_requests_beyond_size_queue_and_take_freed_slots_in_order() -> None:
    clock = FakeClock()
    f = pool({"size": 1, "hold": "1s", "queue_timeout": "5s"})
    exs = [FakeExchange(clock) for _ in range(3)]
    tasks = [asyncio.create_task(run(f, ex)) for ex in exs]
    await settle()
    assert (f.state.in_use, f.state.waiting) == (1, 2)
    clock.advance(1.0)
    await settle()
    assert exs[0].sent_status == 200 and exs[1].sent_status is None
    assert (f.state.in_use, f.state.waiting) == (1, 1)
    clock.advance(1.0)
    await settle()
    clock.advance(1.0)
    await asyncio.gather(*tasks)
    assert [ex.sent_status for ex in exs] == [200, 200, 200]
    assert (f.state.in_use, f.state.waiting) == (0, 0)


async def test_queue_timeout_fails_with_the_pool_error() -> None:
    clock = FakeClock()
    f = pool({"size": 1, "hold": "10s", "queue_timeout": "2s", "status": 503})
    holder, waiter = FakeExchange(clock), FakeExchange(clock)
    t1 = asyncio.create_task(run(f, holder))
    t2 = asyncio.create_task(run(f, waiter))
    await settle()
    clock.advance(2.0)
    await t2
    assert waiter.sent_status == 503 and waiter.upstream_calls == 0
    assert b"connection pool exhausted" in waiter.sent_body
    assert waiter.events[-1][1].startswith("exhausted")
    clock.advance(8.0)
    await t1
    assert f.state.in_use == 0


async def test_exhausted_pool_can_reset_instead() -> None:
    clock = FakeClock()
    f = pool({"size": 1, "hold": "10s", "queue_timeout": 0, "on_exhausted": "reset"})
    holder, late = FakeExchange(clock), FakeExchange(clock)
    t1 = asyncio.create_task(run(f, holder))
    await settle()
    await run(f, late)
    assert late.how_ended == "reset"
    t1.cancel()
    await asyncio.gather(t1, return_exceptions=True)


async def test_cancelled_holder_and_waiter_release_everything() -> None:
    clock = FakeClock()
    f = pool({"size": 1, "hold": "10s", "queue_timeout": "10s"})
    tasks = [asyncio.create_task(run(f, FakeExchange(clock))) for _ in range(3)]
    await settle()
    tasks[1].cancel()  # a waiter leaves
    tasks[0].cancel()  # the holder leaves: its slot goes to the last waiter
    await settle()
    assert (f.state.in_use, f.state.waiting) == (1, 0)
    tasks[2].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert (f.state.in_use, f.state.waiting) == (0, 0)


async def test_size_4_with_12_concurrent_slow_requests_queues_8_and_fails_4(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(upstream.url)
    f = pool({"size": 4, "hold": "500ms", "queue_timeout": "750ms"})
    rt.engine.add_rule([f])
    peak_waiting = 0

    async def watch() -> None:
        nonlocal peak_waiting
        while True:
            peak_waiting = max(peak_waiting, f.state.waiting)
            await asyncio.sleep(0.01)

    async def one(s: aiohttp.ClientSession) -> tuple[int, bytes]:
        async with s.get(rt.proxy_url + "/bytes?n=10") as r:
            return r.status, await r.read()

    watcher = asyncio.create_task(watch())
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as s:
        results = await asyncio.gather(*(one(s) for _ in range(12)))
    watcher.cancel()
    statuses = collections.Counter(status for status, _ in results)
    assert statuses == {200: 8, 500: 4}
    assert peak_waiting == 8
    failed = [json.loads(body) for status, body in results if status == 500]
    assert all("connection pool exhausted" in b["error"]["details"] for b in failed)
    assert (f.state.in_use, f.state.waiting) == (0, 0)


async def test_clients_that_disconnect_midway_leak_no_slot_and_no_task(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(upstream.url)
    f = pool({"size": 2, "hold": "5s", "queue_timeout": "5s"})
    rt.engine.add_rule([f], match=lambda req: req.path == "/bytes")
    async with aiohttp.ClientSession() as s, s.get(rt.proxy_url + "/status/200") as r:
        await r.read()  # the runtime's own lazily started tasks are running now
    baseline = len(asyncio.all_tasks())
    timeout = aiohttp.ClientTimeout(total=0.3)
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=conn) as s:
        results = await asyncio.gather(
            *(s.get(rt.proxy_url + "/bytes") for _ in range(5)), return_exceptions=True
        )
    assert all(isinstance(r, asyncio.TimeoutError) for r in results)
    async with asyncio.timeout(5):
        while f.state.in_use or f.state.waiting or len(asyncio.all_tasks()) > baseline:
            await asyncio.sleep(0.01)
    assert rt.load.inflight == 0
