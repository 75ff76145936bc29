"""The HTTP/2 measuring stick: a minimal h2c reverse proxy on asyncio (uvloop) and the `h2`
library, with no features: one upstream h2c connection per client connection, each client
stream relayed as one upstream stream, DATA acknowledged as soon as it is handed on.

What chaosproxy's HTTP/2 path does on top (decisions, events, stats, request ids, forwarded
headers, flow control tied to forwarding, a shared upstream pool) is what the ratio
"chaosproxy / this" prices. Headers as bytes and the receive windows chaosproxy uses (256 KiB a
stream, 4 MiB a connection), so the library's own per-frame cost is the same on both.

Usage: python bench/h2_yardstick_proxy.py --listen 127.0.0.1:8091 --upstream http://127.0.0.1:9000
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

from _procs import run_peer
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    RequestReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import H2Error
from h2.settings import SettingCodes

WINDOW, CONN_WINDOW = 256 * 1024, 4 * 1024 * 1024


class Side(asyncio.Protocol):
    """One HTTP/2 connection; `peer` is the other side, `ids` maps our stream ids to its."""

    def __init__(self, client_side: bool) -> None:
        self.h2 = H2Connection(H2Configuration(client_side=client_side, header_encoding=None))
        self.peer: Side | None = None
        self.ids: dict[int, int] = {}
        self.out: dict[int, tuple[bytes, bool]] = {}  # stream -> (pending bytes, end?)
        self.transport: asyncio.Transport | None = None
        self.backlog: list[Event] = []  # events that came before the peer was connected
        self.connecting: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.h2.initiate_connection()
        self.h2.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: WINDOW})
        self.h2.increment_flow_control_window(CONN_WINDOW - 65535)
        self.flush()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except H2Error:
            self.close()
            return
        if self.peer is None or self.peer.transport is None:
            self.backlog += events
        else:
            self.relay(events)
        self.flush()

    def relay(self, events: list[Event]) -> None:
        peer = self.peer
        assert peer is not None
        for ev in events:
            with contextlib.suppress(H2Error):  # a stream the other side already closed
                self.one(ev, peer)
        peer.flush()

    def one(self, ev: Event, peer: Side) -> None:
        sid = getattr(ev, "stream_id", 0)
        if isinstance(ev, RequestReceived | ResponseReceived | TrailersReceived):
            if isinstance(ev, RequestReceived):
                up = peer.h2.get_next_available_stream_id()
                self.ids[sid], peer.ids[up] = up, sid
            end = ev.stream_ended is not None
            peer.h2.send_headers(self.ids[sid], ev.headers, end_stream=end)
            if end:
                self.ids.pop(sid, None)
        elif isinstance(ev, DataReceived):
            self.h2.acknowledge_received_data(ev.flow_controlled_length, sid)
            if sid in self.ids:
                peer.send(self.ids[sid], ev.data, ev.stream_ended is not None)
                if ev.stream_ended is not None:
                    self.ids.pop(sid, None)
        elif isinstance(ev, StreamEnded) and sid in self.ids:
            peer.send(self.ids.pop(sid), b"", True)
        elif isinstance(ev, StreamReset) and sid in self.ids:
            peer.out.pop(self.ids[sid], None)
            peer.h2.reset_stream(self.ids.pop(sid), ev.error_code)
        elif isinstance(ev, WindowUpdated):
            for s in list(self.out) if sid == 0 else [sid]:
                self.push(s)
        elif isinstance(ev, ConnectionTerminated):
            self.close()

    def send(self, sid: int, data: bytes, end: bool) -> None:
        old, _ = self.out.get(sid, (b"", False))
        self.out[sid] = (old + data, end)
        self.push(sid)

    def push(self, sid: int) -> None:
        """What the peer's windows allow of the stream's pending bytes, then its end."""
        if sid not in self.out:
            return
        data, end = self.out.pop(sid)
        while data:
            h2 = self.h2
            n = min(len(data), h2.local_flow_control_window(sid), h2.max_outbound_frame_size)
            if n <= 0:
                self.out[sid] = (data, end)  # until a WINDOW_UPDATE
                return
            h2.send_data(sid, data[:n], end_stream=end and n == len(data))
            data = data[n:]
            if not data:
                return
        if end:
            self.h2.end_stream(sid)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()


async def main(host: str, port: int, upstream: str) -> None:
    loop = asyncio.get_running_loop()
    up = urlsplit(upstream)
    up_host, up_port = up.hostname or "127.0.0.1", up.port or 80

    def client() -> Side:
        down = Side(client_side=False)

        async def connect() -> None:
            try:
                _, peer = await loop.create_connection(
                    lambda: Side(client_side=True), up_host, up_port
                )
            except OSError:
                down.close()
                return
            down.peer, peer.peer = peer, down
            if down.backlog:
                down.relay(down.backlog)
                down.backlog = []
                down.flush()

        down.connecting = loop.create_task(connect())
        return down

    server = await loop.create_server(client, host, port, backlog=1024)
    print(f"h2 yardstick proxy on http://{host}:{port} -> {upstream}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    run_peer(main, __doc__, "127.0.0.1:8091")
