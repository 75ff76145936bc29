"""The `hang` fault: nothing is sent until the duration ends (or the client gives up)."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from chaosproxy.common.clock import FakeClock
from chaosproxy.common.errors import ConfigError
from chaosproxy.faults import build
from chaosproxy.faults.hang import HangFault
from tests.faults.conftest import StartProxy, Upstream
from tests.faults.fakes import FakeExchange, run


def hang(params: dict[str, object]) -> HangFault:
    fault = build("hang", params, "fault")
    assert isinstance(fault, HangFault)
    return fault


def test_status_without_then_error_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"fault\.hang\.status: only applies with then: error"):
        hang({"duration": "1s", "status": 503})


async def test_hang_sends_nothing_until_the_duration_ends() -> None:
    clock = FakeClock()
    ex = FakeExchange(clock)
    task = asyncio.create_task(run(hang({"duration": "5s", "then": "error"}), ex))
    await clock.wait_sleepers(1)
    clock.advance(4.9)
    assert clock.sleepers == 1 and ex.sent_status is None  # still asleep: nothing sent
    clock.advance(0.1)
    await task
    assert ex.sent_status == 504 and ex.upstream_calls == 0


@pytest.mark.parametrize(("then", "ended"), [("close", "close"), ("reset", "reset")])
async def test_hang_then_ends_the_connection_as_asked(then: str, ended: str) -> None:
    clock = FakeClock()
    ex = FakeExchange(clock)
    task = asyncio.create_task(run(hang({"duration": "1s", "then": then}), ex))
    await clock.wait_sleepers(1)
    clock.advance(1.0)
    await task
    assert ex.how_ended == ended and ex.sent_status is None


async def test_hang_without_duration_waits_until_cancelled_not_on_a_timer() -> None:
    clock = FakeClock()
    ex = FakeExchange(clock)
    task = asyncio.create_task(run(hang({}), ex))
    await ex.acted.wait()  # it recorded the hang, then blocked
    assert clock.sleepers == 0  # no timer of any length: only the client leaving ends it
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ex.upstream_calls == 0 and ex.sent_status is None


async def test_client_times_out_while_the_proxy_hangs(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(upstream.url)
    rt.engine.add_rule([hang({})])
    timeout = aiohttp.ClientTimeout(total=0.3)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        with pytest.raises(asyncio.TimeoutError):
            async with s.get(rt.proxy_url + "/bytes") as r:
                await r.read()
    assert upstream.hits == []


async def test_client_gives_up_and_the_hang_ends(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(upstream.url)
    rt.engine.add_rule([hang({})])
    timeout = aiohttp.ClientTimeout(total=0.2)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        with pytest.raises(asyncio.TimeoutError):
            await s.get(rt.proxy_url + "/bytes")
    async with asyncio.timeout(5):
        while rt.load.inflight:  # the handler was cancelled when the client left
            await asyncio.sleep(0.01)


async def test_hang_then_error_answers_504_after_the_duration(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(upstream.url)
    rt.engine.add_rule([hang({"duration": "200ms", "then": "error"})])
    async with aiohttp.ClientSession() as s, s.get(rt.proxy_url + "/bytes") as r:
        body = json.loads(await r.read())
    assert r.status == 504 and body["error"]["code"] == 504


async def test_hang_then_close_gives_an_empty_reply(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(upstream.url)
    rt.engine.add_rule([hang({"duration": "100ms", "then": "close"})])
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await s.get(rt.proxy_url + "/bytes")
