"""WebSocket upgrades: relayed message by message in both directions until either side closes."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from chaosproxy.errors import UpstreamError
from chaosproxy.proxy.headers import decode_raw, end_to_end

if TYPE_CHECKING:
    from chaosproxy.proxy.server import ProxyCore

log = logging.getLogger("chaosproxy.proxy")

# Headers the websocket client library sets itself during the handshake.
_HANDSHAKE = frozenset(
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


async def relay_websocket(
    core: ProxyCore, request: web.BaseRequest, request_id: str
) -> web.StreamResponse:
    from chaosproxy.proxy.exchange import error_json

    upstream = core.upstream
    connect = getattr(upstream, "websocket", None)
    protocols = tuple(
        p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()
    )
    headers = [
        (k, v)
        for k, v in end_to_end(decode_raw(request.raw_headers))
        if k.lower() not in _HANDSHAKE
    ]
    headers.append(("X-Request-Id", request_id))
    try:
        if connect is None:
            raise UpstreamError("protocol", "this upstream does not support websockets")
        up: aiohttp.ClientWebSocketResponse = await connect(request.raw_path, headers, protocols)
    except UpstreamError as e:
        log.warning(
            "websocket upstream %s [%s]: %s",
            e.reason,
            request_id,
            e.details,
            extra={"request_id": request_id},
        )
        status = 504 if e.reason == "timeout" else 502
        return web.Response(
            status=status,
            body=error_json(status, request_id, e.details),
            content_type="application/json",
            headers={"X-Request-Id": request_id},
        )
    down = web.WebSocketResponse(
        protocols=(up.protocol,) if up.protocol else (), autoping=False, max_msg_size=0
    )
    down.headers["X-Request-Id"] = request_id
    await down.prepare(request)

    async def pump(
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

    tasks = [
        asyncio.ensure_future(pump(down, up)),
        asyncio.ensure_future(pump(up, down)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await up.close()
        await down.close()
    return down
