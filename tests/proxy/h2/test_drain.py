"""Streams in flight survive every graceful close, on both sides of the proxy: an upstream's
graceful stop (a grpcio server's `stop(grace)`, and a GOAWAY whose last stream id is below a
stream the proxy sent), a stop of the proxy (GOAWAY 2^31-1, a PING, GOAWAY with the last
stream id, then the close), and a client's GOAWAY. Real sockets, real grpcio servers and
clients, frame-level clients and servers where grpcio hides the frames."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import DataReceived, RequestReceived, SettingsAcknowledged, StreamEnded
from h2.settings import SettingCodes
from hyperframe.frame import GoAwayFrame, HeadersFrame, PingFrame, RstStreamFrame, SettingsFrame

from chaosproxy.common.events import RequestDone
from tests.conftest import StartProxy
from tests.proxy.h2.conftest import CHANNEL_OPTIONS, SERVICE, EchoService, Seen
from tests.proxy.h2.support_raw import FrameClient, RawH2, grpc_message, reset_code, trailers_of

LARGEST = 2**31 - 1
REFUSED_STREAM = 0x7
MESSAGES = 20  # of the held server stream: 320 KiB, past the proxy's stream window (256 KiB)
PAYLOAD = 16 * 1024


# ---------------------------------------------------------------- a grpcio server that holds


@dataclass
class Held:
    """A grpcio server: `Held` (unary) and `Stream` (server streaming: one message, then the
    rest once `release` is set) wait; the Echo methods answer at once."""

    server: grpc.aio.Server
    port: int
    echo: EchoService
    release: asyncio.Event
    arrived: Seen


async def held_server() -> Held:
    echo, release, arrived = EchoService(), asyncio.Event(), Seen()

    async def held(req: bytes, ctx: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        arrived.add(req)
        await release.wait()
        return b"released:" + req

    async def stream(req: bytes, ctx: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[bytes]:
        arrived.add(req)
        yield b"%02d" % 0 + bytes(PAYLOAD - 2)
        await release.wait()
        for i in range(1, MESSAGES):
            yield b"%02d" % i + bytes(PAYLOAD - 2)

    rpcs = {
        "Held": grpc.unary_unary_rpc_method_handler(held),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
    }
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (echo.handler(), grpc.method_handlers_generic_handler(SERVICE, rpcs))
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return Held(server, port, echo, release, arrived)


@pytest.fixture
async def held() -> AsyncIterator[Held]:
    h = await held_server()
    yield h
    h.release.set()
    await h.server.stop(None)


# ---------------------------------------------------------------- a TCP relay that reads frames


@dataclass
class Relayed:
    """One connection the proxy opened through the relay: the upstream it went to, the GOAWAY
    frames the upstream sent on it (last stream id, code), whether it is closed."""

    target: int
    goaways: list[tuple[int, int]] = field(default_factory=list)
    closed: bool = False


class UpstreamRelay:
    """Between the proxy and its upstreams, as a load balancer is: each new connection goes to
    `target` (a deploy moves it to the new instance); the upstream's frames are read on the
    way (9-byte headers), so a test can wait for its GOAWAY instead of guessing a delay."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.conns: list[Relayed] = []
        self.changed = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.pipes: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for t in self.pipes:
            t.cancel()

    async def until(self, cond: Callable[[], bool]) -> None:
        while not cond():
            self.changed.clear()
            await self.changed.wait()

    def _note(self) -> None:
        self.changed.set()

    async def _relay(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        c = Relayed(self.target)
        self.conns.append(c)
        self._note()
        ur, uw = await asyncio.open_connection("127.0.0.1", c.target)
        for t in (_pipe(r, uw, None, c, self._note), _pipe(ur, w, bytearray(), c, self._note)):
            task = asyncio.ensure_future(t)
            self.pipes.add(task)


async def _pipe(
    src: asyncio.StreamReader,
    dst: asyncio.StreamWriter,
    frames: bytearray | None,
    c: Relayed,
    note: Callable[[], None],
) -> None:
    try:
        while data := await src.read(65536):
            if frames is not None:
                frames += data
                _goaways(frames, c)
                note()
            dst.write(data)
            await dst.drain()
    except ConnectionError:
        pass
    finally:
        dst.close()
        c.closed = True
        note()


def _goaways(buf: bytearray, c: Relayed) -> None:
    """Whole frames off the front of `buf`; each GOAWAY's last stream id and code noted."""
    while len(buf) >= 9:
        length = int.from_bytes(buf[:3], "big")
        if len(buf) < 9 + length:
            return
        if buf[3] == 0x7:
            payload = buf[9 : 9 + length]
            last = int.from_bytes(payload[:4], "big") & LARGEST
            c.goaways.append((last, int.from_bytes(payload[4:8], "big")))
        del buf[: 9 + length]


# ---------------------------------------------------------------- (a) an upstream's graceful stop


async def test_upstream_graceful_stop_lets_the_call_in_flight_finish(
    start_proxy: StartProxy,
) -> None:
    """A server-streaming call is in flight when its grpcio server stops with grace (GOAWAY
    2^31-1 and a PING, GOAWAY with the last stream id, the streams finish, then the close): the
    call gets every message and OK. The next call goes on a new upstream connection, which the
    relay sends to the new instance, and succeeds; the client's connection never broke."""
    old, new = await held_server(), await held_server()
    relay = UpstreamRelay(old.port)
    stopping: asyncio.Future[None] | None = None
    try:
        async with relay as url:
            rt = await start_proxy(url)
            target = f"127.0.0.1:{rt.proxy_port}"
            async with grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS) as ch:
                call = ch.unary_stream(f"/{SERVICE}/Stream")(b"go")
                first = await call.read()
                assert isinstance(first, bytes) and first[:2] == b"00"
                relay.target = new.port  # the deploy: new connections reach the new instance
                stopping = asyncio.ensure_future(old.server.stop(grace=30))
                conn = relay.conns[0]
                # its last GOAWAY (below 2^31-1) came, or the connection is gone
                await relay.until(lambda: conn.closed or any(g < LARGEST for g, _ in conn.goaways))
                old.release.set()
                got = [first]
                while isinstance(m := await call.read(), bytes):
                    got.append(m)
                assert await call.code() == grpc.StatusCode.OK
                assert [m[:2] for m in got] == [b"%02d" % i for i in range(MESSAGES)]
                assert all(len(m) == PAYLOAD for m in got)
                assert conn.goaways[0] == (LARGEST, 0)  # grpcio's drain, as the proxy saw it
                await stopping
                assert await ch.unary_unary(f"/{SERVICE}/Unary")(b"next") == b"echo:next"
            assert new.echo.calls == 1
            assert [c.target for c in relay.conns] == [old.port, new.port]
    finally:
        for h in (old, new):
            h.release.set()
        if stopping is not None:
            await stopping
        await new.server.stop(None)


# ---------------------------------------------------------------- a frame-level upstream


class GoawayUpstream:
    """An HTTP/2 upstream (h2's state machine, server side) that answers each gRPC call with
    `ok:` and the bytes it received. On its first connection it holds stream 1 until
    `release`, and when stream 3 arrives (once `refuse_after` of its DATA did) it writes
    GOAWAY(last stream id 1) as a raw frame and leaves stream 3 unprocessed, as a server
    draining does; its later connections answer everything."""

    def __init__(self, refuse_after: int = 0) -> None:
        self.refuse_after = refuse_after
        self.release = asyncio.Event()
        self.connections = 0
        self.received: dict[tuple[int, int], bytes] = {}  # (connection, stream) -> DATA
        self.goaway_sent = asyncio.Event()
        self.held = asyncio.Event()  # stream 1 of the first connection arrived whole
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for t in self.tasks:
            t.cancel()

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.connections += 1
        n = self.connections
        h2 = H2Connection(H2Configuration(client_side=False, header_encoding="utf-8"))
        h2.initiate_connection()
        h2.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
        h2.increment_flow_control_window(1 << 20)
        w.write(h2.data_to_send())
        refused = False
        try:
            while data := await r.read(65536):
                for ev in h2.receive_data(data):
                    if isinstance(ev, RequestReceived | DataReceived):
                        sid = ev.stream_id or 0
                        got = self.received.setdefault((n, sid), b"")
                        if isinstance(ev, DataReceived):
                            self.received[(n, sid)] = got + (ev.data or b"")
                            h2.acknowledge_received_data(ev.flow_controlled_length or 0, sid)
                        over = len(self.received[(n, sid)]) >= self.refuse_after
                        if n == 1 and sid == 3 and over and not refused:
                            refused = True
                            w.write(h2.data_to_send())
                            w.write(GoAwayFrame(0, last_stream_id=1).serialize())
                            self.goaway_sent.set()
                    if isinstance(ev, StreamEnded):
                        sid = ev.stream_id or 0
                        if n == 1 and sid == 1:
                            self.held.set()
                            t = asyncio.ensure_future(self._later(h2, w, sid, n))
                            self.tasks.add(t)
                        elif not (n == 1 and sid == 3):
                            self._answer(h2, w, sid, n)
                w.write(h2.data_to_send())
        except ConnectionError:
            pass
        finally:
            w.close()

    async def _later(self, h2: H2Connection, w: asyncio.StreamWriter, sid: int, n: int) -> None:
        await self.release.wait()
        self._answer(h2, w, sid, n)

    def _answer(self, h2: H2Connection, w: asyncio.StreamWriter, sid: int, n: int) -> None:
        body = self.received.get((n, sid), b"")
        h2.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
        h2.send_data(sid, grpc_message(b"ok:%d" % len(body)))
        h2.send_headers(sid, [("grpc-status", "0")], end_stream=True)
        w.write(h2.data_to_send())


async def test_a_stream_past_the_upstreams_goaway_goes_again_on_a_new_connection(
    start_proxy: StartProxy,
) -> None:
    """Stream 1 held upstream; stream 3 refused by GOAWAY(last 1): the proxy sends stream 3
    again, its message whole, on a new connection, and answers the client; stream 1 still
    finishes on the connection that said GOAWAY."""
    up = GoawayUpstream()
    async with up as url:
        rt = await start_proxy(url)
        client = await RawH2.open(rt.proxy_port)
        try:
            async with asyncio.timeout(30):  # a guard against a hang, not a measure
                first = client.call("Held", grpc_message(b"a" * 100))
                await up.held.wait()
                second = client.call("Unary", grpc_message(b"b" * 5000))
                evs = await client.ended(second)
                assert trailers_of(evs).get("grpc-status") == "0", evs
                up.release.set()
                evs = await client.ended(first)
                assert trailers_of(evs).get("grpc-status") == "0", evs
        finally:
            client.close()
    assert up.goaway_sent.is_set() and up.connections == 2
    assert up.received[(2, 1)] == grpc_message(b"b" * 5000)  # the retry carried it whole
    assert up.received[(1, 1)] == grpc_message(b"a" * 100)


async def test_a_refused_stream_whose_body_went_up_is_refused_to_the_client(
    start_proxy: StartProxy,
) -> None:
    """Past what the proxy holds of a body (64 KiB) it cannot send a stream again: the client
    gets RST_STREAM(REFUSED_STREAM), which it may retry; stream 1 still finishes."""
    up = GoawayUpstream(refuse_after=100 * 1024)
    async with up as url:
        rt = await start_proxy(url)
        client = await RawH2.open(rt.proxy_port)
        try:
            async with asyncio.timeout(30):
                # the proxy's settings and window first: the body fits them then
                await client.until(
                    lambda evs: any(isinstance(e, SettingsAcknowledged) for e in evs)
                )
                first = client.call("Held", grpc_message(b"a"))
                await up.held.wait()
                second = client.call("Unary", grpc_message(b"b" * 120 * 1024))
                assert reset_code(await client.ended(second)) == REFUSED_STREAM
                up.release.set()
                evs = await client.ended(first)
                assert trailers_of(evs).get("grpc-status") == "0", evs
        finally:
            client.close()
    assert up.connections == 1


# ---------------------------------------------------------------- (b) a stop of the proxy


async def test_a_stop_drains_each_connection(held: Held, start_proxy: StartProxy) -> None:
    """A stop with a stream in flight: GOAWAY(2^31-1), a PING, GOAWAY(that stream's id); a
    stream opened after it is refused (REFUSED_STREAM), the one in flight finishes, then the
    connection closes. An idle connection gets the same GOAWAYs before its close."""
    rt = await start_proxy(f"http://127.0.0.1:{held.port}", grace=30.0)
    client = await FrameClient.open(rt.proxy_port)
    idle = await FrameClient.open(rt.proxy_port)
    stopping: asyncio.Future[None] | None = None
    try:
        async with asyncio.timeout(30):
            await idle.until(lambda fs: any(isinstance(f, SettingsFrame) for f in fs))
            first = client.call("Held", grpc_message(b"a"))
            await held.arrived.until(1)
            stopping = asyncio.ensure_future(rt.stop())
            await idle.until_eof()
            idle_goaways = [(g.last_stream_id, g.error_code) for g in idle.goaways()]
            assert idle_goaways == [(LARGEST, 0), (0, 0)]
            await client.until(lambda _: len(client.goaways()) == 2)
            g1, g2 = client.goaways()
            assert (g1.last_stream_id, g1.error_code) == (LARGEST, 0)
            assert (g2.last_stream_id, g2.error_code) == (first, 0)
            at = client.frames.index
            pings = [at(f) for f in client.frames if isinstance(f, PingFrame)]
            assert any(at(g1) < p < at(g2) for p in pings)  # a round trip between the two
            late = client.call("Unary", grpc_message(b"b"))
            [rst] = await client.ended(late)
            assert isinstance(rst, RstStreamFrame) and rst.error_code == REFUSED_STREAM
            held.release.set()
            frames = await client.ended(first)
            heads = [client.headers[id(f)] for f in frames if isinstance(f, HeadersFrame)]
            assert heads[-1]["grpc-status"] == "0"
            await client.until_eof()
            await stopping
    finally:
        client.close()
        idle.close()
        held.release.set()
        if stopping is not None:
            await stopping
    assert client.eof and idle.eof
    assert held.echo.calls == 0  # the refused stream never reached the service


# ---------------------------------------------------------------- (c) a client's GOAWAY


async def test_a_clients_goaway_lets_its_stream_in_flight_finish(
    held: Held, start_proxy: StartProxy
) -> None:
    """The client says GOAWAY (it opens no more streams) while its call is held upstream:
    the answer still arrives, then the proxy closes the connection."""
    rt = await start_proxy(f"http://127.0.0.1:{held.port}")
    done = Seen()
    rt.bus.subscribe(RequestDone, done.add)
    client = await FrameClient.open(rt.proxy_port)
    try:
        async with asyncio.timeout(30):
            first = client.call("Held", grpc_message(b"a"))
            await held.arrived.until(1)
            client.writer.write(GoAwayFrame(0, last_stream_id=0).serialize())
            held.release.set()
            await done.until(1)
            # A PING after the answer: its ACK (or the connection's end) bounds the wait
            client.writer.write(PingFrame(0, b"after\x00\x00\x00").serialize())
            await client.until(
                lambda fs: (
                    any(isinstance(f, PingFrame) and "ACK" in f.flags for f in fs)
                    or any(f.stream_id == first and "END_STREAM" in f.flags for f in fs)
                )
            )
            frames = [f for f in client.frames if f.stream_id == first]
            heads = [client.headers[id(f)] for f in frames if isinstance(f, HeadersFrame)]
            assert heads and heads[-1].get("grpc-status") == "0", frames
            await client.until_eof()  # no stream left and none to come: closed
    finally:
        client.close()
    assert client.eof
