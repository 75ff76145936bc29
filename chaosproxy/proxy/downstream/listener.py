"""The proxy listener: HTTP/1.1 as an asyncio protocol on httptools' C request parser.

One `ClientConnection` per client connection. Requests are counted in flight as soon as their
head is parsed. A request nothing looks at, on a connection with nothing else to answer, is
relayed by callbacks from right here (`Handler.relay`, relay.py): no task. The others are queued
(pipelining) and answered in order by one task per busy period, which ends when the queue is
empty (an idle keep-alive connection holds no task); their bodies stream through a bounded
buffer that pauses reading from the socket. Responses are written
by the exchange as the upstream sent them: no `Date`, `Server` or `Content-Type` of our own.

Hostile input is bounded (limits.py): the request target (414), each header line, the header
count and the whole head (431; only head bytes count), the time to send a head and silences in a
body (408, then close), the idle time between requests, a client that takes no response bytes
(closed at the send timeout, which frees the upstream connection it held), and the number of open
connections (503 past the cap). Framing that two parsers could read two ways (Content-Length with
Transfer-Encoding, codings other than chunked, two Hosts, none in HTTP/1.1) is refused before
anything goes upstream. A client's EOF after a complete request ends the connection once the
requests that go to the upstream are answered.

Over 400 lines on purpose: `ClientConnection` is one state machine (head, body, queue, flow
control, deadlines, EOF) whose transitions interlock; split over files it would be harder to
check, not easier.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from ssl import SSLContext
from typing import Any, Protocol, cast

import httptools

from chaosproxy.common.clock import Clock
from chaosproxy.common.ids import RequestIds
from chaosproxy.engine.load_signals import LoadSignals
from chaosproxy.proxy.downstream.limits import (
    ListenerLimits,
    Refusal,
    check_framing,
    default_max_connections,
    error_response,
)
from chaosproxy.proxy.downstream.request import RequestBody, RequestError, RequestHead
from chaosproxy.proxy.wire.flow import WriteFlow

log = logging.getLogger("chaosproxy.proxy")

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# Parsed requests waiting behind the one being answered before reading stops.
_MAX_QUEUED = 32
# Bytes the transport buffers for the client before the writer waits.
_WRITE_HIGH_WATER = 64 * 1024

_LIMITS = ListenerLimits()

__all__ = ["ClientConnection", "Handler", "ListenerLimits", "ProxyListener"]


class Handler(Protocol):
    """What answers the requests the listener reads (the `ProxyCore`)."""

    @property
    def load(self) -> LoadSignals:
        """Requests in flight: counted from a parsed head to the end of its answer."""
        ...

    @property
    def clock(self) -> Clock: ...
    @property
    def ids(self) -> RequestIds: ...

    async def handle(
        self, head: RequestHead, body: RequestBody | None, conn: ClientConnection
    ) -> bool:
        """Answer one request; True when the connection may carry another after it."""
        ...

    def relay(self, head: RequestHead, body: RequestBody | None, conn: ClientConnection) -> bool:
        """Take the request up by callbacks (True: it ends with `conn.answered`), or leave it
        to `handle` (False)."""
        ...


class Relayed(Protocol):
    """A request being relayed on a connection (relay.py)."""

    def resume(self) -> None:
        """The client takes bytes again."""

    def cancel(self) -> None:
        """The client is gone."""


class ClientConnection(WriteFlow, asyncio.Protocol):
    """One client connection: parsing, the queue of requests read, flow control, timeouts."""

    lost_message = "client disconnected"

    def __init__(self, listener: ProxyListener) -> None:
        self.listener = listener
        self.core: Handler = listener.core
        self.limits = listener.limits
        self.loop = listener.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.client_ip = ""
        self.closed = False
        self.queue: deque[tuple[RequestHead, RequestBody | None]] = deque()
        self.task: asyncio.Task[None] | None = None
        self.relay: Relayed | None = None  # the request being relayed by callbacks, if any
        self.busy = False  # a request is being answered (by the task or relayed)
        self.upstream_started = False  # ...and it went to the upstream (core.py sets it)
        self.eof = False  # the client finished sending (half-close): close once answered
        self._fresh = True  # no request read yet (only then may HTTP/2's preface come)
        self._answered: asyncio.Future[None] | None = None  # a graceful close waits on it
        self.tunnel: RequestBody | None = None  # after an upgrade: bytes from the client
        # Set by proxy/h2/ once it took the transport: a stop drains the connection (GOAWAY
        # first) and sets `task` until it is done, instead of closing it.
        self.on_stop: Callable[[], None] | None = None
        self._stopped = False  # nothing more is parsed (an upgrade, or a refused request)
        # One deadline per connection, checked by the listener's sweep: no timer per request.
        self.deadline = 0.0
        self._timer_kind = ""
        # While writing is paused (the client is not reading): when it is closed, unless the
        # bytes still to send (`_unsent`) went down meanwhile (nginx's send_timeout).
        self.send_deadline = 0.0
        self._unsent = 0
        self._paused_body = False
        self._paused_queue = False
        self._paused_reading = False
        self._pending_error: tuple[int, str, str] | None = None
        self._head_sent = False  # a response head went out for the request being answered
        # parse state of the request being read
        self._url = b""
        self._raw: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0  # header lines parsed (name, value, 4)
        self._head_read = 0  # bytes of reads that were all head (a line that never ends)
        self._in_head = False
        self._head_ended = False  # a head was completed by the read being parsed
        self._body: RequestBody | None = None  # the body being read, until its end

    # ------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tr = cast(asyncio.Transport, transport)
        self.transport = tr
        tr.set_write_buffer_limits(high=_WRITE_HIGH_WATER)
        peer = tr.get_extra_info("peername")
        self.client_ip = peer[0] if isinstance(peer, tuple) and peer else ""
        self.listener.connections.add(self)
        self._set_timer("header", self.limits.header_timeout)

    def data_received(self, data: bytes) -> None:
        handoff = self.listener.h2_handoff
        if (
            handoff is not None
            and self._fresh
            and not self._in_head
            and (len(data) >= 3 and _H2_PREFACE.startswith(data[:24]))
        ):
            # HTTP/2 with prior knowledge (its preface opens the connection): proxy/h2/ takes
            # the transport, and tells this object when the connection ends.
            self._stopped = True
            self._cancel_timer()
            handoff(self, data)
            return
        if self._stopped:
            if self.tunnel is not None:
                self.tunnel.feed(data)
            return
        in_head = self._in_head  # a head was unfinished when this read came
        if in_head:
            self._head_ended = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as e:
            self._stopped = True
            self.tunnel = RequestBody(self, False)
            self.listener.tunnels += 1  # it will hold an upstream connection of its own
            offset = int(e.args[0]) if e.args else len(data)
            if offset < len(data):
                self.tunnel.feed(data[offset:])
        except httptools.HttpParserError as e:
            cause = e.__context__
            if isinstance(cause, RequestError):
                self._reject(cause.status, cause.details)
            elif cause is not None:  # a bug of ours in a callback, not the client's bad input
                log.error("internal error reading a request", exc_info=cause)
                self._reject(500, "internal error")
            else:
                details = str(e).strip().splitlines()[0][:200] if str(e).strip() else "bad request"
                self._reject(400, details)
            return
        if self._in_head:
            if self._timer_kind != "header":  # a head begun in this read and not ended in it
                self._set_timer("header", self.limits.header_timeout)
            # Only head bytes count: body bytes and pipelined requests that came in the same
            # read as the end of a head never do. A read that the unfinished head spans from
            # its first byte to its last is all head (a header line that never ends); the
            # complete lines of the head are counted as they are parsed.
            if in_head and not self._head_ended:
                self._head_read += len(data)
            lim = self.limits
            if self._head_bytes > lim.max_head or self._head_read > lim.max_head + lim.max_target:
                self._reject(431, "request headers too large")

    def eof_received(self) -> bool | None:
        """The client shut its sending side. After complete requests that is "no more
        requests", not "gone": the requests read are answered, then the connection closes. A
        request cut short, or one a fault holds before the upstream (a delay, `hang`), ends as
        for a vanished client: on the wire the two look the same, and a fault's wait "until the
        client gives up" must end when it gives up. Over TLS an EOF always closes."""
        if (
            self.tunnel is not None
            or (not self._stopped and (self._in_head or self._body is not None))
            or not (self.busy or self.queue)
            or (self.busy and not self.upstream_started)
        ):
            return None  # close: connection_lost cancels what is in flight
        self.eof = True
        return True

    def pause_writing(self) -> None:
        super().pause_writing()
        t = self.limits.send_timeout
        tr = self.transport
        if t and tr is not None:
            self.send_deadline = self.loop.time() + t
            self._unsent = tr.get_write_buffer_size()

    def resume_writing(self) -> None:
        self.send_deadline = 0.0
        super().resume_writing()
        if self.relay is not None:
            self.relay.resume()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.send_deadline = 0.0
        self.listener.connections.discard(self)
        if self.tunnel is not None:
            self.listener.tunnels -= 1
        self._cancel_timer()
        self.wake_drain()
        lost = ConnectionResetError("the client closed the connection")
        # Requests read but never handled leave the in-flight count with their connection.
        load = self.listener.load
        for _, body in self.queue:
            load.finished()
            if body is not None:
                body.fail(lost)
        self.queue.clear()
        if self._body is not None:
            self._body.fail(lost)
        if self.tunnel is not None:
            self.tunnel.feed_eof()
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.relay is not None:
            self.relay.cancel()  # it ends the request (`answered`)

    # ------------------------------------------------------------ parser callbacks

    def on_message_begin(self) -> None:
        self._fresh = False
        self._url = b""
        self._raw = []
        self._head_bytes = self._head_read = 0
        self._in_head = True

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self.limits.max_target:
            raise RequestError(414, f"request target longer than {self.limits.max_target} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        lim = self.limits
        size = len(name) + len(value)
        self._head_bytes += size + 4
        if size > lim.max_header_line:
            raise RequestError(431, f"a request header is longer than {lim.max_header_line} bytes")
        if len(self._raw) >= lim.max_headers:
            raise RequestError(431, f"more than {lim.max_headers} request headers")
        self._raw.append((name, value))

    def on_headers_complete(self) -> None:
        p = self.parser
        raw = self._raw
        has_body = expect = False
        rid = run = ""
        hosts = 0
        te: bytes | None = None
        for k, v in raw:  # one pass: what the listener and the per-request path need
            n = len(k)
            if n == 4 and k.lower() == b"host":
                hosts += 1
            elif n == 14 and k.lower() == b"content-length":
                has_body = v.strip() not in (b"0", b"")
            elif n == 17 and k.lower() == b"transfer-encoding":
                has_body = True
                te = v if te is None else te + b", " + v  # two lines read as one list
            elif n == 6 and k.lower() == b"expect":
                expect = v.strip().lower() == b"100-continue"
            elif n == 12 and not rid and k.lower() == b"x-request-id":
                rid = v.decode("latin-1")
            elif n == 11 and not run and k.lower() == b"x-chaos-run":
                run = v[:64].decode("latin-1")
        version = p.get_http_version()
        if self._head_bytes > self.limits.max_head:  # lines that came in one read
            raise RequestError(431, "request headers too large")
        if hosts != 1 or te is not None:
            check_framing(hosts, te, version)
        self._in_head = False
        self._head_ended = True
        self._head_bytes = self._head_read = 0
        self._raw = []
        head = RequestHead(
            p.get_method().decode("latin-1"),
            self._url.decode("latin-1"),
            version,
            raw,
            self.client_ip,
            self.listener.now(),  # the proxy's clock: delays are measured on it
        )
        head.request_id, head.run = rid, run
        head.keep_alive = p.should_keep_alive() and not self.listener.closing
        head.upgrade = p.should_upgrade()
        head.expect_continue = expect and version == "1.1"
        body = None
        if has_body:
            body = self._body = RequestBody(self, head.expect_continue)
            if not head.expect_continue and self.limits.body_timeout:
                self._set_timer("body", self.limits.body_timeout)
            else:
                self._cancel_timer()  # the body comes once 100 Continue is sent
        else:
            self._cancel_timer()
        listener = self.listener
        listener.load.started()
        idle = not self.busy and self.task is None and not self.queue
        if idle and listener.relay_request(head, body, self):
            return  # relayed: nothing waits for it here
        self.queue.append((head, body))
        if idle:
            self.task = self.loop.create_task(self._serve())
        elif len(self.queue) >= _MAX_QUEUED:
            self._paused_queue = True
            self._update_reading()

    def on_body(self, body: bytes) -> None:
        if self._body is not None:
            self._body.feed(body)
            if self.limits.body_timeout:
                self._set_timer("body", self.limits.body_timeout)

    def on_message_complete(self) -> None:
        if self._body is not None:
            self._body.feed_eof()
            self._body = None
            if self._timer_kind == "body":
                self._cancel_timer()

    # ------------------------------------------------------------ answering, in order

    async def _serve(self) -> None:
        """Answer the queued requests in order (one task per busy period, not one per
        request); it ends when the queue is empty, or when a request is relayed (the relay
        goes on with the queue when it ends)."""
        core = self.core
        queue = self.queue
        try:
            while not self.closed:
                if not queue:
                    self._idle()
                    return
                head, body = queue.popleft()
                if self._paused_queue and len(queue) < _MAX_QUEUED // 2:
                    self._paused_queue = False
                    self._update_reading()
                if core.relay(head, body, self):
                    return
                self._head_sent = False
                self.busy = True
                self.upstream_started = False
                if head.upgrade and await self._h2_upgrade(head, body):
                    return  # `Upgrade: h2c` taken: HTTP/2 from here (proxy/h2/upgrade.py)
                try:
                    keep = await core.handle(head, body, self)
                except Exception:  # escaped the handler's own error funnel: never hang here
                    log.exception("internal error on a connection from %s", self.client_ip)
                    self.close()
                    return
                finally:
                    self._not_busy()
                if not keep or not head.keep_alive or head.upgrade or self.listener.closing:
                    self.close()
                    return
                if body is not None and not body.complete:
                    self.close()  # an unread body is still on its way: no telling where it ends
                    return
        finally:
            self.task = None

    async def _h2_upgrade(self, head: RequestHead, body: RequestBody | None) -> bool:
        """An upgrade request in its turn: True when proxy/h2/ took the connection (h2c); it
        then ends this task, and HTTP/2 takes over at the next turn of the loop."""
        up = self.listener.h2_upgrade
        if up is None or not await up(self, head, body):
            return False
        self._cancel_timer()
        self._not_busy()
        return True

    def _idle(self) -> None:
        """Nothing left to answer: a pending rejection goes out, a half-closed connection
        closes, else the head or idle deadline runs."""
        if self._pending_error is not None:
            self._send_error(*self._pending_error)
        elif self.eof:  # half-closed: every request read was answered
            self.close()
        elif self._in_head:
            if self._timer_kind != "header":
                self._set_timer("header", self.limits.header_timeout)
        else:
            self._set_timer("idle", self.limits.idle_timeout)

    def _not_busy(self) -> None:
        self.busy = False
        w = self._answered
        if w is not None:
            self._answered = None
            if not w.done():
                w.set_result(None)

    # ------------------------------------------------------------ for the relay

    def relaying(self, relay: Relayed, started: bool = True) -> None:
        """A request of this connection is being relayed by callbacks (`started`: it went
        upstream; not yet while a delayed relay waits)."""
        self.relay = relay
        self._head_sent = False
        self.busy = True
        self.upstream_started = started  # then a client's EOF waits for the answer

    def answered(self, keep: bool) -> None:
        """The relayed request ended (`keep`: the connection may carry another); what was
        queued meanwhile is answered next."""
        self.relay = None
        self._not_busy()
        if self.closed:
            return
        if not keep or self.listener.closing:
            self.close()
        elif self.queue:
            self.task = self.loop.create_task(self._serve())
        else:
            self._idle()

    def send_again(self, head: RequestHead) -> None:
        """The relayed request goes through the awaiting path (its upstream connection was
        stale): first in line, before what was pipelined after it."""
        self.relay = None
        self._not_busy()
        if self.closed:
            self.listener.load.finished()  # it leaves the in-flight count with its connection
            return
        self.queue.appendleft((head, None))
        self.task = self.loop.create_task(self._serve())

    def until_answered(self) -> asyncio.Future[None]:
        """Resolved once no request of this connection is being answered."""
        w = self._answered
        if w is None:
            w = self._answered = self.loop.create_future()
            if not self.busy:
                w.set_result(None)
        return w

    # ------------------------------------------------------------ rejects and timeouts

    def _reject(self, status: int, details: str) -> None:
        """A request we will not parse further: answer it (after those before it) and close.

        When its head was already read (its body broke off or stalled), the body fails with
        the status: the request is in the queue or being handled, and its handler answers
        (core.py), upstream or not."""
        self._stopped = True  # nothing more is parsed on this connection
        self._paused_body = True
        self._update_reading()
        body = self._body
        if body is not None:
            self._body = None
            self._cancel_timer()
            log.warning("a request body from %s broke off: %s", self.client_ip, details)
            body.fail(RequestError(status, details))
            return
        rid = self.core.ids.next()
        log.warning(
            "rejected a malformed request from %s [%s]: %s",
            self.client_ip,
            rid,
            details,
            extra={"request_id": rid},
        )
        if not self.busy and not self.queue:
            self._send_error(status, details, rid)
        else:  # after the requests read before it
            self._pending_error = (status, details, rid)

    def _send_error(self, status: int, details: str, rid: str) -> None:
        self.write(error_response(status, details, rid))
        self.close()

    def _set_timer(self, kind: str, seconds: float) -> None:
        self._timer_kind = kind
        self.deadline = self.loop.time() + seconds

    def _cancel_timer(self) -> None:
        self.deadline = 0.0
        self._timer_kind = ""

    def _timed_out(self) -> None:
        kind, self._timer_kind, self.deadline = self._timer_kind, "", 0.0
        if self.closed:
            return
        if kind == "header" and self._in_head:
            self.listener.timeouts["header"] += 1
            self._reject(
                408, f"the request head did not arrive within {self.limits.header_timeout:g}s"
            )
        elif kind == "body" and self._body is not None:
            t = self.limits.body_timeout or 0.0
            if self._paused_reading:  # we stopped reading, not the client: its time restarts
                self._set_timer("body", t)
            else:
                self.listener.timeouts["body"] += 1
                self._reject(408, f"no request body bytes arrived for {t:g}s")
        elif kind != "body" and not self.busy:
            self.close()  # idle keep-alive connection, or one that never sent a byte

    def _send_timed_out(self, now: float) -> None:
        """Writing stayed paused for the send timeout: a client that took no byte meanwhile
        is closed (aborted: a close would wait for it to read what is buffered). The request
        being answered then ends as for a vanished client, and its upstream connection is
        given up: a client that never reads never holds the pool."""
        self.send_deadline = 0.0
        tr = self.transport
        t = self.limits.send_timeout
        if self.closed or tr is None or not t or not self.write_paused:
            return
        unsent = tr.get_write_buffer_size()
        if unsent < self._unsent:  # it read some since: its time restarts
            self._unsent = unsent
            self.send_deadline = now + t
            return
        self.listener.timeouts["send"] += 1
        log.warning(
            "closed a client connection from %s: it took no response bytes for %gs "
            "(--send-timeout), %d bytes unsent",
            self.client_ip,
            t,
            unsent,
        )
        tr.abort()

    # ------------------------------------------------------------ for the exchange

    def send_continue(self) -> None:
        if not self.closed and not self._head_sent and self.transport is not None:
            self.transport.write(_CONTINUE)
            if self._body is not None and self.limits.body_timeout:
                self._set_timer("body", self.limits.body_timeout)  # the body is due now

    def mark_head_sent(self) -> None:
        self._head_sent = True

    def write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def pause_body(self) -> None:
        if not self._paused_body:
            self._paused_body = True
            self._update_reading()

    def resume_body(self) -> None:
        if self._paused_body and self._pending_error is None:
            self._paused_body = False
            self._update_reading()

    def _update_reading(self) -> None:
        tr = self.transport
        if tr is None or self.closed:
            return
        want = self._paused_body or self._paused_queue
        if want and not self._paused_reading:
            self._paused_reading = True
            tr.pause_reading()
        elif not want and self._paused_reading:
            self._paused_reading = False
            tr.resume_reading()
            if self._timer_kind == "body" and self.limits.body_timeout:
                self._set_timer("body", self.limits.body_timeout)


class ProxyListener:
    """The listening socket and its connections; graceful close waits for requests in flight."""

    # Takes over a connection whose first bytes are HTTP/2's preface (set by the runtime).
    h2_handoff: Callable[[ClientConnection, bytes], None] | None = None
    # Offered each upgrade request in its turn; True when it took the connection (h2c).
    h2_upgrade: (
        Callable[[ClientConnection, RequestHead, RequestBody | None], Awaitable[bool]] | None
    ) = None

    def __init__(self, core: Handler, limits: ListenerLimits = _LIMITS) -> None:
        self.core = core
        self.limits = limits
        # What each request reads of the core, looked up once: compiled, an attribute read
        # through a Protocol is a dictionary lookup at each use.
        self.load = core.load
        self.now = core.clock.monotonic
        self.relay_request = core.relay
        self.loop = asyncio.get_event_loop()
        self.connections: set[ClientConnection] = set()
        self.max_connections = limits.max_connections or default_max_connections()
        self.tunnels = 0  # upgraded connections: each holds an upstream connection of its own
        self.refusing: dict[Refusal, None] = {}  # over the cap, answered 503; oldest first
        self.refused = 0  # connections refused over the cap, ever
        # Clients cut by a deadline, ever: a head (408), a silent body (408), a client that
        # took no response bytes (closed).
        self.timeouts = {"header": 0, "body": 0, "send": 0}
        self.refusal_logged = -1e9
        self.closing = False
        self.server: asyncio.Server | None = None
        self._sweep: asyncio.TimerHandle | None = None
        # How often deadlines are checked: a timeout fires at most this late.
        timeouts = [
            limits.header_timeout,
            limits.idle_timeout,
            limits.body_timeout or 4.0,
            limits.send_timeout or 4.0,
        ]
        self.resolution = max(0.02, min(1.0, *(t / 4 for t in timeouts)))

    @property
    def open_connections(self) -> int:
        """Client connections held, counted against the cap (a WebSocket counts twice)."""
        return len(self.connections) + self.tunnels

    def next_request_id(self) -> str:
        return self.core.ids.next()

    def _accept(self) -> asyncio.Protocol:
        if len(self.connections) + self.tunnels < self.max_connections:
            return ClientConnection(self)
        return Refusal(self)

    async def start(
        self,
        host: str,
        port: int,
        ssl: SSLContext | None = None,
        backlog: int = 1024,
        reuse_port: bool | None = None,
    ) -> int:
        self.loop = asyncio.get_running_loop()
        self.server = await self.loop.create_server(
            self._accept,
            host or None,
            port,
            ssl=ssl,
            backlog=backlog,
            reuse_port=reuse_port,
        )
        self._sweep = self.loop.call_later(self.resolution, self._check_deadlines)
        # (uvloop's `sockets` is a list where typeshed says a tuple: compiled code would check)
        return int(cast(Any, self.server).sockets[0].getsockname()[1])

    def _check_deadlines(self) -> None:
        now = self.loop.time()
        due = [
            c
            for c in self.connections
            if (c.deadline and c.deadline <= now) or (c.send_deadline and c.send_deadline <= now)
        ]  # one pass over the connections a tick, whichever deadline came
        for c in due:
            if c.deadline and c.deadline <= now:
                c._timed_out()
            if c.send_deadline and c.send_deadline <= now:
                c._send_timed_out(now)
        if self.refusing:
            for r in [r for r in self.refusing if r.deadline <= now]:
                r.abort()
        self._sweep = self.loop.call_later(self.resolution, self._check_deadlines)

    async def close(self, grace: float) -> None:
        """Stop accepting; idle connections close now, busy ones after their requests (up to
        `grace` seconds, then they are cut)."""
        self.closing = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        if self.server is not None:
            self.server.close()
        for c in list(self.connections):
            if c.on_stop is not None:
                c.on_stop()  # HTTP/2: GOAWAY first; `task` ends with the connection
            elif not c.busy and c.task is None:
                c.close()
        busy = [c for c in self.connections if c.busy or c.task is not None]
        if busy:
            waits = {c.until_answered() if c.task is None else c.task: c for c in busy}
            _, pending = await asyncio.wait(waits, timeout=grace)
            for t in pending:
                if isinstance(t, asyncio.Task):
                    t.cancel()
                else:
                    waits[t].close()  # relayed: closing cancels it
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        for c in list(self.connections):
            if c.transport is not None:
                c.transport.abort()
        if self.server is not None:
            await self.server.wait_closed()
            self.server = None
