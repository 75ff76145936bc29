"""WebSocket upgrades: relayed message by message in both directions until either side closes.

The upgrade request goes through the same decision and request-side faults as any request
(error, reset, latency, hang, upstream_down act before the relay starts); once the upgrade is
done, messages pass untouched.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from chaosproxy.errors import UpstreamError

if TYPE_CHECKING:
    from chaosproxy.proxy.server import ProxyCore

# Headers the websocket client library sets itself during the handshake.
HANDSHAKE = frozenset(
    {
        "host",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-protocol",
        "sec-websocket-extensions",
        "content-length",
    }
)


def is_upgrade(request: web.BaseRequest) -> bool:
    upgrade = request.headers.get("Upgrade")
    return upgrade is not None and upgrade.lower() == "websocket"


def bad_handshake(request: web.BaseRequest, request_id: str) -> web.Response | None:
    """A JSON 400 when the client's handshake is invalid, before anything goes upstream."""
    if web.WebSocketResponse().can_prepare(request).ok:
        return None
    body = {
        "error": {
            "code": 400,
            "message": "Bad Request",
            "details": "invalid websocket handshake",
            "requestId": request_id,
        }
    }
    return web.Response(
        status=400,
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers={"X-Request-Id": request_id},
    )


async def relay_websocket(
    core: ProxyCore,
    request: web.BaseRequest,
    request_id: str,
    headers: list[tuple[str, str]],
) -> web.StreamResponse:
    """Open the upstream websocket (UpstreamError when it cannot be had), accept the client's,
    and pump messages both ways until either side closes."""
    connect = getattr(core.upstream, "websocket", None)
    if connect is None:
        raise UpstreamError("protocol", "this upstream does not support websockets")
    protocols = tuple(
        p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()
    )
    up: aiohttp.ClientWebSocketResponse = await connect(request.raw_path, headers, protocols)
    down = web.WebSocketResponse(
        protocols=(up.protocol,) if up.protocol else (), autoping=False, max_msg_size=0
    )
    down.headers["X-Request-Id"] = request_id
    tasks: list[asyncio.Future[None]] = []
    try:
        await down.prepare(request)
        tasks = [
            asyncio.ensure_future(_pump(down, up)),
            asyncio.ensure_future(_pump(up, down)),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await up.close()
        await down.close()
    return down


async def _pump(
    src: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    dst: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
) -> None:
    async for msg in src:
        if msg.type == aiohttp.WSMsgType.TEXT:
            await dst.send_str(msg.data)
        elif msg.type == aiohttp.WSMsgType.BINARY:
            await dst.send_bytes(msg.data)
        elif msg.type == aiohttp.WSMsgType.PING:
            await dst.ping(msg.data)
        elif msg.type == aiohttp.WSMsgType.PONG:
            await dst.pong(msg.data)
        elif msg.type == aiohttp.WSMsgType.ERROR:
            break
    if not dst.closed:
        code = src.close_code or aiohttp.WSCloseCode.OK
        await dst.close(code=code)
