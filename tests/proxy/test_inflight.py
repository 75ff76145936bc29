"""Requests in flight (the `chaosproxy_inflight_requests` gauge and the load signal that
`when: {inflight_above: N}` reads) are exact: counted from the moment the proxy has read a
request until it is answered, whatever the admin API starts, replaces or stops meanwhile."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from chaosproxy.common.events import RequestDone
from chaosproxy.process.runtime import Runtime
from tests.admin.conftest import call
from tests.conftest import StartProxy
from tests.proxy.rawhttp import _host_port, read_head, reset

StartUpstream = Callable[[web.Application], Awaitable[str]]


@dataclass
class Held:
    """An upstream that holds every request until `release` is set."""

    arrived: int = 0
    target: int = 0
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        async def hold(request: web.Request) -> web.Response:
            self.arrived += 1
            if self.arrived >= self.target:
                self.reached.set()
            await self.release.wait()
            return web.Response(text=request.path)

        app = web.Application()
        app.router.add_get("/{tail:.*}", hold)
        return app

    async def wait_for(self, n: int) -> None:
        self.target = n
        if self.arrived < n:
            self.reached.clear()
            await self.reached.wait()


@pytest.fixture
async def held(start_upstream: StartUpstream) -> AsyncIterator[tuple[Held, str]]:
    h = Held()
    url = await start_upstream(h.app())
    yield h, url
    h.release.set()


async def gauge(rt: Runtime) -> float:
    _, text = await call(rt, "GET", "/metrics")
    m = re.search(r"^chaosproxy_inflight_requests (\S+)$", text, re.M)
    assert m is not None
    return float(m.group(1))


async def pipelined(
    url: str, paths: list[str]
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Several requests in one write on one connection (HTTP/1.1 pipelining): the proxy reads
    them all at once and answers them in turn."""
    host, port = _host_port(url)
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"".join(f"GET {p} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for p in paths))
    await writer.drain()
    return reader, writer


async def read_answers(reader: asyncio.StreamReader, n: int) -> list[int]:
    statuses = []
    for _ in range(n):
        status, headers = await read_head(reader)
        length = int(dict((k.lower(), v) for k, v in headers)["content-length"])
        await reader.readexactly(length)
        statuses.append(status)
    return statuses


CHURN = [
    ("POST", "/scenarios/post-deploy-breakage/start", None),
    ("POST", "/scenarios/slow-network-3g/start", {"replace": True}),
    ("POST", "/scenarios/slow-network-3g/start", {"replace": True}),
    ("POST", "/rules", {"fault": {"error": {"status": 500}}}),
    ("POST", "/scenarios/stop", None),
    ("DELETE", "/rules", None),
    ("POST", "/scenarios/peak-traffic-spikes/start", None),
    ("POST", "/reset", None),
]


async def test_in_flight_stays_exact_while_scenarios_churn(
    held: tuple[Held, str], start_proxy: StartProxy
) -> None:
    h, up = held
    rt = await start_proxy(up, reload_interval=0)
    # Two requests queued on one connection behind a third the upstream holds, and five more
    # held on connections of their own: eight requests read by the proxy, none answered.
    reader, writer = await pipelined(rt.proxy_url, ["/p1", "/p2", "/p3"])
    await h.wait_for(1)
    async with aiohttp.ClientSession() as s:

        async def get(i: int) -> int:
            async with s.get(f"{rt.proxy_url}/c{i}") as r:
                await r.read()
                return r.status

        others = [asyncio.ensure_future(get(i)) for i in range(5)]
        await h.wait_for(6)
        readings = []
        for method, path, body in CHURN:
            status, _ = await call(rt, method, path, body)
            assert status in (200, 201), (method, path, status)
            readings.append((path, rt.load.inflight, await gauge(rt)))
        assert readings == [(path, 8, 8.0) for _, path, _ in CHURN]
        h.release.set()
        assert await asyncio.gather(*others) == [200] * 5
        assert await read_answers(reader, 3) == [200, 200, 200]
    writer.close()
    assert (rt.load.inflight, await gauge(rt)) == (0, 0.0)


async def test_requests_queued_behind_another_count_as_in_flight(
    held: tuple[Held, str], start_proxy: StartProxy
) -> None:
    h, up = held
    rt = await start_proxy(up, reload_interval=0)
    reader, writer = await pipelined(rt.proxy_url, ["/a", "/b", "/c"])
    await h.wait_for(1)
    assert (rt.load.inflight, await gauge(rt)) == (3, 3.0)
    h.release.set()
    assert await read_answers(reader, 3) == [200, 200, 200]
    writer.close()
    assert rt.load.inflight == 0


async def test_requests_read_but_never_handled_leave_with_their_connection(
    held: tuple[Held, str], start_proxy: StartProxy
) -> None:
    h, up = held
    rt = await start_proxy(up, reload_interval=0)
    done = asyncio.Event()
    rt.bus.subscribe(RequestDone, lambda ev: done.set())
    _, writer = await pipelined(rt.proxy_url, ["/a", "/b", "/c"])
    await h.wait_for(1)
    reset(writer)  # the client is gone: /a is cancelled, /b and /c were never handled
    await done.wait()  # /a's handler ended (after the connection's queued requests left)
    assert (rt.load.inflight, await gauge(rt)) == (0, 0.0)
