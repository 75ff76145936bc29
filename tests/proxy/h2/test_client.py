"""The HTTP/2 upstream pool: streams multiplexed on few connections, a refused upstream, a
stream given up by the client reset upstream too."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from tests.conftest import StartProxy
from tests.proxy.h2.conftest import CHANNEL_OPTIONS, SERVICE, GrpcSetup


async def test_many_concurrent_calls_share_the_connections(grpc_via_proxy: GrpcSetup) -> None:
    g = grpc_via_proxy
    answers = await asyncio.gather(*(g.unary()(b"n%d" % i) for i in range(50)))
    assert answers == [b"echo:n%d" % i for i in range(50)]
    assert 1 <= len(g.proxy.h2_upstream.connections) <= g.proxy.h2_upstream.max_connections


async def test_upstream_down_is_unavailable(start_proxy: StartProxy, refused_url: str) -> None:
    rt = await start_proxy(refused_url)
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{rt.proxy_port}", options=CHANNEL_OPTIONS
    ) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await ch.unary_unary(f"/{SERVICE}/Unary")(b"x")
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE  # a 502, as Envoy maps it


async def test_a_client_cancel_resets_the_upstream_stream(grpc_via_proxy: GrpcSetup) -> None:
    """The client cancels a bidi call mid-stream (RST_STREAM CANCEL): the proxy's stream ends
    and its upstream stream is reset too, so no upstream stream stays open."""
    g = grpc_via_proxy
    call = g.channel.stream_stream(f"/{SERVICE}/Chat")()
    await call.write(b"one")
    assert await call.read() == b"re:one"
    pool = g.proxy.h2_upstream
    assert sum(c.h2.open_outbound_streams for c in pool.connections) == 1
    call.cancel()
    await g.done.until(1)
    assert g.done[0].protocol == "h2"
    assert sum(c.h2.open_outbound_streams for c in pool.connections) == 0
    assert all(not c.streams for c in pool.connections)
