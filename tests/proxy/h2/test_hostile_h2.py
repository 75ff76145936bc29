"""Hostile HTTP/2 clients at the frame level, over real sockets: what the client sees, and that
the proxy keeps serving a well-behaved client meanwhile (on a connection opened before the
attack) and afterwards (on a new one). docs/http2.md ("Bounds on HTTP/2 clients") and
docs/reliability.md list these outcomes; `chaosproxy/proxy/h2/limits.py` holds the bounds.
Over 400 lines on purpose: one family per section, as the table they pin, sharing one client.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import grpc.aio
import hpack
import pytest
from aiohttp import web
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
)

from chaosproxy.common.events import RequestDone
from chaosproxy.process.runtime import Runtime
from chaosproxy.proxy.h2 import limits
from tests.conftest import StartProxy
from tests.proxy.h2.conftest import SERVICE, EchoService, Seen
from tests.proxy.h2.support_raw import grpc_message
from tests.proxy.h2.test_conformance import GET, POST, Outcome, Peer, block, headers, raw_frame
from tests.proxy.test_hostile_clients import Recorder, recorder  # noqa: F401 (a fixture)
from tests.proxy.test_hostile_third_round import timeouts, until

REFUSED_STREAM = 0x7
CANCEL = 0x8
CALM = 0xB  # ENHANCE_YOUR_CALM


GRPC_CALL = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":authority", b"proxy"),
    (b":path", b"/"),
    (b"content-type", b"application/grpc"),
    (b"te", b"trailers"),
]


def get(path: bytes) -> list[tuple[bytes, bytes]]:
    return [*GET[:3], (b":path", path)]


async def answered(peer: Peer, sid: int, path: bytes = b"/ok") -> Outcome:
    """A GET on stream `sid` of `peer`, and what the proxy said first."""
    peer.send(headers(sid, get(path)))
    return await peer.outcome()


async def served_afresh(rt: Runtime) -> None:
    """A new connection's request is answered with 200."""
    peer = await Peer.open(rt.proxy_port)
    try:
        assert await answered(peer, 1, b"/after") == Outcome("answered", 200, 1)
    finally:
        peer.close()


async def goaway_then_closed(peer: Peer, probe: int | None = None) -> GoAwayFrame:
    """Read until the connection closed; its GOAWAY. `probe`: a stream id for a request sent
    right after the attack, never answered when the attack was cut short (an answer means the
    proxy took the attack whole: the test fails there instead of waiting for a GOAWAY)."""
    if probe is not None:
        peer.send(headers(probe, get(b"/probe")))
    while (f := await peer.frame()) is not None:
        assert not (isinstance(f, HeadersFrame) and f.stream_id == probe), "taken whole"
    peer.close()
    gone = [f for f in peer.frames if isinstance(f, GoAwayFrame)]
    assert gone, f"no GOAWAY: {peer.frames}"
    return gone[-1]


@pytest.fixture
async def rt(recorder: Recorder, start_proxy: StartProxy) -> Runtime:  # noqa: F811
    return await start_proxy(recorder.url, pool_size=1, body_timeout=0.5)


# ------------------------------------------------------------------ 1. Rapid Reset


async def test_rapid_reset_is_goaway_enhance_your_calm_and_others_are_served(
    rt: Runtime,
) -> None:
    """1050 streams opened and reset at once: GOAWAY(ENHANCE_YOUR_CALM) and closed; a request
    after them is never answered; the proxy's tasks and in-flight count are back where they
    were; another connection is served meanwhile and a new one afterwards."""
    good = await Peer.open(rt.proxy_port)
    assert await answered(good, 1) == Outcome("answered", 200, 1)  # the pool's connection open
    tasks = len(asyncio.all_tasks())
    peer = await Peer.open(rt.proxy_port)
    burst = b"".join(
        headers(sid, get(b"/reset")) + RstStreamFrame(sid, CANCEL).serialize()
        for sid in range(1, 2 * (limits.RESET_BURST + 50), 2)
    )
    peer.send(burst)
    gone = await goaway_then_closed(peer, probe=2 * (limits.RESET_BURST + 50) + 1)
    assert gone.error_code == CALM
    assert rt.h2.calmed == {"resets": 1}
    cut = rt.metrics.registry.get_sample_value
    assert cut("chaosproxy_h2_clients_cut_total", {"bound": "resets"}) == 1
    assert cut("chaosproxy_h2_clients_cut_total", {"bound": "control"}) == 0
    assert await answered(good, 3) == Outcome("answered", 200, 3)  # meanwhile
    await served_afresh(rt)
    await until(lambda: len(asyncio.all_tasks()) <= tasks and rt.load.inflight == 0)
    good.close()


async def test_a_client_cancelling_now_and_then_keeps_its_connection(rt: Runtime) -> None:
    peer = await Peer.open(rt.proxy_port)
    peer.send(
        b"".join(
            headers(sid, get(b"/cancelled")) + RstStreamFrame(sid, CANCEL).serialize()
            for sid in range(1, 200, 2)
        )
    )
    assert await answered(peer, 201) == Outcome("answered", 200, 201)
    assert not [f for f in peer.frames if isinstance(f, GoAwayFrame)]
    assert rt.h2.calmed == {}
    peer.close()


async def test_a_reset_stream_releases_its_upstream_request_and_pool_slot(
    rt: Runtime,
    recorder: Recorder,  # noqa: F811
) -> None:
    """--pool-size 1: the upstream holds the first request; the client resets it. The
    upstream connection is given up at once, the in-flight count is back to 0, and the next
    request gets the pool's one connection."""
    recorder.hold = True
    done = Seen()
    rt.bus.subscribe(RequestDone, done.add)
    peer = await Peer.open(rt.proxy_port)
    peer.send(headers(1, get(b"/held")))
    await recorder.arrived.wait()
    assert rt.load.inflight == 1
    peer.send(RstStreamFrame(1, CANCEL).serialize())
    await done.until(1)
    assert rt.load.inflight == 0 and [e.status for e in done] == [0]
    recorder.release.set()  # its answer goes to a connection the proxy closed
    await recorder.peer_closed.wait()  # the upstream request was abandoned, not pooled
    assert await answered(peer, 3, b"/next") == Outcome("answered", 200, 3)
    assert rt.load.inflight == 0
    assert [r.target for r in recorder.requests] == ["/held", "/next"]
    peer.close()


async def test_a_reset_grpc_call_cancels_its_upstream_stream(start_proxy: StartProxy) -> None:
    """A gRPC call the service is working on, reset by its client: the service's handler is
    cancelled (the upstream stream got RST_STREAM(CANCEL)) and the call leaves the in-flight
    count."""
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def wait(req: bytes, ctx: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return b""

    server = grpc.aio.server()
    rpcs = {"Wait": grpc.unary_unary_rpc_method_handler(wait)}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, rpcs),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        rt = await start_proxy(f"http://127.0.0.1:{port}")
        done = Seen()
        rt.bus.subscribe(RequestDone, done.add)
        peer = await Peer.open(rt.proxy_port)
        call = [*GRPC_CALL[:3], (b":path", f"/{SERVICE}/Wait".encode()), *GRPC_CALL[4:]]
        peer.send(
            HeadersFrame(1, block(call), flags=["END_HEADERS"]).serialize(),
            DataFrame(1, grpc_message(b"x"), flags=["END_STREAM"]).serialize(),
        )
        await started.wait()
        peer.send(RstStreamFrame(1, CANCEL).serialize())
        await cancelled.wait()
        await done.until(1)
        assert rt.load.inflight == 0
        peer.close()
    finally:
        await server.stop(None)


# ------------------------------------------------------------------ 2. floods


def _pings(n: int) -> bytes:
    return b"".join(PingFrame(0, struct.pack(">Q", i)).serialize() for i in range(n))


def _settings(n: int) -> bytes:
    return SettingsFrame(0, settings={0x3: 100}).serialize() * n


def _empty_data(n: int) -> bytes:
    return headers(1, POST, end_stream=False) + DataFrame(1, b"").serialize() * n


def _priority(n: int) -> bytes:
    return raw_frame(0x2, 0, 3, b"\x00\x00\x00\x01\x10") * n


def _unknown(n: int) -> bytes:
    return raw_frame(0xEE, 0, 0, b"what") * n


@pytest.mark.parametrize("flood", [_pings, _settings, _empty_data, _priority, _unknown])
async def test_control_frame_floods_are_goaway_enhance_your_calm(
    rt: Runtime, flood: object
) -> None:
    good = await Peer.open(rt.proxy_port)
    peer = await Peer.open(rt.proxy_port)
    assert callable(flood)
    peer.send(flood(limits.CONTROL_BURST + 100))
    gone = await goaway_then_closed(peer, probe=5)
    assert gone.error_code == CALM
    assert rt.h2.calmed == {"control": 1}
    assert await answered(good, 1) == Outcome("answered", 200, 1)
    await served_afresh(rt)
    good.close()


async def test_a_few_pings_are_answered(rt: Runtime) -> None:
    peer = await Peer.open(rt.proxy_port)
    peer.send(_pings(50))
    for _ in range(50):
        assert (await peer.outcome()).kind == "ping-ack"
    assert await answered(peer, 1) == Outcome("answered", 200, 1)
    peer.close()


async def test_pings_to_a_client_that_reads_nothing_are_bounded(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rate bound lifted: PINGs from a client that never reads its ACKs. Once the proxy's
    output is past its high-water mark, 1000 more replies and the connection is aborted: its
    memory does not grow with what the client sends."""
    monkeypatch.setattr(limits, "CONTROL_BURST", 10**9)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", rt.proxy_port))
    _, writer = await asyncio.open_connection(sock=sock)
    writer.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + SettingsFrame(0).serialize())
    batch = _pings(1000)
    sent = 0
    with pytest.raises(ConnectionError):
        for sent in range(5000):  # noqa: B007 (5 M PINGs at most)
            writer.write(batch)
            await writer.drain()
    assert rt.h2.calmed == {"queued": 1}
    assert sent > 1
    writer.close()
    await served_afresh(rt)


async def test_continuation_floods_are_goaway_enhance_your_calm(rt: Runtime) -> None:
    """CVE-2024-27316's class: a header block that never ends. Empty CONTINUATION frames (h2
    takes 64), and large ones (the block is bounded to MAX_HEADER_BLOCK bytes)."""
    empty = await Peer.open(rt.proxy_port)
    start = HeadersFrame(1, block(GET)).serialize()  # no END_HEADERS
    empty.send(start + ContinuationFrame(1, b"").serialize() * 100)
    assert (await goaway_then_closed(empty)).error_code == CALM
    large = await Peer.open(rt.proxy_port)
    large.send(HeadersFrame(1, block(GET)).serialize())
    for _ in range(limits.MAX_HEADER_BLOCK // (128 * 1024) + 2):
        large.send(ContinuationFrame(1, b"\x00" * (128 * 1024)).serialize())
    assert (await goaway_then_closed(large)).error_code == CALM
    assert rt.h2.calmed == {"headers": 2}
    await served_afresh(rt)


# ------------------------------------------------------------------ 3. a body that stalls


async def test_a_body_that_stalls_is_a_408_and_its_upstream_request_is_given_up(
    rt: Runtime,
    recorder: Recorder,  # noqa: F811
) -> None:
    """20 KiB of a 40 KiB body (past the first 16 KiB: the request went upstream), then
    nothing: a JSON 408 after --body-timeout, counted as over HTTP/1.1; the upstream
    connection is closed (the request cut short), and the pool's one connection serves the
    next request."""
    good = await Peer.open(rt.proxy_port)
    peer = await Peer.open(rt.proxy_port)
    post = [*POST, (b"content-length", b"40960")]
    peer.send(headers(1, post, end_stream=False), DataFrame(1, b"b" * 20480).serialize())
    await recorder.arrived.wait()
    out = await peer.outcome()
    assert out == Outcome("answered", 408, 1)
    body = b"".join(
        bytes(f.data) for f in peer.frames if isinstance(f, DataFrame) and f.stream_id == 1
    )
    while not any(isinstance(f, DataFrame) and "END_STREAM" in f.flags for f in peer.frames):
        await peer.frame()
        body = b"".join(
            bytes(f.data) for f in peer.frames if isinstance(f, DataFrame) and f.stream_id == 1
        )
    error = json.loads(body)
    assert "0.5s" in error["error"]["details"] and error["error"]["requestId"]
    assert timeouts(rt, "body") == 1
    await recorder.peer_closed.wait()
    assert recorder.requests == []  # never a whole request upstream
    assert await answered(good, 1) == Outcome("answered", 200, 1)
    await served_afresh(rt)
    good.close()
    peer.close()


async def test_a_body_that_stalls_after_the_answer_began_is_reset_with_cancel(
    start_upstream: Callable[[web.Application], Awaitable[str]], start_proxy: StartProxy
) -> None:
    """The upstream answers before it reads the body: once the body stops, the stream is reset
    with CANCEL (a JSON 408 cannot follow a head) and the upstream request is given up."""
    gone = asyncio.Event()

    async def early(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"started")
        try:
            await request.read()
        except (ConnectionError, asyncio.CancelledError):
            gone.set()
            raise
        return response

    async def fine(request: web.Request) -> web.Response:
        return web.Response(text="fine")

    app = web.Application()
    app.router.add_post("/ok", early)
    app.router.add_get("/after", fine)
    rt = await start_proxy(await start_upstream(app), body_timeout=0.5)
    peer = await Peer.open(rt.proxy_port)
    peer.send(headers(1, POST, end_stream=False), DataFrame(1, b"b" * 20480).serialize())
    assert await peer.outcome() == Outcome("answered", 200, 1)
    assert await peer.outcome() == Outcome("rst", CANCEL, 1)
    assert b"started" in b"".join(bytes(f.data) for f in peer.frames if isinstance(f, DataFrame))
    assert timeouts(rt, "body") == 1
    await gone.wait()  # the upstream saw its request end short
    await served_afresh(rt)
    peer.close()


async def test_a_quiet_grpc_stream_is_not_cut_by_the_body_timeout(
    grpc_server: tuple[EchoService, str], start_proxy: StartProxy
) -> None:
    """A bidi call quiet for longer than --body-timeout (a plain stream on the same connection
    is cut meanwhile: the timeout ran) goes on: gRPC streams are bounded by their deadline."""
    _, url = grpc_server
    rt = await start_proxy(url, body_timeout=0.3)
    peer = await Peer.open(rt.proxy_port)
    call = [*GRPC_CALL[:3], (b":path", f"/{SERVICE}/Chat".encode()), *GRPC_CALL[4:]]
    encoder = hpack.Encoder()
    peer.send(
        HeadersFrame(1, encoder.encode(call), flags=["END_HEADERS"]).serialize(),
        DataFrame(1, grpc_message(b"one")).serialize(),
        HeadersFrame(3, encoder.encode(POST), flags=["END_HEADERS"]).serialize(),
        DataFrame(3, b"st").serialize(),
    )
    while (out := await peer.outcome()).stream != 3:
        pass
    assert out == Outcome("answered", 408, 3)
    peer.send(DataFrame(1, grpc_message(b"two"), flags=["END_STREAM"]).serialize())
    ended = False
    while not ended:
        f = await peer.frame()
        assert f is not None
        ended = f.stream_id == 1 and "END_STREAM" in f.flags
    got = b"".join(
        bytes(f.data) for f in peer.frames if isinstance(f, DataFrame) and f.stream_id == 1
    )
    assert got == grpc_message(b"re:one") + grpc_message(b"re:two")
    assert not [f for f in peer.frames if isinstance(f, RstStreamFrame) and f.stream_id == 1]
    peer.close()


# ------------------------------------------------------------------ 4. header sizes and counts


async def test_too_many_or_too_large_headers_are_431_and_the_connection_goes_on(
    rt: Runtime,
    recorder: Recorder,  # noqa: F811
) -> None:
    peer = await Peer.open(rt.proxy_port)
    encoder = hpack.Encoder()

    def send(sid: int, fields: list[tuple[bytes, bytes]]) -> None:
        flags = ["END_HEADERS", "END_STREAM"]
        peer.send(HeadersFrame(sid, encoder.encode(fields), flags=flags).serialize())

    many = [*get(b"/many"), *((b"x-h%d" % i, b"v") for i in range(limits.MAX_HEADERS + 1))]
    send(1, many)
    assert await peer.outcome() == Outcome("answered", 431, 1)
    send(3, [*get(b"/large"), (b"x-large", b"v" * (limits.MAX_HEADER_LIST + 1))])
    assert await peer.outcome() == Outcome("answered", 431, 3)
    send(5, get(b"/fine"))
    assert await peer.outcome() == Outcome("answered", 200, 5)
    assert [r.target for r in recorder.requests] == ["/fine"]
    peer.close()


async def test_an_hpack_bomb_is_not_decoded_past_its_bound(rt: Runtime) -> None:
    """One 4000-byte field in HPACK's dynamic table, then referenced by one byte each: 100
    bytes would decode to 400 KB. HPACK stops at MAX_HEADER_BLOCK: GOAWAY(ENHANCE_YOUR_CALM)."""
    peer = await Peer.open(rt.proxy_port)
    first = hpack.Encoder().encode([*get(b"/bomb"), (b"x-bomb", b"a" * 4000)])
    refs = b"\xbe" * 100  # index 62: the dynamic table's newest entry
    peer.send(HeadersFrame(1, first + refs, flags=["END_HEADERS", "END_STREAM"]).serialize())
    assert (await goaway_then_closed(peer)).error_code == CALM
    assert rt.h2.calmed == {"headers": 1}
    await served_afresh(rt)


# ------------------------------------------------------------------ 5. streams, connections


async def test_a_stream_past_256_at_once_is_refused_alone(
    rt: Runtime,
    recorder: Recorder,  # noqa: F811
) -> None:
    """256 streams held by the upstream, then a 257th: RST_STREAM(REFUSED_STREAM) on that one
    (never processed: a client retries it), and the connection goes on; h2 alone would have
    ended the whole connection. Once the others are answered, a new stream is served."""
    recorder.hold = True
    peer = await Peer.open(rt.proxy_port)
    peer.send(b"".join(headers(sid, get(b"/held")) for sid in range(1, 2 * 256, 2)))
    await recorder.arrived.wait()  # the upstream (a pool of one) has the first
    peer.send(headers(513, get(b"/more")))
    assert await peer.outcome() == Outcome("rst", REFUSED_STREAM, 513)
    recorder.release.set()
    for _ in range(256):
        out = await peer.outcome()
        assert out.kind == "answered" and out.code == 200, out
    assert await answered(peer, 515, b"/after") == Outcome("answered", 200, 515)
    assert not [f for f in peer.frames if isinstance(f, GoAwayFrame)]
    peer.close()


async def test_max_connections_counts_http2_connections(
    recorder: Recorder,  # noqa: F811
    start_proxy: StartProxy,
) -> None:
    rt = await start_proxy(recorder.url, max_connections=2)
    first = await Peer.open(rt.proxy_port)
    second = await Peer.open(rt.proxy_port)
    reader, writer = await asyncio.open_connection("127.0.0.1", rt.proxy_port)
    writer.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + SettingsFrame(0).serialize())
    refused = await reader.read(65536)
    assert refused.startswith(b"HTTP/1.1 503 ")
    writer.close()
    assert await answered(first, 1) == Outcome("answered", 200, 1)
    assert await answered(second, 1) == Outcome("answered", 200, 1)
    first.close()
    second.close()
