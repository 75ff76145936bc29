"""gRPC through the proxy, no fault: unary, client-, server- and bidirectional streaming give
what the server sent, metadata and trailers included, and each call is one h2 request in the
proxy's events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import cast

import grpc
import pytest

from tests.proxy.h2.conftest import CHANNEL_OPTIONS, SERVICE, GrpcSetup


async def test_unary_call_with_metadata_and_trailers(grpc_via_proxy: GrpcSetup) -> None:
    g = grpc_via_proxy
    call = g.unary()(b"hello", metadata=(("x-client", "abc"),))
    assert await call == b"echo:hello"
    assert await call.code() == grpc.StatusCode.OK
    trailing = dict(await call.trailing_metadata() or ())  # type: ignore[arg-type]
    assert trailing["x-trailer"] == "len-5"
    seen = dict(g.service.metadata)
    assert seen["x-client"] == "abc"
    assert seen["x-forwarded-for"] == "127.0.0.1"
    await g.done.until(1)
    done = g.done[0]
    assert (done.protocol, done.method, done.status, done.injected) == ("h2", "POST", 200, False)
    assert done.upstream_duration is not None


async def test_a_large_message_crosses_the_windows(grpc_via_proxy: GrpcSetup) -> None:
    """3 MiB each way: more than a stream's window (256 KiB here), so it takes acknowledged
    DATA (flow control) on both connections to get through."""
    g = grpc_via_proxy
    big = bytes(range(256)) * (3 * 4096)
    assert await g.unary()(big) == b"echo:" + big


async def test_client_streaming(grpc_via_proxy: GrpcSetup) -> None:
    g = grpc_via_proxy

    async def messages() -> AsyncIterator[bytes]:
        for i in range(5):
            yield b"m%d" % i

    answer = await g.channel.stream_unary(f"/{SERVICE}/Collect")(messages())
    assert answer == b"m0|m1|m2|m3|m4"


async def test_the_sync_client_streams_frames_larger_than_the_default(
    grpc_via_proxy: GrpcSetup,
) -> None:
    """grpcio's sync client sends its SETTINGS ACK and its first DATA frames, larger than
    HTTP/2's default 16 KiB, in one segment: the frame size we advertise must hold from our
    first SETTINGS frame, or that read fails with FRAME_SIZE_ERROR (UNAVAILABLE). Several
    calls, each on a new connection, so the segment boundaries vary."""
    g = grpc_via_proxy
    chunk = b"m" * (16 * 1024)

    def call() -> bytes:
        target = f"127.0.0.1:{g.proxy.proxy_port}"
        with grpc.insecure_channel(target, CHANNEL_OPTIONS) as ch:
            collect = ch.stream_unary(f"/{SERVICE}/Collect")
            return cast(bytes, collect(iter([chunk] * 40), timeout=30))

    for _ in range(6):
        answer = await asyncio.to_thread(call)
        assert answer == b"|".join([chunk] * 40)


async def test_server_streaming(grpc_via_proxy: GrpcSetup) -> None:
    g = grpc_via_proxy
    got = [m async for m in g.channel.unary_stream(f"/{SERVICE}/Count")(b"4")]
    assert got == [b"part-0", b"part-1", b"part-2", b"part-3"]


async def test_bidi_streams_message_by_message(grpc_via_proxy: GrpcSetup) -> None:
    """Each answer arrives before the next message is sent: nothing waits for a whole body."""
    g = grpc_via_proxy
    call = g.channel.stream_stream(f"/{SERVICE}/Chat")()
    for i in range(3):
        await call.write(b"q%d" % i)
        assert await call.read() == b"re:q%d" % i
    await call.done_writing()
    assert await call.code() == grpc.StatusCode.OK


async def test_an_upstream_grpc_error_passes_as_sent(grpc_via_proxy: GrpcSetup) -> None:
    g = grpc_via_proxy
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await g.unary("Fail")(b"x")
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert err.value.details() == "upstream says no"
