"""One exchange of the native client on one connection, seen from the reading side.

httptools' callbacks drive the `Response`'s `State`; it bounds the head, buffers the body up to a
high-water mark (pausing the connection past it), holds the head deadline and gives the
connection back to the pool (reusable or not) the moment the exchange is over. Whether a closed
connection was stale (send again) or lost is read from the state.

Two ways to hand the answer on: a reader awaits the head and iterates the buffered body (the
faults' pipeline), or a `Sink` gets the head, each piece of body and the end as callbacks, in
the parser's own callbacks (the relay of requests no fault touches: no future, no buffer, no
task). A sink's exchange has no timer of its own: the pool sweeps its deadline.

Over 400 lines on purpose: one exchange's state machine, whichever way its answer is handed on;
split by reader, every state change would be written twice.
"""

from __future__ import annotations

import asyncio
import enum
import errno
from typing import Final

import httptools

from chaosproxy.common.errors import UpstreamError
from chaosproxy.proxy.upstream.connection import Conn
from chaosproxy.proxy.upstream.head import decode_headers, scan_head
from chaosproxy.proxy.upstream.interface import Sink, Stale

# Body bytes buffered before reading from the upstream pauses, and resumes.
_HIGH_WATER: Final = 256 * 1024
_LOW_WATER: Final = 64 * 1024


class State(enum.Enum):
    """Where one exchange is; every decision about its connection is read from here."""

    WAITING = "waiting"  # the request went out whole from bytes held here; no response byte
    STREAMING = "streaming"  # the request body streams from the client; no response byte
    HEAD = "head"  # response bytes arrived; the final head is not complete yet
    INTERIM = "interim"  # inside a 1xx interim response (dropped); the final head follows
    BODY = "body"  # the head was handed over; the body is arriving
    DONE = "done"  # every byte arrived; the connection went back to the pool (or closed)
    FAILED = "failed"  # over without a complete response: an error, or given up by its reader


_NO_RESPONSE_YET: Final = (State.WAITING, State.STREAMING)
_IN_HEAD: Final = (State.WAITING, State.STREAMING, State.HEAD, State.INTERIM)
_OVER: Final = (State.DONE, State.FAILED)


class _Stop(Exception):
    """Raised from a parser callback to stop parsing (the exchange already failed)."""


def _lost_error(exc: BaseException | None, mid_body: bool) -> UpstreamError:
    """Why a connection closed under an exchange, as a reason a client may read."""
    if mid_body:
        return UpstreamError("reset", f"the upstream broke off the body: {exc or 'closed'}")
    if exc is None:
        return UpstreamError("reset", "the upstream closed the connection")
    if isinstance(exc, OSError) and exc.errno in (errno.ECONNRESET, errno.EPIPE):
        return UpstreamError("reset", "the upstream reset the connection")
    return UpstreamError("reset", f"upstream connection lost: {exc}")


class _Spent:
    """Callbacks of no one: what a released response's parser slot points at."""


# A released response drops its parser: the parser holds the response's bound methods, a
# reference cycle that would otherwise leave a dozen objects per request for the cyclic GC,
# whose full collections then hold the GIL for tens of milliseconds (the admin thread waits).
_SPENT_PARSER: Final = httptools.HttpResponseParser(_Spent())


class Response:
    """One exchange on one connection: the parser's callbacks, the head future, the body's
    bounded buffer. It is the `UpstreamResponse` and its own body (`UpstreamBody`)."""

    __slots__ = (
        "_chunks",
        "_close_delimited",
        "_exc",
        "_fed",
        "_fields",
        "_head",
        "_head_bytes",
        "_kept",
        "_max_head",
        "_max_headers",
        "_parked",
        "_raw",
        "_reason",
        "_size",
        "_timer",
        "_waiter",
        "conn",
        "deadline",
        "has_id",
        "has_length",
        "head_lines",
        "is_head",
        "loop",
        "parser",
        "read_timeout",
        "reason_bytes",
        "retry_after",
        "sent",
        "sink",
        "state",
        "status",
        "writer",
    )

    def __init__(
        self,
        conn: Conn,
        is_head: bool,
        loop: asyncio.AbstractEventLoop,
        max_head: int,
        max_headers: int,
        sink: Sink | None = None,
    ) -> None:
        self.loop = loop
        self.is_head = is_head
        self.parser = httptools.HttpResponseParser(self)
        self._max_head = max_head
        self._max_headers = max_headers
        self._parked: Conn | None = None  # a sink's exchange ended reusable on this connection
        self.start(conn, sink)

    def start(self, conn: Conn, sink: Sink | None) -> None:
        """Every field of one exchange, as it begins. A sink's response that ended with its
        connection reusable is parked on the connection (`feed`) and starts its next exchange
        here, parser and all: nothing of the last one is left."""
        self.conn: Conn | None = conn
        self.state = State.WAITING
        self.status = 0
        self.reason_bytes = b""
        self._kept: list[tuple[bytes, bytes]] = []
        # The end-to-end headers as the upstream sent them, for writing them back unchanged:
        # their lines (name, colon, value, CRLF) and what the writer must know about them.
        self.head_lines = b""
        self.has_length = self.has_id = False
        self.retry_after: bytes | None = None
        self.sent = False  # the whole request is on the wire (the connection may be reused)
        self.writer: asyncio.Task[None] | None = None
        self.read_timeout: float | None = None
        self._fed = 0  # bytes fed that left the head incomplete
        self._head_bytes = 0  # the header lines parsed so far
        self._fields = 0  # header lines of the message being parsed
        self.sink = sink
        # A sink's exchange is awaited by no one: no future, and no timer (`deadline`, loop
        # time, is checked by the pool's sweep; 0: none).
        self._head: asyncio.Future[None] | None = None if sink else self.loop.create_future()
        self.deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._raw: list[tuple[bytes, bytes]] = []
        self._reason = b""
        self._close_delimited = False
        self._chunks: list[bytes] = []  # (a list: it is joined whole, never popped from)
        self._size = 0
        self._exc: UpstreamError | None = None
        self._waiter: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"<Response {self.state.value} {self.status or ''}>"

    # ------------------------------------------------------------ bytes in

    def feed(self, data: bytes) -> None:
        """Bytes from the connection; the head they belong to is bounded in size and count."""
        if self.state in _NO_RESPONSE_YET:
            self.state = State.HEAD
        conn = self.conn
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as e:
            # (an upgrade is no parser error to httptools: it stops there and says so)
            if self._parked is not None:
                self._parked = None
                self.drop()
            if self.state is State.DONE and conn is not None:
                conn.close()  # more after a complete response: the connection is not trusted
            elif self.state not in _OVER:
                self.fail(UpstreamError("protocol", f"invalid upstream response: {e}"))
            return
        parked = self._parked
        if parked is not None:  # only now: the parser is done with this read
            self._parked = None
            parked.park(self)
            return
        if self.sink is not None and self.state is State.BODY:
            if self.read_timeout:  # the stall allowed between body bytes starts again
                self.deadline = self.loop.time() + self.read_timeout
            self.sink.flush()
        if self.state is State.HEAD or self.state is State.INTERIM:
            # Every byte of a chunk that leaves the head incomplete is part of it: this bounds
            # what the parser holds of a header line that never ends.
            self._fed += len(data)
            if self._fed > self._max_head:
                self.fail(self._too_large())

    def _too_large(self) -> UpstreamError:
        return UpstreamError(
            "protocol",
            f"the upstream's response head is larger than {self._max_head} bytes "
            f"or has more than {self._max_headers} header lines",
        )

    # ------------------------------------------------------------ parser callbacks

    def on_message_begin(self) -> None:
        if self.state in _OVER:
            # A second response after this one (the upstream said more than it was asked), or
            # anything after a failure: stop reading; the connection is closed.
            raise _Stop
        self._raw = []
        self._reason = b""
        self._fields = self._head_bytes = 0

    def on_status(self, status: bytes) -> None:
        self._reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        self._head_bytes += len(name) + len(value) + 4
        if self._fields > self._max_headers or self._head_bytes > self._max_head:
            self.fail(self._too_large())
            raise _Stop
        self._raw.append((name, value))

    def on_headers_complete(self) -> None:
        if self.state is not State.HEAD:
            return
        status = self.parser.get_status_code()
        if status < 100:  # not an HTTP status (RFC 9110 §15): nothing follows it to wait for
            self.fail(UpstreamError("protocol", f"invalid upstream response: status {status:03d}"))
            return
        if status < 200 and status != 101:
            # 100 Continue, 103 Early Hints: dropped (the proxy answers 100-continue itself)
            self.state = State.INTERIM
            return
        if status == 101:
            # Failing here (not raising: httptools would wrap it as a callback error) closes
            # the connection; whatever the parser reads after it is dropped.
            self.fail(UpstreamError("protocol", "the upstream switched protocols unasked"))
            return
        self.status = status
        self.reason_bytes = self._reason
        scanned = scan_head(self._raw)
        self._kept = scanned.kept  # not `_raw`: trailers arrive through on_header too
        self.head_lines = scanned.lines
        self.has_length = scanned.has_length
        self.has_id = scanned.has_id
        self.retry_after = scanned.retry_after
        self._close_delimited = not scanned.framed
        self._fields = self._head_bytes = 0  # trailers get a budget of their own
        self.state = State.BODY
        # From here a sink's deadline is the silence allowed mid-body (none: no deadline).
        rt = self.read_timeout
        self.deadline = self.loop.time() + rt if rt and self.sink is not None else 0.0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.sink is not None:
            self.sink.head(self)
        else:
            assert self._head is not None
            self._head.set_result(None)
        if self.is_head:
            self._complete(self.parser.should_keep_alive())

    @property
    def reason(self) -> str:
        """The reason phrase, decoded when asked (a relayed answer writes its bytes)."""
        return self.reason_bytes.decode("latin-1")

    @property
    def headers(self) -> list[tuple[str, str]]:
        """End-to-end headers, decoded (names as sent, order kept)."""
        return decode_headers(self._kept)

    def on_body(self, body: bytes) -> None:
        if self.state is not State.BODY:
            return
        if self.sink is not None:
            self.sink.body(body)
            return
        self._chunks.append(body)
        self._size += len(body)
        if self._size > _HIGH_WATER and self.conn is not None:
            self.conn.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.state is State.INTERIM:
            self.state = State.HEAD
        elif self.state is State.BODY:
            self._complete(self.parser.should_keep_alive())

    # ------------------------------------------------------------ state changes

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _complete(self, keep_alive: bool) -> None:
        self.state = State.DONE
        reusable = keep_alive and self.sent
        conn = self.conn
        self._give_back(reusable)
        sink = self.sink
        if sink is not None:
            if reusable and conn is not None:
                self.sink = None
                self._parked = conn  # parked once the parser returns (`feed`)
            else:
                self._spend()
            sink.end()
        else:
            self._wake()

    def _give_back(self, reusable: bool) -> None:
        conn = self.conn
        if conn is None:
            return
        self.conn = None
        conn.resp = None
        self.deadline = 0.0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        w = self.writer
        if w is not None and not w.done():
            w.cancel()
        if reusable:
            conn.resume_reading()  # the rest of the body is buffered here, not on the wire
        else:
            conn.abort()
        conn.pool.release(conn, reusable)

    def fail(self, error: UpstreamError | Stale) -> None:
        """The exchange is over without a complete response: the connection cannot be reused."""
        if self.state in _OVER:
            return
        self.state = State.FAILED
        self._give_back(False)
        sink = self.sink
        if sink is not None:
            self._spend()
            sink.failed(error)
        elif self._head is not None and not self._head.done():
            self._head.set_exception(error)
        elif isinstance(error, UpstreamError):
            self._exc = error
            self._wake()

    def _spend(self) -> None:
        """A sink's exchange is over and its response is not kept for another."""
        self.sink = None
        self.drop()

    def drop(self) -> None:
        """Used no more (over and not parked, or parked and its connection closed): no
        reference cycle is left for the cyclic GC (see `_SPENT_PARSER`); the parser finishes
        the call it is in."""
        self.parser = _SPENT_PARSER

    def connection_lost(self, exc: Exception | None, reused: bool) -> None:
        """Stale (send again), lost before the head, or cut mid-body: read from the state."""
        state = self.state
        if state is State.WAITING and reused:
            self.fail(Stale())
        elif state in _IN_HEAD:
            self.fail(_lost_error(exc, mid_body=False))
        elif state is State.BODY:
            if self._close_delimited and exc is None:
                self._complete(False)  # a close-delimited body ends with the connection
            else:
                self.fail(_lost_error(exc, mid_body=True))

    def on_timeout(self) -> None:
        self._timer = None
        self.deadline = 0.0
        if self.state is State.BODY:  # a sink's body went silent (the pool's sweep)
            self.fail(UpstreamError("timeout", "the upstream stalled mid-body"))
        else:
            self.fail(UpstreamError("timeout", "the upstream did not answer in time"))

    async def wait_head(self) -> None:
        assert self._head is not None
        await self._head

    def start_timer(self, deadline: float) -> None:
        self._timer = self.loop.call_at(deadline, self.on_timeout)

    # ------------------------------------------------------------ UpstreamResponse

    def body(self) -> Response:
        return self

    def release(self) -> None:
        """A body not read to the end cannot go back to the pool."""
        if self.state not in _OVER:
            self.state = State.FAILED
            self._give_back(False)
        self._chunks.clear()
        self._spend()  # no connection feeds it any more (conn.resp is None)

    @property
    def complete(self) -> bool:
        return self.state is State.DONE

    def __aiter__(self) -> Response:
        return self

    async def __anext__(self) -> bytes:
        while True:
            chunks = self._chunks
            if chunks:
                data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                if self._size > _LOW_WATER and self.conn is not None:
                    self.conn.resume_reading()
                self._size = 0
                return data
            if self._exc is not None:
                raise self._exc
            if self.state in _OVER:
                raise StopAsyncIteration
            self._waiter = self.loop.create_future()
            try:
                if self.read_timeout is None:
                    await self._waiter
                else:
                    await asyncio.wait_for(self._waiter, self.read_timeout)
            except TimeoutError:
                self.fail(UpstreamError("timeout", "the upstream stalled mid-body"))
            finally:
                self._waiter = None

    async def aclose(self) -> None:
        self.release()
