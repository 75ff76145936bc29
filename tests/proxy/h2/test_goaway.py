"""The `goaway` fault on a real HTTP/2 connection: the GOAWAY frames and their last stream ids
as a frame-level client reads them, and what a grpcio client makes of a drain and of an abrupt
GOAWAY (calls in flight complete and the channel reconnects; a refused call retried or
UNAVAILABLE)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
import pytest
from hyperframe.frame import HeadersFrame, RstStreamFrame

from chaosproxy.common.events import RequestDone
from chaosproxy.engine.matching import RequestView
from chaosproxy.faults import build
from chaosproxy.process.runtime import Runtime
from tests.conftest import StartProxy
from tests.proxy.h2.conftest import CHANNEL_OPTIONS, SERVICE, EchoService, Seen
from tests.proxy.h2.support_raw import FrameClient, grpc_message

REFUSED_STREAM, ENHANCE_YOUR_CALM = 0x7, 0xB
LARGEST = 2**31 - 1
# grpcio's defaults: retries on, so a call refused before it was processed goes again
RETRYING = [("grpc.enable_http_proxy", 0)]


@dataclass
class Held:
    """A grpcio server whose `Held` calls wait for `release`; `Unary` and the rest echo."""

    echo: EchoService
    url: str
    release: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: Seen = field(default_factory=Seen)


@pytest.fixture
async def held() -> AsyncIterator[Held]:
    h = Held(EchoService(), "")

    async def wait(req: bytes, ctx: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        h.arrived.add(req)
        await h.release.wait()
        return b"released:" + req

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            h.echo.handler(),
            grpc.method_handlers_generic_handler(
                SERVICE, {"Held": grpc.unary_unary_rpc_method_handler(wait)}
            ),
        )
    )
    h.url = f"http://127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    yield h
    h.release.set()
    await server.stop(None)


class Counting:
    """A TCP relay in front of the proxy that counts the connections a client opens."""

    def __init__(self, port: int) -> None:
        self.port, self.opened = port, 0
        self.server: asyncio.Server | None = None
        self.pipes: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> str:
        server = self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return f"127.0.0.1:{server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for t in self.pipes:
            t.cancel()

    async def _relay(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.opened += 1
        ur, uw = await asyncio.open_connection("127.0.0.1", self.port)
        for src, dst in ((r, uw), (ur, w)):
            t = asyncio.ensure_future(_pipe(src, dst))
            self.pipes.add(t)


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    except ConnectionError:
        pass
    finally:
        dst.close()


def on(method: str, times: int | None = None) -> Callable[[RequestView], bool]:
    """A match on one gRPC method; with `times`, only its first `times` calls."""
    left = [times]

    def match(v: RequestView) -> bool:
        if v.path != f"/{SERVICE}/{method}":
            return False
        if left[0] is None:
            return True
        left[0] -= 1
        return left[0] >= 0

    return match


async def proxy_with(
    start_proxy: StartProxy, url: str, params: dict[str, object], method: str, **kw: Any
) -> tuple[Runtime, Seen]:
    rt = await start_proxy(url)
    rt.engine.add_rule([build("goaway", params, "f")], match=on(method, **kw))
    done = Seen()
    rt.bus.subscribe(RequestDone, done.add)
    return rt, done


async def test_graceful_two_goaways_then_the_stream_in_flight_finishes(
    held: Held, start_proxy: StartProxy
) -> None:
    """GOAWAY(2^31-1), then GOAWAY(1): stream 1 (the one the fault fired on, held upstream)
    still finishes; stream 3, opened after the second GOAWAY, is refused (REFUSED_STREAM);
    the connection closes once stream 1 ended."""
    rt, _ = await proxy_with(start_proxy, held.url, {"interval": "100ms"}, "Held")
    client = await FrameClient.open(rt.proxy_port)
    try:
        async with asyncio.timeout(30):  # a guard against a hang, not a measure
            first = client.call("Held", grpc_message(b"a"))
            await client.until(lambda _: len(client.goaways()) == 2)
            g1, g2 = client.goaways()
            assert (g1.last_stream_id, g1.error_code) == (LARGEST, 0)
            assert (g2.last_stream_id, g2.error_code) == (first, 0)
            late = client.call("Unary", grpc_message(b"b"))
            frames = await client.ended(late)
            [rst] = frames
            assert isinstance(rst, RstStreamFrame) and rst.error_code == REFUSED_STREAM
            held.release.set()
            frames = await client.ended(first)
            trailers = [client.headers[id(f)] for f in frames if isinstance(f, HeadersFrame)][-1]
            assert trailers["grpc-status"] == "0"
            await client.until_eof()
    finally:
        client.close()
    assert client.eof
    assert held.echo.calls == 0  # the refused stream never reached the service


async def test_abrupt_goaway_names_the_stream_before_and_closes(
    held: Held, start_proxy: StartProxy
) -> None:
    """Stream 1 in flight, stream 3 fires the fault: GOAWAY(last 1, ENHANCE_YOUR_CALM), then
    the connection closes; stream 3 never reached the service."""
    rt, _ = await proxy_with(
        start_proxy, held.url, {"mode": "abrupt", "code": "ENHANCE_YOUR_CALM"}, "Unary"
    )
    client = await FrameClient.open(rt.proxy_port)
    try:
        async with asyncio.timeout(30):
            first = client.call("Held", grpc_message(b"a"))
            await held.arrived.until(1)
            trigger = client.call("Unary", grpc_message(b"b"))
            await client.until_eof()
    finally:
        client.close()
    [g] = client.goaways()
    assert (g.last_stream_id, g.error_code) == (first, ENHANCE_YOUR_CALM)
    assert trigger > g.last_stream_id
    assert held.echo.calls == 0


async def test_grpcio_drain_calls_in_flight_complete_and_the_channel_reconnects(
    held: Held, start_proxy: StartProxy
) -> None:
    rt, done = await proxy_with(start_proxy, held.url, {"interval": "100ms"}, "Held")
    relay = Counting(rt.proxy_port)
    async with relay as target, grpc.aio.insecure_channel(target, options=RETRYING) as ch:
        in_flight = asyncio.ensure_future(ch.unary_unary(f"/{SERVICE}/Held")(b"a"))
        await held.arrived.until(1)
        assert await ch.unary_unary(f"/{SERVICE}/Unary")(b"b") == b"echo:b"
        held.release.set()
        assert await in_flight == b"released:a"
        assert await ch.unary_unary(f"/{SERVICE}/Unary")(b"c") == b"echo:c"
    await done.until(3)
    assert [d.status for d in done] == [200, 200, 200]
    assert relay.opened == 2  # the drained connection, then a new one


async def test_grpcio_abrupt_goaway_is_retried_transparently(
    held: Held, start_proxy: StartProxy
) -> None:
    """The refused call was never processed: grpcio (retries on, its default) sends it again
    on a new connection; the service sees it once."""
    rt, done = await proxy_with(start_proxy, held.url, {"mode": "abrupt"}, "Unary", times=1)
    relay = Counting(rt.proxy_port)
    async with relay as target, grpc.aio.insecure_channel(target, options=RETRYING) as ch:
        assert await ch.unary_unary(f"/{SERVICE}/Unary")(b"x") == b"echo:x"
    assert held.echo.calls == 1
    assert relay.opened == 2  # the retry went on a new connection
    await done.until(2)
    assert [(d.status, d.injected) for d in done] == [(0, True), (200, False)]


async def test_grpcio_abrupt_goaway_without_retries_is_unavailable(
    held: Held, start_proxy: StartProxy
) -> None:
    rt, _ = await proxy_with(start_proxy, held.url, {"mode": "abrupt"}, "Unary")
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{rt.proxy_port}", options=CHANNEL_OPTIONS
    ) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await ch.unary_unary(f"/{SERVICE}/Unary")(b"x")
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert held.echo.calls == 0
