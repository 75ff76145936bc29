"""`upload_stall` on HTTP/2 with a real grpcio client and server: a client stream's messages
stop reaching the service while the client's window stays shut, then flow again; without a
duration the call ends at its deadline with the service never having the whole stream."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import grpc

from chaosproxy.faults import build
from tests.proxy.h2.conftest import SERVICE, GrpcSetup

CHUNK = b"m" * (16 * 1024)
COUNT = 40  # 640 KiB: more than the proxy's stream window (256 KiB)


async def messages() -> AsyncIterator[bytes]:
    for _ in range(COUNT):
        yield CHUNK


async def test_the_upload_waits_then_completes(grpc_via_proxy: GrpcSetup) -> None:
    g = grpc_via_proxy
    g.proxy.engine.add_rule([build("upload_stall", {"duration": "800ms"}, "f")])
    t0 = time.monotonic()
    answer = await g.channel.stream_unary(f"/{SERVICE}/Collect")(messages())
    assert time.monotonic() - t0 >= 0.8
    assert answer == b"|".join([CHUNK] * COUNT)
    assert g.service.received == [CHUNK] * COUNT
    assert g.injected[0].outcome == "after_bytes=0 for 0.8s"


async def test_after_bytes_then_stalled_until_the_deadline(grpc_via_proxy: GrpcSetup) -> None:
    """64 KiB go up, then the window stays shut: the client's writes block, the call ends at
    its deadline and the service never saw the whole stream. grpcio's asyncio stub with a
    write blocked at the deadline reports INTERNAL ("Internal error from Core"), with or
    without the proxy's own DEADLINE_EXCEEDED; DEADLINE_EXCEEDED when nothing was pending."""
    g = grpc_via_proxy
    g.proxy.engine.add_rule([build("upload_stall", {"after_bytes": "64KiB"}, "f")])
    call = g.channel.stream_unary(f"/{SERVICE}/Collect")(timeout=0.5)

    async def writes() -> int:
        sent = 0
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
            for _ in range(COUNT):
                await call.write(CHUNK)
                sent += 1
        return sent

    writer = asyncio.ensure_future(writes())
    assert await call.code() in {grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL}
    assert await writer < COUNT  # the last writes never went out
    await g.done.until(1)
    assert g.service.calls == 1
    assert len(g.service.received) < COUNT  # cancelled before the end of the stream


async def test_other_calls_on_the_connection_go_on(grpc_via_proxy: GrpcSetup) -> None:
    g = grpc_via_proxy
    g.proxy.engine.add_rule(
        [build("upload_stall", {}, "f")], match=lambda v: v.path.endswith("/Collect")
    )
    stalled = g.channel.stream_unary(f"/{SERVICE}/Collect")(messages(), timeout=30)
    await g.injected.until(1)  # the stalled call is in the proxy
    assert await g.unary()(b"still") == b"echo:still"
    assert not stalled.done()
    stalled.cancel()


async def test_a_body_shorter_than_after_bytes_never_stalls(grpc_via_proxy: GrpcSetup) -> None:
    g = grpc_via_proxy
    g.proxy.engine.add_rule([build("upload_stall", {"after_bytes": "1MiB"}, "f")])
    assert await g.unary()(b"small") == b"echo:small"
    await g.done.until(1)
    assert list(g.injected) == []  # not counted: it never acted
