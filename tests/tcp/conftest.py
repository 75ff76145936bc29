"""TCP proxy fixtures: a real upstream server (asyncio streams, loopback, port 0) that records
what it saw, and a registry of TCP proxies with an engine in front of it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from chaosproxy.common.clock import SYSTEM_CLOCK, Clock
from chaosproxy.common.events import EventBus, FaultInjected
from chaosproxy.engine.core import Engine
from chaosproxy.tcp.listener import TcpProxy
from chaosproxy.tcp.registry import TcpProxies

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Upstream:
    """A server on 127.0.0.1:0; `accepted` counts connections, `received` the bytes of each,
    `arrivals` (loop time, bytes) of every read; `connected` is set at each accept."""

    port: int = 0
    accepted: int = 0
    received: list[bytearray] = field(default_factory=list)
    arrivals: list[tuple[float, bytes]] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    got: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def wait_bytes(self, n: int, conn: int = 0) -> bytes:
        async with self.got:
            await self.got.wait_for(
                lambda: len(self.received) > conn and len(self.received[conn]) >= n
            )
        return bytes(self.received[conn])


async def echo(up: Upstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echo every read back, record it; close after the client's end of stream."""
    loop = asyncio.get_running_loop()
    up.accepted += 1
    mine = bytearray()
    up.received.append(mine)
    up.writers.append(writer)
    up.connected.set()
    try:
        while data := await reader.read(65536):
            up.arrivals.append((loop.time(), data))
            mine += data
            async with up.got:
                up.got.notify_all()
            writer.write(data)
            await writer.drain()
        writer.close()
    except (ConnectionError, OSError):
        writer.close()


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    up = Upstream()
    server = await asyncio.start_server(lambda r, w: echo(up, r, w), "127.0.0.1", 0)
    up.port = server.sockets[0].getsockname()[1]
    yield up
    server.close()
    for w in up.writers:
        w.close()


@dataclass
class Rig:
    engine: Engine
    bus: EventBus
    proxies: TcpProxies
    faults: list[FaultInjected]

    def proxy(self, name: str) -> TcpProxy:
        return next(p for p in self.proxies.proxies() if p.name == name)

    async def connect(self, name: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        address = self.proxies.get(name).address
        assert address is not None
        host, port = address.rsplit(":", 1)
        return await asyncio.open_connection(host, int(port))


MakeRig = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def make_rig() -> AsyncIterator[MakeRig]:
    rigs: list[Rig] = []

    async def make(clock: Clock = SYSTEM_CLOCK) -> Rig:
        bus = EventBus()
        bus.bind(asyncio.get_running_loop())
        faults: list[FaultInjected] = []
        bus.subscribe(FaultInjected, faults.append)
        engine = Engine(bus, clock)
        proxies = TcpProxies(engine, bus, connect_timeout=5.0)
        proxies.start()
        rig = Rig(engine, bus, proxies, faults)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        await rig.proxies.close()


@pytest.fixture
async def rig(make_rig: MakeRig, upstream: Upstream) -> Rig:
    """A rig with proxy `db` in front of the echo upstream."""
    r = await make_rig()
    await r.proxies.add("db", "127.0.0.1:0", upstream.address)
    return r
