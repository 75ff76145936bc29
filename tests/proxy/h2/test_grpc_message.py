"""`grpc_message` through a real proxy between a grpcio client and server: a gap before a
message of a server stream, a stream failed after N messages, a message the client cannot
parse, and a message larger than a DATA frame corrupted whole."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest

from chaosproxy.faults import build
from tests.conftest import StartProxy
from tests.proxy.h2.conftest import CHANNEL_OPTIONS, SERVICE, GrpcSetup


async def test_delay_is_a_gap_before_the_nth_message(grpc_via_proxy: GrpcSetup) -> None:
    g = grpc_via_proxy
    g.proxy.engine.add_rule([build("grpc_message", {"delay": "400ms", "nth": 2}, "f")])
    t0 = time.monotonic()
    call = g.channel.unary_stream(f"/{SERVICE}/Count")(b"3")
    got, at = [], []
    async for m in call:
        got.append(m)
        at.append(time.monotonic() - t0)
    assert got == [b"part-0", b"part-1", b"part-2"]
    assert at[1] >= 0.4  # (part-0 may reach the client's code late, so not at[1] - at[0])
    assert g.injected[0].outcome == "delay=0.400 message=2"


async def test_abort_after_messages_fails_a_server_stream_mid_way(
    grpc_via_proxy: GrpcSetup,
) -> None:
    """The client reads two items, then the status: its code sees both before the error."""
    g = grpc_via_proxy
    params = {"abort": "UNAVAILABLE", "after_messages": 2, "message": "gone"}
    g.proxy.engine.add_rule([build("grpc_message", params, "f")])
    call = g.channel.unary_stream(f"/{SERVICE}/Count")(b"5")
    got = []
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for m in call:
            got.append(m)
    assert got == [b"part-0", b"part-1"]
    assert (err.value.code(), err.value.details()) == (grpc.StatusCode.UNAVAILABLE, "gone")
    await g.done.until(1)
    assert g.done[0].injected


async def test_corrupt_message_fails_to_parse_internal(grpc_via_proxy: GrpcSetup) -> None:
    """The client's deserializer (text here, protobuf in a real service) rejects 0xFF bytes:
    grpcio's stub reports INTERNAL. (Its asyncio stub logs the error and returns None.)"""
    g = grpc_via_proxy
    g.proxy.engine.add_rule([build("grpc_message", {"corrupt": True}, "f")])

    def call() -> grpc.RpcError:
        with grpc.insecure_channel(f"127.0.0.1:{g.proxy.proxy_port}", CHANNEL_OPTIONS) as ch:
            stub = ch.unary_unary(
                f"/{SERVICE}/Unary", response_deserializer=lambda b: b.decode("ascii")
            )
            with pytest.raises(grpc.RpcError) as err:
                stub(b"hello")
            return err.value

    err = await asyncio.to_thread(call)
    assert err.code() == grpc.StatusCode.INTERNAL
    assert g.service.calls == 1


async def test_a_large_message_is_corrupted_across_data_frames(grpc_via_proxy: GrpcSetup) -> None:
    """A 600 KiB answer spans many DATA frames (and the windows): the prefix is read once,
    every payload byte after it replaced as it streams, the length kept."""
    g = grpc_via_proxy
    g.proxy.engine.add_rule([build("grpc_message", {"corrupt": True}, "f")])
    big = b"z" * (600 * 1024)
    got = await g.unary()(big)
    assert got == b"\xff" * len(b"echo:" + big)


# ---------------------------------------------------------------- direction: request


async def five() -> AsyncIterator[bytes]:
    for i in range(5):
        yield b"msg-%d" % i


async def test_request_abort_after_two_client_messages(grpc_via_proxy: GrpcSetup) -> None:
    """A service that fails after reading two messages of the client's stream: the client
    gets the status; the upstream stream was cancelled before the stream's end."""
    g = grpc_via_proxy
    params = {"direction": "request", "abort": "ABORTED", "after_messages": 2}
    g.proxy.engine.add_rule([build("grpc_message", params, "f")])
    # Two writes, then the client waits: with an iterator still sending, grpcio's asyncio
    # stub may report its failed send (INTERNAL) instead of the status that came back.
    call = g.channel.stream_unary(f"/{SERVICE}/Collect")()
    await call.write(b"msg-0")
    await call.write(b"msg-1")
    assert await call.code() == grpc.StatusCode.ABORTED
    await g.done.until(1)
    assert g.injected[0].outcome == "grpc-status=10 after_messages=2"
    assert len(g.service.received) <= 2  # what the service read before its stream was cancelled


async def test_request_delay_holds_the_nth_client_message(grpc_via_proxy: GrpcSetup) -> None:
    g = grpc_via_proxy
    params = {"direction": "request", "delay": "400ms", "nth": 3}
    g.proxy.engine.add_rule([build("grpc_message", params, "f")])
    t0 = time.monotonic()
    answer = await g.channel.stream_unary(f"/{SERVICE}/Collect")(five())
    assert time.monotonic() - t0 >= 0.4
    assert answer == b"msg-0|msg-1|msg-2|msg-3|msg-4"
    assert g.injected[0].outcome == "delay=0.400 message=3"


async def test_request_corrupt_fails_in_the_service(
    start_proxy: StartProxy,
) -> None:
    """The service's deserializer rejects the corrupted message: the client sees the status
    the service's framework gives a request it cannot parse (grpcio's asyncio server: UNKNOWN,
    naming the decode error)."""

    async def strict(req: str, ctx: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        return req.encode()

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(
        strict, request_deserializer=lambda b: b.decode("ascii")
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {"Strict": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        rt = await start_proxy(f"http://127.0.0.1:{port}")
        params = {"direction": "request", "corrupt": True}
        rt.engine.add_rule([build("grpc_message", params, "f")])
        target = f"127.0.0.1:{rt.proxy_port}"
        async with grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await ch.unary_unary(f"/{SERVICE}/Strict")(b"hello")
    finally:
        await server.stop(None)
    assert err.value.code() == grpc.StatusCode.UNKNOWN
    assert "UnicodeDecodeError" in (err.value.details() or "")
