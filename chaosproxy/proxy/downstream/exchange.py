"""One client request in flight: the proxy's implementation of the faults' `Exchange`.

Four jobs, four places: the request view is `request.RequestHead` (what rules and faults read),
the fault API is `ProxyExchange` here (hooks, terminal actions, the bytes it writes to the client;
what it shares with an HTTP/2 stream is `exchange_base.BaseExchange`),
forwarding upstream is `upstream.forward.Forwarder` (request headers, the upstream call), and
streaming the reply back through the faults' hooks is `pipeline`, which this exchange drives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Coroutine, Iterable
from functools import partial
from typing import Any, Protocol

from multidict import CIMultiDictProxy

from chaosproxy.common.errors import UpstreamError
from chaosproxy.faults.base import Reply
from chaosproxy.proxy.downstream import pipeline
from chaosproxy.proxy.downstream.exchange_base import BaseExchange, Site, retry_after_seconds
from chaosproxy.proxy.downstream.listener import ClientConnection
from chaosproxy.proxy.downstream.relay import Relay, SendNow, can_relay, stale_error
from chaosproxy.proxy.downstream.request import RequestBody, RequestHead
from chaosproxy.proxy.downstream.responses import answer_head, body_allowed, response_head
from chaosproxy.proxy.upstream.client import IDEMPOTENT
from chaosproxy.proxy.upstream.forward import Forwarder
from chaosproxy.proxy.upstream.interface import Stale, UpstreamResponse

log = logging.getLogger("chaosproxy.proxy")

_LINGER_RST = struct.pack("ii", 1, 0)


class ProxySite(Site, Protocol):
    """What an HTTP/1.1 exchange reads of the proxy that made it (the `ProxyCore`)."""

    @property
    def forwarder(self) -> Forwarder: ...
    @property
    def send_now(self) -> SendNow | None: ...


class ProxyExchange(BaseExchange):
    """State of one exchange; faults drive it through the methods of `faults.base.Exchange`,
    register hooks through its `Hooks` base, and `pipeline` drives it as the `Wire`."""

    __slots__ = ("_chunked", "body", "conn", "head")

    core: ProxySite

    def __init__(
        self,
        core: ProxySite,
        head: RequestHead,
        body: RequestBody | None,
        conn: ClientConnection,
        request_id: str,
    ) -> None:
        BaseExchange.__init__(self, core, request_id, core.clock.monotonic(), head.t0)
        self.head = head
        self.body = body
        self.conn = conn
        self._chunked = False

    # ------------------------------------------------------------ request views

    @property
    def method(self) -> str:
        return self.head.method

    @property
    def path(self) -> str:
        return self.head.path

    @property
    def target(self) -> str:
        """The request target exactly as received (path and query, still encoded)."""
        return self.head.target

    @property
    def query_string(self) -> str:
        return self.head.query_string

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        return self.head.multidict

    @property
    def client_ip(self) -> str:
        return self.head.client_ip

    # ------------------------------------------------------------ state

    @property
    def client_gone(self) -> bool:
        return self.conn.closed

    @property
    def upstream_url(self) -> str:
        return str(self.core.forwarder.upstream.config.url)

    # ------------------------------------------------------------ terminal actions

    async def respond(
        self, status: int, body: bytes, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        out = self.answer_fields(status, body, headers)
        if body_allowed(self.method, status) or self.method == "HEAD":
            out.append(("Content-Length", str(len(body))))
        out.append(("X-Request-Id", self.request_id))
        if self.mark is not None:
            out.append(("X-Chaos-Injected", self.mark))
        if self.head.version == "1.0" and self.head.keep_alive:
            out.append(("Connection", "keep-alive"))  # HTTP/1.0 closes unless told otherwise
        self._finished = True
        self._status = status
        data = response_head(status, None, out)
        if body_allowed(self.method, status):
            data += body
        self._mark_sent()
        self.conn.write(data)
        self.complete = True
        with contextlib.suppress(ConnectionError):
            await self.conn.drain()

    async def write_raw(self, data: bytes) -> None:
        if self.conn.closed:
            raise ConnectionResetError("client disconnected")
        self._mark_sent()
        self.conn.write(data)
        await self.conn.drain()

    async def flush(self) -> None:
        tr = self.conn.transport
        if tr is None or tr.is_closing() or not tr.get_write_buffer_size():
            return
        # With a zero high-water mark, drain() returns only once the buffer is empty.
        tr.set_write_buffer_limits(high=0)
        await self.conn.drain()

    def reset(self) -> None:
        self._finished = True
        self.complete = False
        tr = self.conn.transport
        if tr is None:
            return
        sock = tr.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        tr.abort()

    def close(self) -> None:
        self._finished = True
        self.complete = False
        self.conn.close()

    # ------------------------------------------------------------ the pipeline's Wire

    def _mark_sent(self) -> None:
        if not self.head_sent:
            self.head_sent = True
            self.conn.mark_head_sent()

    async def fetch(self) -> UpstreamResponse:
        """Send the request upstream; its response once the head arrived. The time it took and
        a failure's reason are kept here (for events and logs)."""
        body = self.body
        if body is not None and not body.complete:
            await body.buffered()  # no upstream connection is held while a body trickles in
        t = self.clock.monotonic()
        head = self.head
        try:
            return await self.core.forwarder.request(
                head.method, head.target, head.raw, head.client_ip, self.request_id, body
            )
        except UpstreamError as e:
            self.upstream_error = e.reason
            raise
        finally:
            self.upstream_duration = self.clock.monotonic() - t

    def switched(self, head: bytes) -> None:
        """The upstream's `101` head went to the client: the connection now relays bytes."""
        self._status = 101
        self._mark_sent()
        self.conn.write(head)
        self._finished = True

    def send_head(self, reply: Reply, first: bytes = b"") -> bool:
        """Write the reply's head (and `first` body bytes); True when a body may follow.

        The headers are the upstream's minus hop-by-hop ones: the proxy adds `X-Request-Id`
        when absent, the opt-in mark, and the framing it needs (`Transfer-Encoding: chunked`
        when the upstream gave no length and the client speaks HTTP/1.1)."""
        headers = list(reply.headers)
        status = reply.status
        has_length = has_id = False
        for k, v in headers:
            n = len(k)
            if n == 14 and k.lower() == "content-length":
                has_length = True
            elif n == 12 and k.lower() == "x-request-id":
                has_id = True
            elif n == 11 and k.lower() == "retry-after":
                self.retry_after = retry_after_seconds(v)
        if not has_id:
            headers.append(("X-Request-Id", self.request_id))
        if self.mark is not None:
            headers.append(("X-Chaos-Injected", self.mark))
        allowed = body_allowed(self.method, status)
        if allowed and not has_length:
            if self.head.version == "1.1":
                self._chunked = True
                headers.append(("Transfer-Encoding", "chunked"))
            else:
                self.head.keep_alive = False  # the body ends with the connection
        if self.head.version == "1.0" and self.head.keep_alive:
            headers.append(("Connection", "keep-alive"))  # HTTP/1.0 closes unless told otherwise
        self._status = status
        data = response_head(status, reply.reason or None, headers)
        if first and allowed:
            data += b"%x\r\n%b\r\n" % (len(first), first) if self._chunked else first
        self._mark_sent()
        self.conn.write(data)
        return allowed

    def send_answer(self, raw: UpstreamResponse, first: bytes) -> bool:
        """`send_head` for an upstream head no fault looks at: its header lines are written as
        received, never decoded."""
        if raw.retry_after is not None:
            self.retry_after = retry_after_seconds(raw.retry_after.decode("latin-1"))
        data, allowed, chunked = answer_head(raw, self.head, self.request_id, self.mark)
        if chunked:
            self._chunked = True
        self._status = raw.status
        if first and allowed:
            data += b"%x\r\n%b\r\n" % (len(first), first) if self._chunked else first
        self._mark_sent()
        self.conn.write(data)
        return allowed

    async def write(self, chunk: bytes) -> None:
        conn = self.conn
        if self._chunked:
            if not chunk:
                return
            conn.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
        else:
            conn.write(chunk)
        if conn.write_paused or conn.closed:
            await conn.drain()

    def end(self) -> None:
        if self._chunked:
            self.conn.write(b"0\r\n\r\n")
        self._finished = True
        self.complete = True

    def broke_off(self, error: UpstreamError) -> None:
        self.upstream_error = error.reason
        log.warning(
            "upstream failed mid-response [%s]: %s",
            self.request_id,
            error.details,
            extra={"request_id": self.request_id},
        )
        self.close()

    # ------------------------------------------------------------ forwarding

    def proceed_upstream(self) -> Coroutine[Any, Any, None]:
        """Forward upstream and stream the answer back through the hooks; with none registered
        and no body, the answer is relayed by callbacks (relay.py) as it arrives — after a
        delay, the client's answer waits for no task wake-up — and this only waits for it."""
        if (
            self.reply_hooks is None
            and self.passthrough
            and self.body is None
            and self.core.send_now is not None
            and can_relay(self.head)
        ):
            return self._relay()
        return pipeline.proceed(self, self, self)

    async def _relay(self) -> None:
        ended: asyncio.Future[Relay] = asyncio.get_running_loop().create_future()
        relay = Relay(
            self.core,
            self.head,
            self.conn,
            self.request_id,
            self.t0,
            partial(_settle, ended),
            self.mark,
        )
        if not relay.send(self.clock.monotonic()):
            await pipeline.proceed(self, self, self)  # no idle upstream connection
            return
        conn = self.conn
        conn.relay = relay  # the client's flow control reaches it
        try:
            await ended
        except asyncio.CancelledError:
            relay.cancel()
            raise
        finally:
            conn.relay = None
        self._status = relay.status or self._status
        self.upstream_duration = relay.upstream_duration
        self.upstream_error = relay.upstream_error
        if relay.retry_after is not None:
            self.retry_after = relay.retry_after
        if relay.head_sent:
            self.head_sent = True
            self._finished = True
            self.complete = relay.complete
            return
        err = relay.error
        if isinstance(err, Stale) and self.head.method in IDEMPOTENT:
            await pipeline.proceed(self, self, self)  # on a fresh connection: `request` knows how
            return
        if err is not None:
            e = err if isinstance(err, UpstreamError) else stale_error()
            self.upstream_error = e.reason
            raise e


def _settle(ended: asyncio.Future[Relay], relay: Relay) -> None:
    """A relay's end, for the exchange awaiting it (which a vanished client may have cancelled
    already: its connection cancels the task, then the relay)."""
    if not ended.done():
        ended.set_result(relay)
