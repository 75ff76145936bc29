"""The `pool_exhaustion` fault: a shared pool of slots, a FIFO queue, failure after a timeout."""

from __future__ import annotations

import asyncio
import collections
import json

import aiohttp
import pytest

from chaosproxy.common.clock import FakeClock
from chaosproxy.common.errors import ConfigError
from chaosproxy.common.events import RequestDone
from chaosproxy.faults import build
from chaosproxy.faults.pool_exhaustion import PoolExhaustionFault
from tests.faults.conftest import StartProxy, Upstream
from tests.faults.fakes import FakeExchange, run


def pool(params: dict[str, object]) -> PoolExhaustionFault:
    fault = build("pool_exhaustion", params, "fault")
    assert isinstance(fault, PoolExhaustionFault)
    return fault


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
    assert {g.name: g.value for g in f.gauges()} == {"pool_in_use": 0.0, "pool_waiting": 0.0}


async def test_requests_beyond_size_queue_and_take_freed_slots_in_order() -> None:
    clock = FakeClock()
    f = pool({"size": 1, "hold": "1s", "queue_timeout": "5s"})
    exs = [FakeExchange(clock) for _ in range(3)]
    tasks = [asyncio.create_task(run(f, ex)) for ex in exs]
    await clock.wait_sleepers(3)  # one holds its slot, two wait in line
    assert (f.state.in_use, f.state.waiting) == (1, 2)
    clock.advance(1.0)
    await tasks[0]
    await clock.wait_sleepers(1, until=clock.monotonic() + 1.0)  # the first in line holds it
    assert exs[0].sent_status == 200 and exs[1].sent_status is None
    assert (f.state.in_use, f.state.waiting) == (1, 1)
    clock.advance(1.0)
    await tasks[1]
    await clock.wait_sleepers(1, until=clock.monotonic() + 1.0)
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
    await clock.wait_sleepers(2)
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
    await clock.wait_sleepers(1)
    await run(f, late)
    assert late.how_ended == "reset"
    t1.cancel()
    await asyncio.gather(t1, return_exceptions=True)


async def test_cancelled_holder_and_waiter_release_everything() -> None:
    clock = FakeClock()
    f = pool({"size": 1, "hold": "10s", "queue_timeout": "20s"})
    tasks = [asyncio.create_task(run(f, FakeExchange(clock))) for _ in range(3)]
    await clock.wait_sleepers(3)
    tasks[1].cancel()  # a waiter leaves
    tasks[0].cancel()  # the holder leaves: its slot goes to the last waiter
    await asyncio.gather(tasks[0], tasks[1], return_exceptions=True)
    await clock.wait_sleepers(1, until=clock.monotonic() + 10.0)  # it holds the slot now
    assert (f.state.in_use, f.state.waiting) == (1, 0)
    tasks[2].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert (f.state.in_use, f.state.waiting) == (0, 0)


async def test_size_4_with_12_concurrent_slow_requests_queues_8_and_fails_4(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    """On the proxy's own (fake) clock: how many fail follows from the timings, not from how
    fast a loaded machine gets 12 connections through."""
    clock = FakeClock()
    rt = await start_proxy(upstream.url, clock=clock)
    f = pool({"size": 4, "hold": "500ms", "queue_timeout": "750ms"})
    rt.engine.add_rule([f])
    ended: list[RequestDone] = []
    reached: dict[int, asyncio.Event] = {}

    def on_done(ev: RequestDone) -> None:
        ended.append(ev)
        reached.setdefault(len(ended), asyncio.Event()).set()

    async def until_ended(n: int) -> None:
        """The proxy finished n exchanges (slots released, events emitted)."""
        await reached.setdefault(n, asyncio.Event()).wait()

    rt.bus.subscribe(RequestDone, on_done)

    async def one(s: aiohttp.ClientSession) -> tuple[int, bytes]:
        async with s.get(rt.proxy_url + "/bytes?n=10") as r:
            return r.status, await r.read()

    t0 = clock.monotonic()
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as s:
        requests = [asyncio.create_task(one(s)) for _ in range(12)]
        await clock.wait_sleepers(4, until=t0 + 0.5)  # four hold a slot
        await clock.wait_sleepers(8, until=t0 + 0.75)  # eight wait in line
        assert (f.state.in_use, f.state.waiting) == (4, 8)
        clock.advance(0.5)  # the four finish; their slots pass to the first four in line
        await clock.wait_sleepers(4, until=t0 + 1.0)
        clock.advance(0.25)  # the last four waited 750 ms for a slot: pool error
        await until_ended(8)
        assert sorted(e.status for e in ended) == [200] * 4 + [500] * 4
        clock.advance(0.25)
        await until_ended(12)
        results = await asyncio.gather(*requests)
    statuses = collections.Counter(status for status, _ in results)
    assert statuses == {200: 8, 500: 4}
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
