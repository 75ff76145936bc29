"""A raw-socket HTTP/1.1 client for tests that must see exactly the bytes on the wire."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import struct
from dataclasses import dataclass


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


def parse_head(head: bytes) -> tuple[int, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = []
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            headers.append((k, v.strip()))
    return status, headers


async def read_head(reader: asyncio.StreamReader) -> tuple[int, list[tuple[str, str]]]:
    head = await reader.readuntil(b"\r\n\r\n")
    return parse_head(head[:-4])


async def raw_request(url: str, request: bytes, timeout: float = 10.0) -> RawResponse:
    """Send `request` verbatim on a fresh connection, read one response until the server closes.

    The request should carry `Connection: close` so the end of the body is the end of the stream.
    """
    host, port = _host_port(url)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        async with asyncio.timeout(timeout):
            writer.write(request)
            await writer.drain()
            status, headers = await read_head(reader)
            body = await reader.read()
    finally:
        writer.close()
    return RawResponse(status, headers, body)


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0): a client that is gone, not one that half-closed."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _host_port(url: str) -> tuple[str, int]:
    rest = url.split("://", 1)[1].split("/", 1)[0]
    host, _, port = rest.rpartition(":")
    return host, int(port)
