"""Upgrades (WebSocket and any other `Upgrade:`): once the upstream answers `101`, bytes are
relayed untouched in both directions until either side closes.

The upgrade request goes through the same decision and request-side faults as any request
(error, reset, latency, hang, upstream_down act before the relay starts). An upstream that
refuses the upgrade gets its answer relayed, and the connection closes after it.
"""

from __future__ import annotations

import asyncio
import base64

from chaosproxy.common.errors import UpstreamError
from chaosproxy.faults.base import Reply
from chaosproxy.proxy.downstream.exchange import ProxyExchange
from chaosproxy.proxy.upstream.interface import Tunnel
from chaosproxy.proxy.wire.headers import HOP_BY_HOP_BYTES, end_to_end

# An upgrade refused with a body: at most this much of it is relayed.
_MAX_REFUSAL_BODY = 1024 * 1024


def bad_websocket_handshake(ex: ProxyExchange) -> str | None:
    """Why a WebSocket handshake is invalid (RFC 6455 §4.2.1), or None when it is fine."""
    head = ex.head
    if head.method != "GET":
        return "a websocket handshake must be a GET"
    key = head.header("sec-websocket-key")
    try:
        if key is None or len(base64.b64decode(key.strip(), validate=True)) != 16:
            return "invalid websocket handshake: bad or missing Sec-WebSocket-Key"
    except ValueError:
        return "invalid websocket handshake: bad or missing Sec-WebSocket-Key"
    if (head.header("sec-websocket-version") or "").strip() != "13":
        return "invalid websocket handshake: Sec-WebSocket-Version must be 13"
    return None


async def relay_upgrade(ex: ProxyExchange) -> None:
    """The innermost step of an upgrade request: forward it (`Upstream.upgrade`), relay the
    answer, then the bytes."""
    head = ex.head
    upgrade = head.header("upgrade") or ""
    if upgrade.strip().lower() == "websocket":
        problem = bad_websocket_handshake(ex)
        if problem is not None:
            await ex.respond(
                400, ex.error_body(400, problem), [("Content-Type", "application/json")]
            )
            return
    t = ex.clock.monotonic()
    try:
        tunnel = await ex.core.forwarder.upgrade(
            head.method, head.target, head.raw, head.client_ip, ex.request_id, upgrade
        )
    except UpstreamError as e:
        ex.upstream_error = e.reason
        raise
    finally:
        ex.upstream_duration = ex.clock.monotonic() - t
    try:
        if tunnel.status != 101:
            await _relay_refusal(ex, tunnel)
            return
        await _relay(ex, tunnel)
    finally:
        tunnel.close()


_REFUSAL_SKIP = HOP_BY_HOP_BYTES | {b"content-length"}


async def _relay_refusal(ex: ProxyExchange, tunnel: Tunnel) -> None:
    """The upstream refused the upgrade: its answer goes back as a normal response."""
    raw = tunnel.raw_headers
    length = next((v for k, v in raw if k.lower() == b"content-length"), None)
    data = b""
    if length is not None and length.strip().isdigit():
        data = await tunnel.read_exactly(min(int(length), _MAX_REFUSAL_BODY))
    headers = [
        (k.decode("latin-1"), v.decode("latin-1")) for k, v in end_to_end(raw, _REFUSAL_SKIP)[0]
    ]
    headers.append(("Content-Length", str(len(data))))
    ex.head.keep_alive = False
    ex.send_head(Reply(tunnel.status, tunnel.reason, headers), data)
    ex.end()


async def _relay(ex: ProxyExchange, tunnel: Tunnel) -> None:
    """The upstream switched protocols: its head goes to the client (with the request id),
    then bytes both ways until either side closes."""
    conn = ex.conn
    raw = tunnel.head
    if not any(k.lower() == b"x-request-id" for k, _ in tunnel.raw_headers):
        raw = raw[:-2] + f"X-Request-Id: {ex.request_id}\r\n\r\n".encode("latin-1", "replace")
    ex.switched(raw)
    source = conn.tunnel
    if source is None:  # the client is gone already
        return

    async def up() -> None:
        async for chunk in source:
            await tunnel.send(chunk)
        tunnel.send_eof()

    async def down() -> None:
        while True:
            chunk = await tunnel.read()
            if not chunk:
                break
            conn.write(chunk)
            await conn.drain()

    tasks = [asyncio.ensure_future(up()), asyncio.ensure_future(down())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        conn.close()
