"""WebSocket upgrades are relayed message by message in both directions until either side closes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from tests.conftest import StartProxy

StartUpstream = Callable[[web.Application], Awaitable[str]]


def ws_app(closed: asyncio.Event | None = None) -> web.Application:
    """Echoes text as `echo:<text>` and binary reversed; `close` makes the upstream close."""

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str("hello from upstream")
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                if msg.data == "close":
                    await ws.close(code=4001, message=b"bye")
                    break
                await ws.send_str("echo:" + msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(msg.data[::-1])
        if closed is not None:
            closed.set()
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    return app


async def test_upstream_message_reaches_the_client(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(await start_upstream(ws_app()))
    async with aiohttp.ClientSession() as s, s.ws_connect(rt.proxy_url + "/ws") as ws:
        assert await ws.receive_str(timeout=5) == "hello from upstream"


async def test_text_message_is_relayed_both_ways(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(await start_upstream(ws_app()))
    async with aiohttp.ClientSession() as s, s.ws_connect(rt.proxy_url + "/ws") as ws:
        await ws.receive_str(timeout=5)
        await ws.send_str("ping ✓")
        assert await ws.receive_str(timeout=5) == "echo:ping ✓"


async def test_binary_message_is_relayed_both_ways(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    payload = bytes(range(256)) * 300
    rt = await start_proxy(await start_upstream(ws_app()))
    async with aiohttp.ClientSession() as s, s.ws_connect(rt.proxy_url + "/ws") as ws:
        await ws.receive_str(timeout=5)
        await ws.send_bytes(payload)
        assert await ws.receive_bytes(timeout=5) == payload[::-1]


async def test_upstream_close_reaches_the_client_with_its_code(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(await start_upstream(ws_app()))
    async with aiohttp.ClientSession() as s, s.ws_connect(rt.proxy_url + "/ws") as ws:
        await ws.receive_str(timeout=5)
        await ws.send_str("close")
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 4001 or msg.data == 4001


async def test_client_close_reaches_the_upstream(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    closed = asyncio.Event()
    rt = await start_proxy(await start_upstream(ws_app(closed)))
    async with aiohttp.ClientSession() as s, s.ws_connect(rt.proxy_url + "/ws") as ws:
        await ws.receive_str(timeout=5)
        await ws.close()
    await asyncio.wait_for(closed.wait(), 5)


async def test_upgrade_to_a_down_upstream_gives_502_json(
    start_proxy: StartProxy, refused_url: str
) -> None:
    rt = await start_proxy(refused_url)
    async with aiohttp.ClientSession() as s:
        try:
            async with s.ws_connect(rt.proxy_url + "/ws"):
                raise AssertionError("the handshake should fail")
        except aiohttp.WSServerHandshakeError as e:
            assert e.status == 502
