"""The ceiling probe: a reverse proxy of asyncio protocols and httptools on both sides, no features.

Each client connection gets its own upstream connection; requests go through one at a time with
their headers copied (hop-by-hop dropped), responses come back with their head rebuilt from the
parsed one. No ids, no decisions, no events, no error handling worth the name: what Python
costs per request here, before any feature.

Usage: python bench/probe_httptools.py --listen 127.0.0.1:8092 --upstream http://127.0.0.1:9000
"""

from __future__ import annotations

import asyncio

import httptools
from _procs import run_peer

HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"trailer", b"upgrade"}


class Upstream(asyncio.Protocol):
    def __init__(self, client: Client) -> None:
        self.client = client
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.head: list[bytes] = []
        self.reason = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.ready.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client.transport is not None:
            self.client.transport.close()

    def on_message_begin(self) -> None:
        self.reason = b""
        self.head = []

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() not in HOP:
            self.head.append(b"%s: %s\r\n" % (name, value))

    def on_headers_complete(self) -> None:
        code = self.parser.get_status_code()
        self.head.insert(0, b"HTTP/1.1 %d %s\r\n" % (code, self.reason))
        self.head.append(b"\r\n")
        self.client.write(b"".join(self.head))

    def on_body(self, body: bytes) -> None:
        self.client.write(body)

    def on_message_complete(self) -> None:
        self.client.done()


class Client(asyncio.Protocol):
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.up: Upstream | None = None
        self.url = b""
        self.head: list[bytes] = []
        self.queue: list[bytes] = []
        self.busy = False
        self.connecting: asyncio.Task[tuple[asyncio.BaseTransport, Upstream]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        loop = asyncio.get_running_loop()
        up = self.up = Upstream(self)
        self.connecting = loop.create_task(loop.create_connection(lambda: up, self.host, self.port))

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.up is not None and self.up.transport is not None:
            self.up.transport.close()

    def on_message_begin(self) -> None:
        self.url = b""
        self.head = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() not in HOP:
            self.head.append(b"%s: %s\r\n" % (name, value))

    def on_headers_complete(self) -> None:
        method = self.parser.get_method()
        self.head.insert(0, b"%s %s HTTP/1.1\r\n" % (method, self.url))
        self.head.append(b"\r\n")
        self.queue.append(b"".join(self.head))
        self.pump()

    def pump(self) -> None:
        if self.busy or not self.queue:
            return
        up = self.up
        assert up is not None
        if up.transport is None:
            up.ready.add_done_callback(lambda _: self.pump())
            return
        self.busy = True
        up.transport.write(self.queue.pop(0))

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def done(self) -> None:
        self.busy = False
        self.pump()


async def main(host: str, port: int, upstream: str) -> None:
    up_host, _, up_port = upstream.split("://", 1)[1].rstrip("/").rpartition(":")
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Client(up_host, int(up_port)), host, port, backlog=1024
    )
    print(f"httptools probe on http://{host}:{port} -> {upstream}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    run_peer(main, __doc__, "127.0.0.1:8092")
