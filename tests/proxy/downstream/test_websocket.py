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


def recording_ws_app(seen: list[dict[str, str]]) -> web.Application:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        seen.append(dict(request.headers))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str("hi")
        async for _ in ws:
            pass
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    return app


async def test_invalid_handshake_is_a_json_400_and_never_reaches_the_upstream(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    seen: list[dict[str, str]] = []
    rt = await start_proxy(await start_upstream(recording_ws_app(seen)))
    headers = {"Upgrade": "websocket", "Connection": "Upgrade"}  # no Sec-WebSocket-Key
    async with aiohttp.ClientSession() as s, s.get(rt.proxy_url + "/ws", headers=headers) as r:
        body = await r.json()
    assert r.status == 400 and body["error"]["requestId"] == r.headers["X-Request-Id"]
    assert seen == []


async def test_upgrade_headers_follow_the_proxys_forwarding_rules(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    seen: list[dict[str, str]] = []
    rt = await start_proxy(await start_upstream(recording_ws_app(seen)))
    headers = {"X-Forwarded-For": "203.0.113.9", "x-chaos-fault": "reset", "X-Keep": "1"}
    async with (
        aiohttp.ClientSession() as s,
        s.ws_connect(rt.proxy_url + "/ws", headers=headers) as ws,
    ):
        assert await ws.receive_str(timeout=5) == "hi"
    [got] = seen
    assert got["X-Forwarded-For"] == "203.0.113.9, 127.0.0.1"
    assert got["X-Keep"] == "1" and "x-chaos-fault" not in {k.lower() for k in got}


async def test_a_rule_faults_the_upgrade_request(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    from chaosproxy.faults import build

    seen: list[dict[str, str]] = []
    rt = await start_proxy(await start_upstream(recording_ws_app(seen)))
    rt.engine.add_rule([build("error", {"status": 503}, "fault")])
    async with aiohttp.ClientSession() as s:
        try:
            async with s.ws_connect(rt.proxy_url + "/ws"):
                raise AssertionError("the upgrade should have failed")
        except aiohttp.WSServerHandshakeError as e:
            assert e.status == 503
    assert seen == []
