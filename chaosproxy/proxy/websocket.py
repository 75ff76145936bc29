"""Upgrades (WebSocket and any other `Upgrade:`): once the upstream answers `101`, bytes are
relayed untouched in both directions until either side closes.

The upgrade request goes through the same decision and request-side faults as any request
(error, reset, latency, hang, upstream_down act before the relay starts). An upstream that
refuses the upgrade gets its answer relayed, and the connection closes after it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from typing import TYPE_CHECKING

from chaosproxy.common.errors import UpstreamError
from chaosproxy.faults.base import Reply
from chaosproxy.proxy.forward import upstream_lines
from chaosproxy.proxy.headers import end_to_end
from chaosproxy.proxy.native import make_ssl_context

if TYPE_CHECKING:
    from chaosproxy.proxy.exchange import ProxyExchange

log = logging.getLogger("chaosproxy.proxy")

_MAX_HEAD = 64 * 1024
_READ = 64 * 1024


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
    """The innermost step of an upgrade request: forward it, relay the answer, then the bytes."""
    head = ex.head
    upgrade = head.header("upgrade") or ""
    if upgrade.strip().lower() == "websocket":
        problem = bad_websocket_handshake(ex)
        if problem is not None:
            await ex.respond(
                400, ex.error_body(400, problem), [("Content-Type", "application/json")]
            )
            return
    config = ex.core.upstream.config
    url = config.url
    tls = url.scheme == "https"
    host = url.raw_host or "localhost"
    port = url.port or (443 if tls else 80)
    lines, has_host, _ = upstream_lines(ex)
    start = f"{head.method} {head.target} HTTP/1.1\r\n"
    if not has_host:
        authority = f"[{host}]" if ":" in host else host
        default = 443 if tls else 80
        start += f"Host: {authority if port == default else f'{authority}:{port}'}\r\n"
    end = f"Connection: Upgrade\r\nUpgrade: {upgrade}\r\n\r\n"
    t = ex.clock.monotonic()
    try:
        async with asyncio.timeout(config.timeout):
            reader, writer = await asyncio.open_connection(
                host,
                port,
                ssl=make_ssl_context(config.ca_file, config.insecure) if tls else None,
                server_hostname=host if tls else None,
                limit=_MAX_HEAD,
            )
            try:
                writer.write(
                    start.encode("latin-1", "replace") + lines + end.encode("latin-1", "replace")
                )
                raw = await reader.readuntil(b"\r\n\r\n")
            except BaseException:
                writer.close()
                raise
    except TimeoutError:
        ex.upstream_error = "timeout"
        raise UpstreamError("timeout", "the upstream did not answer the upgrade in time") from None
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
        reason = "refused" if isinstance(e, OSError) else "protocol"
        ex.upstream_error = reason
        raise UpstreamError(reason, f"the upgrade could not be forwarded: {e}") from e
    finally:
        ex.upstream_duration = ex.clock.monotonic() - t
    try:
        status, reason, raw_headers = _parse_head(raw)
    except ValueError as e:
        writer.close()
        ex.upstream_error = "protocol"
        raise UpstreamError("protocol", f"invalid upstream response: {e}") from e
    try:
        if status != 101:
            await _relay_refusal(ex, status, reason, raw_headers, reader)
            return
        await _tunnel(ex, raw, raw_headers, reader, writer)
    finally:
        writer.close()


def _parse_head(raw: bytes) -> tuple[int, str, list[tuple[str, str]]]:
    lines = raw.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise ValueError(f"bad status line {lines[0][:80]!r}")
    headers = []
    for line in lines[1:]:
        if line:
            k, sep, v = line.partition(":")
            if not sep:
                raise ValueError(f"bad header line {line[:80]!r}")
            headers.append((k, v.strip()))
    return int(code), reason, headers


async def _relay_refusal(
    ex: ProxyExchange,
    status: int,
    reason: str,
    raw_headers: list[tuple[str, str]],
    reader: asyncio.StreamReader,
) -> None:
    """The upstream refused the upgrade: its answer goes back as a normal response."""
    length = next((v for k, v in raw_headers if k.lower() == "content-length"), None)
    data = b""
    if length is not None and length.strip().isdigit():
        with contextlib.suppress(asyncio.IncompleteReadError):
            data = await reader.readexactly(min(int(length), 1024 * 1024))
    headers = [(k, v) for k, v in end_to_end(raw_headers) if k.lower() != "content-length"]
    headers.append(("Content-Length", str(len(data))))
    ex.head.keep_alive = False
    ex.send_head(Reply(status, reason, headers), data)
    ex.end()


async def _tunnel(
    ex: ProxyExchange,
    raw: bytes,
    raw_headers: list[tuple[str, str]],
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    conn = ex.conn
    if not any(k.lower() == "x-request-id" for k, _ in raw_headers):
        raw = raw[:-2] + f"X-Request-Id: {ex.request_id}\r\n\r\n".encode("latin-1", "replace")
    ex._status = 101
    ex.head_sent = True
    conn.mark_head_sent()
    conn.write(raw)
    ex._finished = True
    source = conn.tunnel
    if source is None:  # the client is gone already
        return

    async def up() -> None:
        async for chunk in source:
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    async def down() -> None:
        while True:
            chunk = await reader.read(_READ)
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
