"""One HTTP/2 request stream in flight: the faults' `Exchange` over a stream, not a socket.

Faults run unchanged on it: `respond` answers the stream (for a gRPC request without its own
`grpc-status`, as Envoy answers one: a trailers-only response, `:status 200` and the
`grpc-status` the HTTP status maps to), `sleep` delays it, `reset` sends RST_STREAM
(INTERNAL_ERROR; `stream_reset` chooses the code) and leaves the connection's other
streams alone, `close` ends the stream where it is. Reply hooks, headers hooks and body
filters see the upstream's answer as they do over HTTP/1.1 (`forward.py` streams it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Protocol
from urllib.parse import unquote

from multidict import CIMultiDict, CIMultiDictProxy

from chaosproxy.faults.grpc_abort import percent_encoded
from chaosproxy.proxy.downstream.exchange_base import BaseExchange, Site
from chaosproxy.proxy.downstream.responses import body_allowed
from chaosproxy.proxy.h2.headers import (
    H2Headers,
    grpc_status_of_http,
    is_grpc,
    lower_headers,
)
from chaosproxy.proxy.h2.server import H2ServerConnection
from chaosproxy.proxy.h2.stream import CANCEL, INTERNAL_ERROR, PROTOCOL_ERROR, Stream


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


class H2Exchange(BaseExchange):
    """State of one request stream; faults drive it through `faults.base.Exchange`. What it
    keeps and does as an HTTP/1.1 exchange does is its base's."""

    core: H2Site
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
        self.upstream_abort: Callable[[], None] | None = None  # cancels the upstream stream

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
        else:
            head = [(b":status", str(status).encode()), *lower_headers(fields)]
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
        self._abort_upstream()
        self.conn.reset(self.stream, code)

    def close(self) -> None:
        """The stream ends where it is: after a head, END_STREAM (a body cut short); before
        one, RST_STREAM(CANCEL)."""
        self._finished = True
        self.complete = False
        self._abort_upstream()
        if self.conn.closed or self.stream.reset_code is not None:
            return
        if self.head_sent:
            try:
                self.conn.end_stream(self.stream)
            except Exception:
                self.conn.reset(self.stream, CANCEL)
        else:
            self.conn.reset(self.stream, CANCEL)

    def _abort_upstream(self) -> None:
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
        self._finished = True
        self.complete = False
        if not self.conn.closed and self.stream.reset_code is None:
            self.conn.reset(self.stream, code)
