"""An upgrade's upstream connection: opened for it alone, the request head written, the answer's
head read (bounded), then handed to the downstream half as a `Tunnel` of raw bytes.

Never part of the keep-alive pool: after a `101` the connection speaks another protocol, and an
upgrade the upstream refused is answered once and closed.
"""

from __future__ import annotations

import asyncio
import ssl

from chaosproxy.common.errors import UpstreamError

# The answer's head, status line to blank line: past it, a protocol error (502).
_MAX_HEAD = 64 * 1024
# Bytes read from the upstream at a time while relaying.
_READ = 64 * 1024


class StreamTunnel:
    """The `Tunnel` over asyncio's streams."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        status: int,
        reason: str,
        head: bytes,
        raw_headers: list[tuple[bytes, bytes]],
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.status = status
        self.reason = reason
        self.head = head
        self.raw_headers = raw_headers

    async def read(self) -> bytes:
        return await self._reader.read(_READ)

    async def read_exactly(self, n: int) -> bytes:
        try:
            return await self._reader.readexactly(n)
        except asyncio.IncompleteReadError:
            return b""

    async def send(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    def send_eof(self) -> None:
        if self._writer.can_write_eof():
            self._writer.write_eof()

    def close(self) -> None:
        self._writer.close()


async def open_tunnel(
    host: str, port: int, tls: ssl.SSLContext | None, timeout: float, head: bytes
) -> StreamTunnel:
    """Connect, send `head` (an upgrade request's), and return once the answer's head arrived
    (within `timeout` for all of it); failures are `UpstreamError`s."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                host,
                port,
                ssl=tls,
                server_hostname=host if tls is not None else None,
                limit=_MAX_HEAD,
            )
            try:
                writer.write(head)
                raw = await reader.readuntil(b"\r\n\r\n")
            except BaseException:
                writer.close()
                raise
    except TimeoutError:
        raise UpstreamError("timeout", "the upstream did not answer the upgrade in time") from None
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
        reason = "refused" if isinstance(e, OSError) else "protocol"
        raise UpstreamError(reason, f"the upgrade could not be forwarded: {e}") from e
    try:
        status, reason, headers = parse_head(raw)
    except ValueError as e:
        writer.close()
        raise UpstreamError("protocol", f"invalid upstream response: {e}") from e
    return StreamTunnel(reader, writer, status, reason, raw, headers)


def parse_head(raw: bytes) -> tuple[int, str, list[tuple[bytes, bytes]]]:
    """Status, reason and header pairs of a response head (values trimmed); ValueError when it
    is not HTTP/1.x."""
    lines = raw.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or not (code.isascii() and code.isdigit()):
        raise ValueError(f"bad status line {lines[0][:80]!r}")
    headers = []
    for line in lines[1:]:
        if line:
            k, sep, v = line.partition(":")
            if not sep:
                raise ValueError(f"bad header line {line[:80]!r}")
            headers.append((k.encode("latin-1"), v.strip().encode("latin-1")))
    return int(code), reason, headers
