"""The HTTP/2 upstream client: a few h2c (prior knowledge) connections, streams multiplexed.

gRPC requests always go this way (gRPC is HTTP/2 end to end), and every request of an HTTP/2
client with `--upstream-h2`. A connection carries streams up to the upstream's
MAX_CONCURRENT_STREAMS; past that a second one opens, up to `max_connections`, then a new
stream waits for a slot. A connection the upstream closed or sent GOAWAY on takes no new
streams (they go on a new connection); the ones it carries below the GOAWAY's last stream id
finish, those above it were refused (`forward.py` sends them again), and it closes once none is
left (an upstream's graceful stop: grpcio's `stop(grace)`, Envoy's and nghttpd's drains).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import yarl
from h2.events import Event, InformationalResponseReceived, ResponseReceived

from chaosproxy.common.errors import UpstreamError
from chaosproxy.proxy.h2.connection import H2Wire
from chaosproxy.proxy.h2.headers import H2Headers
from chaosproxy.proxy.h2.stream import Stream

_MAX_STREAM_ID = 2**31 - 1


class H2ClientConnection(H2Wire):
    """One connection to the upstream."""

    def __init__(self, pool: H2Upstream) -> None:
        super().__init__(client_side=True)
        self.pool = pool

    def on_event(self, ev: Event) -> None:
        if isinstance(ev, ResponseReceived):
            s = self.streams.get(ev.stream_id or 0)
            if s is not None and not s.head.done():
                s.head.set_result(list(ev.headers or []))
        elif isinstance(ev, InformationalResponseReceived):
            pass  # 1xx: the final answer follows; HTTP/2 clients need none of ours

    def on_lost(self) -> None:
        self.pool.lost(self)

    def on_goaway(self) -> None:
        self.pool.draining(self)
        if not self.streams:
            self.close()

    @property
    def has_room(self) -> bool:
        if self.closed or self.goaway:
            return False
        h2 = self.h2
        last = h2.highest_outbound_stream_id or 0
        limit = h2.remote_settings.max_concurrent_streams
        return h2.open_outbound_streams < limit and last < _MAX_STREAM_ID - 2

    def start(self, headers: H2Headers, end: bool) -> Stream:
        sid = self.h2.get_next_available_stream_id()
        s = Stream(sid, self.ack)
        self.streams[sid] = s
        self.h2.send_headers(sid, headers, end_stream=end)
        self.flush()
        return s

    def done(self, s: Stream) -> None:
        """The exchange on `s` is over: its slot is free."""
        self.forget(s)
        if self.goaway and not self.streams:
            self.close()  # drained: the upstream said GOAWAY and the last stream ended
        self.pool.freed()


class H2Upstream:
    """The pool of HTTP/2 connections to one upstream."""

    def __init__(
        self,
        url: yarl.URL,
        connect_timeout: float = 5.0,
        max_connections: int = 4,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.url = url
        self.host = url.host or "127.0.0.1"
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.scheme = b"https" if url.scheme == "https" else b"http"
        self.authority = (url.raw_authority or self.host).encode("latin-1")
        self.connect_timeout = connect_timeout
        self.max_connections = max_connections
        self.ssl = ssl_context
        self.connections: list[H2ClientConnection] = []
        self.drained: set[H2ClientConnection] = set()  # after a GOAWAY, until their streams end
        self._connecting = 0
        self._room: asyncio.Event | None = None
        self.closed = False

    async def open(self, headers: H2Headers, end: bool) -> tuple[H2ClientConnection, Stream]:
        """A new stream with `headers` sent (END_STREAM when `end`): its connection and it."""
        while True:
            if self.closed:
                raise UpstreamError("refused", "the proxy is shutting down")
            for c in self.connections:
                if c.has_room:
                    return c, c.start(headers, end)
            if not self._connecting and len(self.connections) < self.max_connections:
                c = await self._connect()
                self.freed()  # the streams that waited for it may fit too
                return c, c.start(headers, end)
            if self._room is None:
                self._room = asyncio.Event()
            await self._room.wait()

    async def _connect(self) -> H2ClientConnection:
        loop = asyncio.get_running_loop()
        self._connecting += 1
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, proto = await loop.create_connection(
                    lambda: H2ClientConnection(self),
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.host if self.ssl else None,
                )
        except TimeoutError:
            raise UpstreamError(
                "timeout",
                f"connecting to {self.host}:{self.port} took over {self.connect_timeout:g}s",
            ) from None
        except OSError as e:
            raise UpstreamError(
                "refused", f"cannot connect to {self.host}:{self.port}: {e.strerror or e}"
            ) from None
        finally:
            self._connecting -= 1
        self.connections.append(proto)
        return proto

    def lost(self, c: H2ClientConnection) -> None:
        self.drained.discard(c)
        with contextlib.suppress(ValueError):
            self.connections.remove(c)
        self.freed()

    def draining(self, c: H2ClientConnection) -> None:
        """The upstream said GOAWAY on `c`: new streams go elsewhere (a new connection)."""
        with contextlib.suppress(ValueError):
            self.connections.remove(c)
        if not c.closed:
            self.drained.add(c)
        self.freed()

    def freed(self) -> None:
        r = self._room
        if r is not None:
            self._room = None
            r.set()

    async def reachable(self) -> bool:
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, w = await asyncio.open_connection(self.host, self.port)
        except (OSError, TimeoutError):
            return False
        w.close()
        return True

    async def close(self) -> None:
        self.closed = True
        for c in [*self.connections, *self.drained]:
            c.close_gracefully()
            c.close()
        self.connections.clear()
        self.drained.clear()
        self.freed()


def h2_client_ssl(ca_file: str | None, insecure: bool) -> ssl.SSLContext:
    """TLS to an https upstream, offering only `h2` by ALPN."""
    ctx = ssl.create_default_context(cafile=ca_file)
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    return ctx
