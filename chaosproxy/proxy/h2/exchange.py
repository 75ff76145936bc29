"""One HTTP/2 request stream in flight: the faults' `Exchange` over a stream, not a socket.

Faults run unchanged on it: `respond` answers the stream (for a gRPC request without its own
`grpc-status`, as Envoy answers one: a trailers-only response, `:status 200` and the
`grpc-status` the HTTP status maps to), `sleep` delays it, `reset` sends RST_STREAM
(INTERNAL_ERROR; `stream_reset` chooses the code) and leaves the connection's other
streams alone, `close` ends the stream where it is. Reply hooks, headers hooks and body
filters see the upstream's answer as they do over HTTP/1.1 (`forward.py` streams it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Protocol
from urllib.parse import unquote

from multidict import CIMultiDict, CIMultiDictProxy

from chaosproxy.faults.base import BodyFilter, Fault
from chaosproxy.faults.error import ErrorFault
from chaosproxy.faults.grpc_abort import GRPC_CODES, GrpcAbortFault, percent_encoded
from chaosproxy.faults.grpc_message import GrpcMessageFault
from chaosproxy.proxy.downstream.exchange_base import BaseExchange, Site
from chaosproxy.proxy.downstream.responses import body_allowed
from chaosproxy.proxy.h2.headers import (
    H2Headers,
    grpc_status_in,
    grpc_status_of_http,
    grpc_status_of_reset,
    is_grpc,
    lower_headers,
    parse_grpc_timeout,
)
from chaosproxy.proxy.h2.server import H2ServerConnection
from chaosproxy.proxy.h2.stream import (
    CANCEL,
    INTERNAL_ERROR,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    Stream,
)


class Router(Protocol):
    async def forward(self, ex: H2Exchange) -> None:
        """Forward upstream and stream the answer back through the exchange's hooks."""


class H2Site(Site, Protocol):
    """What an exchange reads of the proxy that made it (the `H2Core`)."""

    @property
    def route(self) -> Router: ...
    @property
    def upstream_url(self) -> str: ...


log = logging.getLogger("chaosproxy.proxy")

# A client's RST_STREAM(CANCEL) this close to the deadline the proxy kept for the call (its share
# of the deadline, at least the floor) is its deadline: grpcio cancels with CANCEL at its own
# timer, which started before the stream reached the proxy.
DEADLINE_SLACK, DEADLINE_SLACK_FLOOR = 0.1, 0.05


class H2Exchange(BaseExchange):
    """State of one request stream; faults drive it through `faults.base.Exchange`. What it
    keeps and does as an HTTP/1.1 exchange does is its base's."""

    core: H2Site
    protocol = "h2"
    method: str  # these two are attributes here, read from `:method` and `:path`
    target: str

    def __init__(
        self,
        core: H2Site,
        conn: H2ServerConnection,
        stream: Stream,
        pseudo: dict[bytes, bytes],
        raw: H2Headers,
        request_id: str,
        t0: float,
    ) -> None:
        super().__init__(core, request_id, t0, t0)
        self.conn = conn
        self.stream = stream
        self.raw = raw  # regular request headers, as received
        self.method = pseudo.get(b":method", b"GET").decode("latin-1")
        self.target = pseudo.get(b":path", b"/").decode("latin-1")
        self.authority = pseudo.get(b":authority", b"").decode("latin-1")
        self.scheme = pseudo.get(b":scheme", b"http").decode("latin-1")
        self._headers: CIMultiDictProxy[str] | None = None
        self.grpc = is_grpc(self.header("content-type"))
        # The `grpc-status` the client was sent (head of a trailers-only answer, or trailers)
        self.grpc_status: int | None = None
        self.upstream_abort: Callable[[], None] | None = None  # cancels the upstream stream
        # A gRPC call's deadline (monotonic) when the proxy keeps it (`deadline.py`)
        self.deadline: float | None = None
        # Transforms of the request's DATA on its way up (`forward._pump`), in order
        self.request_filters: list[BodyFilter] | None = None
        # The code of the RST_STREAM the proxy sent the client (a fault, the upstream's reset
        # passed on, a deadline cut), as opposed to the client's own reset
        self.reset_sent: int | None = None

    # ------------------------------------------------------------ request views

    @property
    def path(self) -> str:
        return unquote(self.target.partition("?")[0])

    @property
    def query_string(self) -> str:
        return self.target.partition("?")[2].partition("#")[0]

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        h = self._headers
        if h is None:
            d = CIMultiDict((k.decode("latin-1"), v.decode("latin-1")) for k, v in self.raw)
            if "host" not in d and self.authority:
                d["host"] = self.authority  # rules match `host` on :authority
            h = self._headers = CIMultiDictProxy(d)
        return h

    def header(self, name: str) -> str | None:
        key = name.encode("latin-1")
        for k, v in self.raw:
            if k == key:
                return v.decode("latin-1")
        return None

    @property
    def client_ip(self) -> str:
        return self.conn.client_ip

    def grpc_status_of(self, fault: Fault) -> int | None:
        """The status a gRPC call is answered with by the faults that answer it: grpc_abort's
        code (grpc_message's, when it aborts), or `error`'s HTTP status as `respond` maps it
        (journal lines carry it)."""
        if not self.grpc:
            return None
        if isinstance(fault, GrpcAbortFault) or (
            isinstance(fault, GrpcMessageFault) and fault.action == "abort"
        ):
            return fault.code
        if isinstance(fault, ErrorFault):
            return grpc_status_of_http(fault.status)
        return None

    def call_status(self) -> int | None:
        """What the call's client reads as its status, once the stream ended: the one place
        that decides it (`RequestDone.grpc_status`, and so the journal's lines, carry it).
        The `grpc-status` it was sent; else the RST_STREAM the proxy sent as gRPC maps it
        (`reset`, `stream_reset`, an upstream's reset passed on; an abrupt GOAWAY is a refusal:
        UNAVAILABLE); else the client's own reset: CANCEL at the call's deadline is
        DEADLINE_EXCEEDED, as grpcio reports it, any other cancel CANCELLED; an answer ended
        without a status, UNKNOWN. None when not a gRPC call."""
        if not self.grpc:
            return None
        if self.grpc_status is not None:
            return self.grpc_status
        if self.reset_sent is not None:
            return grpc_status_of_reset(self.reset_sent)
        code = self.stream.reset_code
        if code is not None:
            if code == CANCEL and self._at_deadline():
                return GRPC_CODES["DEADLINE_EXCEEDED"]
            return grpc_status_of_reset(code)
        status = self.response_status
        if status is not None and status != 200:
            return grpc_status_of_http(status)
        return GRPC_CODES["UNKNOWN"]  # an answer cut without its trailers' status

    def _at_deadline(self) -> bool:
        """Now is the call's deadline (the one the proxy kept, else its `grpc-timeout` counted
        from the stream's arrival), give or take the client's head start."""
        deadline = self.deadline
        if deadline is None:
            timeout = parse_grpc_timeout(self.header("grpc-timeout"))
            if timeout is None:
                return False
            deadline = self.t0 + timeout
        slack = max(DEADLINE_SLACK_FLOOR, DEADLINE_SLACK * (deadline - self.t0))
        return self.clock.monotonic() >= deadline - slack

    # ------------------------------------------------------------ state

    @property
    def client_gone(self) -> bool:
        return self.conn.closed or self.stream.reset_code is not None

    @property
    def upstream_url(self) -> str:
        return self.core.upstream_url

    # ------------------------------------------------------------ terminal actions

    async def respond(
        self, status: int, body: bytes, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        fields = self.answer_fields(status, body, headers)
        has_grpc_status = any(name.lower() == "grpc-status" for name, _ in fields)
        if self.grpc and not has_grpc_status:
            # Envoy's local reply to a gRPC request: trailers-only, the status mapped.
            code = grpc_status_of_http(status)
            text = body.decode("utf-8", "replace")[:1024] or f"HTTP {status}"
            head: H2Headers = [
                (b":status", b"200"),
                (b"content-type", b"application/grpc"),
                (b"grpc-status", str(code).encode()),
                (b"grpc-message", percent_encoded(text).encode()),
            ]
            status, body = 200, b""
            self.grpc_status = code
        else:
            head = [(b":status", str(status).encode()), *lower_headers(fields)]
            if self.grpc and has_grpc_status:
                self.grpc_status = grpc_status_in(head)
            trailers_only = self.grpc and has_grpc_status and not body
            if not trailers_only and (body_allowed(self.method, status) or self.method == "HEAD"):
                head.append((b"content-length", str(len(body)).encode()))
        head.append((b"x-request-id", self.request_id.encode("latin-1")))
        if self.mark is not None:
            head.append((b"x-chaos-injected", self.mark.encode("latin-1", "replace")))
        self._finished = True
        self._status = status
        self.head_sent = True
        send_body = bool(body) and body_allowed(self.method, status)
        self.conn.send_headers(self.stream, head, end=not send_body)
        if send_body:
            await self.conn.send_data(self.stream, body, end=True)
        self.complete = True

    async def write_raw(self, data: bytes) -> None:
        """Bytes outside the framing cannot go into one stream of a shared connection: the
        stream is reset with PROTOCOL_ERROR, what a client reading garbage would conclude."""
        self._status = self._status or 0
        self.head_sent = True
        self._reset(PROTOCOL_ERROR)

    async def flush(self) -> None:
        await self.conn.drain()

    def reset(self) -> None:
        """RST_STREAM(INTERNAL_ERROR) on this stream only: the connection's other streams
        carry on (a TCP RST would cut them all)."""
        self._reset(INTERNAL_ERROR)

    def reset_stream(self, code: int) -> None:
        """RST_STREAM with `code` (the `stream_reset` fault)."""
        self._reset(code)

    def _reset(self, code: int) -> None:
        self._finished = True
        self.complete = False
        self.abort_upstream()
        if not self.conn.closed and self.stream.reset_code is None:
            self.reset_sent = code
        self.conn.reset(self.stream, code)

    def filter_request_body(self, body_filter: BodyFilter) -> None:
        """Transform the request's DATA as it goes upstream (`grpc_message` on the client's
        messages); what a filter holds back holds the client's window shut with it."""
        self.request_filters = [*(self.request_filters or ()), body_filter]

    async def answer_with_status(self, fields: list[tuple[str, str]]) -> None:
        """Answer the call with these `grpc-status` fields now, wherever it is (`grpc_message`
        after N of the client's messages: a server that fails mid-stream): trailers-only
        before the answer's head, its trailers after; the upstream stream is cancelled."""
        if self.finished or self.client_gone:
            return
        if self.head_sent:
            self.end_with_trailers(fields)
            return
        self.abort_upstream()
        await self.respond(200, b"", [("content-type", "application/grpc"), *fields])

    def end_with_trailers(self, fields: list[tuple[str, str]]) -> None:
        """End the answer where it is with these trailers (`grpc_message`'s abort: a server
        that fails a call mid-stream); the upstream stream is cancelled."""
        self.abort_upstream()
        self._finished = True
        self.complete = True  # well framed: messages, then a status
        trailers = lower_headers(fields)
        self.grpc_status = grpc_status_in(trailers)
        if not self.conn.closed and self.stream.reset_code is None:
            self.conn.end_stream(self.stream, trailers)

    def stall_upload(
        self, after_bytes: int, seconds: float | None, on_stall: Callable[[], None]
    ) -> None:
        """The `upload_stall` fault: once `after_bytes` of the request's DATA went upstream,
        no more is read, so none is acknowledged and the client's window stays shut (it can
        send what the window still allows, then its sends block) for `seconds`, or for good.
        `on_stall` is called when the stall begins."""
        s, clock = self.stream, self.clock
        taken = 0

        async def gate(n: int) -> None:
            nonlocal taken
            taken += n
            if taken < after_bytes:
                return
            s.gate = None  # once
            on_stall()
            if seconds is None:
                await asyncio.get_running_loop().create_future()  # until the stream goes
                return
            await clock.sleep(seconds)

        s.gate = gate

    def goaway(self, graceful: bool, code: int, interval: float) -> None:
        """GOAWAY on this stream's connection (the `goaway` fault): a drain that lets this
        stream finish, or GOAWAY with the stream id before this one and a close."""
        if graceful:
            self.conn.drain_streams(interval, code)
            return
        self._finished = True
        self.complete = False
        self.abort_upstream()
        self.reset_sent = REFUSED_STREAM  # past the GOAWAY's last stream: never processed
        self.conn.goaway_now(max(self.stream.id - 2, 0), code)

    def close(self) -> None:
        """The stream ends where it is: after a head, END_STREAM (a body cut short); before
        one, RST_STREAM(CANCEL)."""
        self._finished = True
        self.complete = False
        self.abort_upstream()
        if self.conn.closed or self.stream.reset_code is not None:
            return
        if self.head_sent:
            try:
                self.conn.end_stream(self.stream)
                return
            except Exception:
                pass
        self.reset_sent = CANCEL
        self.conn.reset(self.stream, CANCEL)

    def abort_upstream(self) -> None:
        """RST_STREAM(CANCEL) on the upstream stream, if the call went up and is still there."""
        abort, self.upstream_abort = self.upstream_abort, None
        if abort is not None:
            abort()

    async def proceed_upstream(self) -> None:
        await self.core.route.forward(self)

    # ------------------------------------------------------------ for forward.py

    def set_status(self, status: int) -> None:
        """The answer's head is leaving with `status`."""
        self._status = status
        self.head_sent = True

    def done(self) -> None:
        """The whole answer went out (END_STREAM sent)."""
        self._finished = True
        self.complete = True

    def fail(self, code: int) -> None:
        """The upstream broke the answer off: the client's stream is reset with `code`."""
        if self._finished:
            return  # a fault ended the answer first (and cancelled the upstream stream)
        self._finished = True
        self.complete = False
        if not self.conn.closed and self.stream.reset_code is None:
            self.reset_sent = code
            self.conn.reset(self.stream, code)
