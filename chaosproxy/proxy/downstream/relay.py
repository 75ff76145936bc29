"""The relay: a request nothing looks at, answered by callbacks alone.

When no rule matches a request (the engine decided, for this very request) and no hook waits on
its answer, the proxy has nothing to do between the two sockets but bookkeeping. The relay
writes the request head to an idle upstream connection from inside the listener's parser
callback, and the upstream response parser's callbacks (`upstream.response.Sink`) write the
answer to the client as it is parsed: no task, no coroutine chain, no future, no timer per
request (the pool sweeps head deadlines). One write per read from the upstream: the head and the
body pieces a read held leave together.

The bytes are those of the faults' pipeline with no hook (`Wire.send_answer`): the upstream's
status line and header lines as received minus hop-by-hop ones, plus `X-Request-Id` when absent,
the framing the client needs, and nothing else. Client flow control pauses reading from the
upstream connection. Whoever started the relay decides what an end means (`on_end`): the core
(nothing else happened to the request) or an exchange whose faults acted before it (a delay)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Protocol

from chaosproxy.common.clock import Clock
from chaosproxy.common.errors import UpstreamError
from chaosproxy.proxy.downstream.exchange_base import retry_after_seconds
from chaosproxy.proxy.downstream.listener import Relayed
from chaosproxy.proxy.downstream.request import RequestHead
from chaosproxy.proxy.downstream.responses import (
    answer_head,
    error_json,
    response_head,
)
from chaosproxy.proxy.upstream.forward import Forwarder
from chaosproxy.proxy.upstream.interface import Sink, Stale, UpstreamResponse
from chaosproxy.proxy.upstream.response import Response

log = logging.getLogger("chaosproxy.proxy")


class Unsent(Exception):
    """A delayed relay found no upstream connection idle at its deadline: nothing went
    upstream (delayed.py)."""


UNSENT = Unsent()


def stale_error() -> UpstreamError:
    """What a stale connection means for a request that may not be sent twice."""
    return UpstreamError("reset", "the upstream closed the connection")


class RelayConn(Protocol):
    """What a relay uses of its client connection (`listener.ClientConnection`). A Protocol:
    compiled code checks a concrete class's type at each call, and tests relay on stand-ins."""

    eof: bool
    closed: bool
    upstream_started: bool

    @property
    def write_paused(self) -> bool: ...

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...

    def mark_head_sent(self) -> None: ...

    def relaying(self, relay: Relayed, started: bool = True) -> None: ...


class SendNow(Protocol):
    """Send a body-less request on an idle upstream connection now (`NativeUpstream.send_now`);
    None when none is idle."""

    def __call__(
        self, method: str, target: str, lines: bytes, has_host: bool, sink: Sink
    ) -> Response | None: ...


class RelaySite(Protocol):
    """What a relay reads of the proxy (the `ProxyCore`)."""

    @property
    def clock(self) -> Clock: ...
    @property
    def forwarder(self) -> Forwarder: ...
    @property
    def send_now(self) -> SendNow | None: ...


def can_relay(head: RequestHead) -> bool:
    """A request the relay can carry: no body, no upgrade, not HEAD (whose answer's framing the
    parser must be told), a path target, HTTP/1.x."""
    return (
        not head.upgrade
        and head.method != "HEAD"
        and head.target[:1] == "/"
        and (head.version == "1.1" or head.version == "1.0")
    )


class Relay:
    """One request relayed by callbacks: the `Sink` of its upstream answer. Its fields are the
    ones the core's `RequestDone` reads (status, durations, errors)."""

    __slots__ = (
        "_allowed",
        "_body",
        "_chunked",
        "_on_end",
        "_out",
        "_paused",
        "complete",
        "conn",
        "core",
        "error",
        "head_sent",
        "mark",
        "req",
        "request_id",
        "resp",
        "retry_after",
        "status",
        "t0",
        "t_up",
        "upstream_duration",
        "upstream_error",
    )

    def __init__(
        self,
        core: RelaySite,
        head: RequestHead,
        conn: RelayConn,
        request_id: str,
        t0: float,
        on_end: Callable[[Relay], None],
        mark: str | None = None,
    ) -> None:
        self.core = core
        self.req = head
        self.conn = conn
        self.request_id = request_id
        self.t0 = t0
        self._on_end = on_end
        self.mark = mark
        self.resp: Response | None = None
        self.status = 0
        self.head_sent = False
        self.complete = False
        self.error: UpstreamError | Stale | Unsent | None = None  # failed before any byte went back
        self.t_up = 0.0
        self.upstream_duration: float | None = None
        self.upstream_error: str | None = None
        self.retry_after: float | None = None
        self._out: list[bytes] = []  # what the client gets at the next flush
        self._body: list[bytes] = []  # body pieces of the read being parsed
        self._chunked = False
        self._allowed = True
        self._paused = False

    def send(self, now: float) -> bool:
        """Send the request upstream now (`now`: the proxy's clock, where the upstream's time
        starts); False when no upstream connection is idle (nothing was sent: the caller takes
        the awaiting path)."""
        core = self.core
        send_now = core.send_now
        if send_now is None:
            return False
        head = self.req
        lines, has_host, _ = core.forwarder.lines(head.raw, head.client_ip, self.request_id)
        self.t_up = now
        self.resp = send_now(head.method, head.target, lines, has_host, self)
        return self.resp is not None

    # ------------------------------------------------------------ what `done` reads

    injected = False  # nothing was injected into a relayed request
    finish_callbacks = None  # and nothing waits for its end

    def run_finish(self, request_id: str) -> None:
        """No finish callbacks: nothing acted on the request."""

    def release(self) -> None:
        """The request ended: what it held is given back (a delayed relay's guardrail slot)."""

    def hand_back(self) -> None:
        """The request goes to the awaiting path (`handle`) instead, sent again from scratch:
        nothing of this relay goes with it."""
        self.release()

    @property
    def method(self) -> str:
        return self.req.method

    @property
    def path(self) -> str:
        return self.req.path

    @property
    def target(self) -> str:
        return self.req.target

    @property
    def query_string(self) -> str:
        return self.req.query_string

    @property
    def headers(self) -> Mapping[str, str]:
        return self.req.headers

    @property
    def client_ip(self) -> str:
        return self.req.client_ip

    @property
    def response_status(self) -> int:
        return self.status

    # ------------------------------------------------------------ Sink

    def head(self, resp: UpstreamResponse) -> None:
        self.upstream_duration = self.core.clock.monotonic() - self.t_up
        head = self.req
        if resp.retry_after is not None:
            self.retry_after = retry_after_seconds(resp.retry_after.decode("latin-1"))
        data, self._allowed, chunked = answer_head(resp, head, self.request_id, self.mark)
        if chunked:
            self._chunked = True
        self.status = resp.status
        self._out.append(data)
        self.head_sent = True
        self.conn.mark_head_sent()

    def body(self, data: bytes) -> None:
        if self._allowed and data:
            self._body.append(data)

    def flush(self, last: bytes = b"") -> None:
        """What one read brought leaves in one write: the head if it came, the body pieces as
        one (one chunk, when the client gets chunks: as the awaiting path frames a read), and
        `last` (the last chunk)."""
        out, body = self._out, self._body
        if body:
            data = body[0] if len(body) == 1 else b"".join(body)
            body.clear()
            if self._chunked:
                out += (b"%x\r\n" % len(data), data, b"\r\n")
            else:
                out.append(data)
        if last:
            out.append(last)
        if not out:
            return
        conn = self.conn
        conn.write(out[0] if len(out) == 1 else b"".join(out))
        out.clear()
        if conn.write_paused and not self._paused:
            resp = self.resp
            up = resp.conn if resp is not None else None
            if up is not None:
                self._paused = True
                up.pause_reading()  # the client is not taking bytes: neither does the relay

    def resume(self) -> None:
        """The client takes bytes again (its connection's `resume_writing`)."""
        if self._paused:
            self._paused = False
            resp = self.resp
            up = resp.conn if resp is not None else None
            if up is not None:
                up.resume_reading()

    def end(self) -> None:
        self.flush(b"0\r\n\r\n" if self._chunked else b"")
        self.complete = True
        self._finish()

    def failed(self, error: UpstreamError | Stale) -> None:
        if not self.head_sent:
            self.error = error  # nothing went back: the owner answers, or sends again
            self._finish()
            return
        self.flush()  # what arrived goes out, then the client sees the truncation
        if isinstance(error, UpstreamError):
            self.upstream_error = error.reason
            log.warning(
                "upstream failed mid-response [%s]: %s",
                self.request_id,
                error.details,
                extra={"request_id": self.request_id},
            )
        self.conn.close()
        self._finish()

    # ------------------------------------------------------------ the owner's side

    def cancel(self) -> None:
        """The client is gone: the upstream exchange is abandoned (its connection closed)."""
        resp = self.resp
        if resp is not None:
            resp.release()
        self.complete = False
        self._finish()

    def answer_error(self, status: int, details: str) -> None:
        """The proxy's JSON error instead of an answer that never came (before any byte), as
        the exchange's `respond_error` writes it."""
        head = self.req
        body = error_json(status, self.request_id, details)
        fields = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("X-Request-Id", self.request_id),
        ]
        if self.mark is not None:
            fields.append(("X-Chaos-Injected", self.mark))
        if head.version == "1.0" and head.keep_alive:
            fields.append(("Connection", "keep-alive"))
        self.conn.write(response_head(status, None, fields) + body)
        self.status = status
        self.head_sent = True
        self.complete = True

    def _finish(self) -> None:
        on_end, self._on_end = self._on_end, _ended
        self.resp = None
        on_end(self)


def _ended(relay: Relay) -> None:
    """An ended relay's `on_end`: a second end (a cancel after the end) changes nothing."""
