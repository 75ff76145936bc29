"""A lean upstream client: its own keep-alive pool of asyncio protocols and httptools' C parser.

Most of a proxied request's CPU went to aiohttp's ClientSession; this implements the same
`Upstream` interface for plain HTTP/1.1 to one upstream with far less work per request.
WebSocket upgrades (rare) still go through aiohttp.
"""

from __future__ import annotations

import asyncio
import errno
import ssl
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, cast

import aiohttp
import httptools

from chaosproxy.errors import UpstreamError
from chaosproxy.proxy.headers import HOP_BY_HOP
from chaosproxy.proxy.upstream import AiohttpUpstream, UpstreamConfig, connect_error

_HOP_BYTES = frozenset(h.encode() for h in HOP_BY_HOP)

# Body bytes buffered before reading from the upstream pauses, and resumes.
_HIGH_WATER = 256 * 1024
_LOW_WATER = 64 * 1024


# RFC 9110 §9.2.2: requests a client may repeat on its own. A POST the upstream may have read
# before it closed the connection is never sent twice: the client decides about retrying it.
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


class _Stale(Exception):
    """A reused keep-alive connection was closed by the upstream before any response byte."""


def make_ssl_context(ca_file: str | None, insecure: bool) -> ssl.SSLContext:
    """The same rules as `make_client_ssl`: verify against `ca_file` (or the system), or not."""
    if insecure:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=ca_file)


def _lost_error(exc: BaseException | None, mid_body: bool) -> UpstreamError:
    """Reasons as `classify()` gives them for the same events seen through aiohttp."""
    if mid_body:
        return UpstreamError("reset", f"the upstream broke off the body: {exc or 'closed'}")
    if exc is None:
        return UpstreamError("reset", "the upstream closed the connection")
    if isinstance(exc, OSError) and exc.errno in (errno.ECONNRESET, errno.EPIPE):
        return UpstreamError("reset", "the upstream reset the connection")
    return UpstreamError("reset", f"upstream connection lost: {exc}")


class _Conn(asyncio.Protocol):
    """One upstream connection; feeds the response in flight (if any) and carries flow control."""

    def __init__(self, pool: NativeUpstream) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.resp: _Response | None = None
        self.closed = False
        self.reused = False  # served a response before: the upstream may have closed it since
        self.idle_since = 0.0
        self._drain: asyncio.Future[None] | None = None
        self._write_paused = False
        self.reading_paused = False

    def pause_reading(self) -> None:
        if not self.reading_paused and self.transport is not None and not self.closed:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused and self.transport is not None and not self.closed:
            self.reading_paused = False
            self.transport.resume_reading()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        resp = self.resp
        if resp is None:  # bytes nobody asked for: the connection is no longer trustworthy
            self.close()
            return
        resp.got_bytes = True
        try:
            resp.parser.feed_data(data)
        except httptools.HttpParserError as e:
            if resp.done:  # garbage after a complete response
                self.close()
            else:
                resp.fail(UpstreamError("protocol", f"invalid upstream response: {e}"))

    def eof_received(self) -> bool:
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool._lost(self)
        d = self._drain
        if d is not None and not d.done():
            d.set_result(None)
        resp = self.resp
        if resp is not None:
            resp.connection_lost(exc)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        d = self._drain
        if d is not None and not d.done():
            d.set_result(None)

    async def drain(self) -> None:
        if self._write_paused and not self.closed:
            self._drain = asyncio.get_running_loop().create_future()
            await self._drain
        if self.closed:
            raise ConnectionResetError("the upstream connection closed")

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()


class _Spent:
    """Callbacks of no one: what a released response's parser slot points at."""


# A released response drops its parser: the parser holds the response's bound methods, a
# reference cycle that would otherwise leave a dozen objects per request for the cyclic GC,
# whose full collections then hold the GIL for tens of milliseconds (the admin thread waits).
_SPENT_PARSER = httptools.HttpResponseParser(_Spent())


class _Response:
    """One response: the parser's callbacks, the head future and the body's bounded buffer.

    It is the `UpstreamResponse` and its own body iterator.
    """

    __slots__ = (
        "_chunks",
        "_eof_body",
        "_exc",
        "_head",
        "_headers",
        "_interim",
        "_kept",
        "_raw",
        "_reason",
        "_size",
        "_timer",
        "_waiter",
        "body_started",
        "conn",
        "done",
        "got_bytes",
        "has_id",
        "has_length",
        "head_lines",
        "is_head",
        "loop",
        "parser",
        "read_timeout",
        "reason",
        "reason_bytes",
        "retry_after",
        "sent",
        "status",
        "writer",
    )

    def __init__(self, conn: _Conn, is_head: bool, loop: asyncio.AbstractEventLoop) -> None:
        self.conn: _Conn | None = conn
        self.loop = loop
        self.is_head = is_head
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.reason = ""
        self.reason_bytes = b""
        self._headers: list[tuple[str, str]] | None = None
        self._kept: list[tuple[bytes, bytes]] = []
        # The end-to-end headers as the upstream sent them, for writing them back unchanged:
        # their lines (name, colon, value, CRLF) and what the writer must know about them.
        self.head_lines = b""
        self.has_length = self.has_id = False
        self.retry_after: bytes | None = None
        self.done = False  # every byte of the body arrived
        self.got_bytes = False
        self.sent = False  # the whole request is on the wire
        self.body_started = False
        self.writer: asyncio.Task[None] | None = None
        self.read_timeout: float | None = None
        self._head: asyncio.Future[None] = loop.create_future()
        self._timer: asyncio.TimerHandle | None = None
        self._raw: list[tuple[bytes, bytes]] = []
        self._reason = b""
        self._interim = False
        self._eof_body = False
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._exc: UpstreamError | None = None
        self._waiter: asyncio.Future[None] | None = None

    # ------------------------------------------------------------ parser callbacks

    def on_message_begin(self) -> None:
        self._raw = []
        self._reason = b""

    def on_status(self, status: bytes) -> None:
        self._reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self._raw.append((name, value))

    def on_headers_complete(self) -> None:
        if self.done:
            return
        status = self.parser.get_status_code()
        if status < 200 and status != 101:
            self._interim = True  # 100 Continue, 103 Early Hints: the proxy answers those itself
            return
        if status == 101:
            # Failing here (not raising: httptools would wrap it as a callback error) closes
            # the connection; whatever the parser reads after it is dropped.
            self.fail(UpstreamError("protocol", "the upstream switched protocols unasked"))
            return
        self.status = status
        self.reason_bytes = self._reason
        self.reason = self._reason.decode("latin-1")
        framed = self._scan_head()
        self._eof_body = not framed
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._head.done():
            self._head.set_result(None)
        if self.is_head:
            self._complete(self.parser.should_keep_alive())

    def _scan_head(self) -> bool:
        """One pass over the raw headers: keep the end-to-end ones as lines, note the ones the
        writer needs; True when the body is framed (Content-Length or chunked)."""
        lines: list[bytes] = []
        keep: list[tuple[bytes, bytes]] = []
        framed = False
        listed: set[bytes] | None = None
        for k, v in self._raw:
            low = k.lower()
            if low in _HOP_BYTES:
                if low == b"transfer-encoding":
                    framed = True
                elif low == b"connection" and v.lower() not in (b"keep-alive", b"close"):
                    extra = {t.strip().lower() for t in v.split(b",")} - _HOP_BYTES - {b""}
                    if extra:
                        listed = extra if listed is None else listed | extra
                continue
            if low == b"content-length":
                framed = self.has_length = True
            elif low == b"x-request-id":
                self.has_id = True
            elif low == b"retry-after":
                self.retry_after = v
            elif low.startswith(b"proxy-"):
                continue
            keep.append((k, v))
            lines += (k, b": ", v, b"\r\n")
        if listed:
            keep = [(k, v) for k, v in keep if k.lower() not in listed]
            lines = []
            for k, v in keep:
                lines += (k, b": ", v, b"\r\n")
        self._kept = keep  # not `_raw`: trailers arrive through on_header too
        self.head_lines = b"".join(lines)
        return framed

    @property
    def headers(self) -> list[tuple[str, str]]:
        """End-to-end headers, decoded (names as sent, order kept): built on first use."""
        h = self._headers
        if h is None:
            h = self._headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self._kept]
        return h

    def on_body(self, body: bytes) -> None:
        if self.done:
            return
        self._chunks.append(body)
        self._size += len(body)
        if self._size > _HIGH_WATER and self.conn is not None:
            self.conn.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        if not self.done:
            self._complete(self.parser.should_keep_alive())

    # ------------------------------------------------------------ state changes

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _complete(self, keep_alive: bool) -> None:
        self.done = True
        self._give_back(keep_alive and self.sent)
        self._wake()

    def _give_back(self, reusable: bool) -> None:
        conn = self.conn
        if conn is None:
            return
        self.conn = None
        conn.resp = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        w = self.writer
        if w is not None and not w.done():
            w.cancel()
        if not reusable and conn.transport is not None and not conn.closed:
            conn.transport.abort()
        elif reusable:
            conn.resume_reading()  # the rest of the body is buffered here, not on the wire
        conn.pool._release(conn, reusable)

    def fail(self, error: UpstreamError | _Stale) -> None:
        """The exchange is over without a complete response: the connection cannot be reused."""
        if self.done:
            return
        self._give_back(False)
        if not self._head.done():
            self._head.set_exception(error)
        elif isinstance(error, UpstreamError):
            self._exc = error
            self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done:
            return
        if not self._head.done():
            conn = self.conn
            if not self.got_bytes and conn is not None and conn.reused and not self.body_started:
                self.fail(_Stale())
            else:
                self.fail(_lost_error(exc, mid_body=False))
        elif self._eof_body and exc is None:
            self._complete(False)  # a close-delimited body ends with the connection
        else:
            self.fail(_lost_error(exc, mid_body=True))

    def on_timeout(self) -> None:
        self._timer = None
        self.fail(UpstreamError("timeout", "the upstream did not answer in time"))

    # ------------------------------------------------------------ UpstreamResponse

    def body(self) -> AsyncIterator[bytes]:
        return self

    def release(self) -> None:
        """A body not read to the end cannot go back to the pool."""
        if not self.done:
            self.done = True
            self._give_back(False)
        self._chunks.clear()
        self.parser = _SPENT_PARSER  # no connection feeds it any more (conn.resp is None)

    @property
    def complete(self) -> bool:
        return self.done and self._exc is None

    def __aiter__(self) -> _Response:
        return self

    async def __anext__(self) -> bytes:
        while True:
            chunks = self._chunks
            if chunks:
                data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                if self._size > _LOW_WATER and self.conn is not None:
                    self.conn.resume_reading()
                self._size = 0
                return data
            if self._exc is not None:
                raise self._exc
            if self.done:
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


class NativeUpstream:
    """Upstream over a keep-alive pool of asyncio protocols, responses parsed by httptools."""

    def __init__(self, config: UpstreamConfig) -> None:
        self.config = config
        url = config.url
        self._host = url.raw_host or "localhost"
        self._tls = url.scheme == "https"
        self._port = url.port or (443 if self._tls else 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        default = 443 if self._tls else 80
        self._host_header = host if self._port == default else f"{host}:{self._port}"
        self._host_line = f"Host: {self._host_header}\r\n".encode("latin-1", "replace")
        self._ssl = make_ssl_context(config.ca_file, config.insecure) if self._tls else None
        self._idle: deque[_Conn] = deque()
        self._conns: set[_Conn] = set()
        self._active = 0  # connections in use or being opened
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False
        self._aiohttp: AiohttpUpstream | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return (
            f"<NativeUpstream {self.config.url} [connections: {self._active} in use, "
            f"{len(self._idle)} idle | requests: {len(self._waiters)} waiting]>"
        )

    # ------------------------------------------------------------ pool

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        """The pool's loop, looked up once: `get_running_loop` costs a getpid() each call."""
        loop = self._loop
        if loop is None or loop.is_closed():
            loop = self._loop = asyncio.get_running_loop()
        return loop

    async def _acquire(self, deadline: float, fresh: bool) -> _Conn:
        loop = self._running_loop()
        while True:
            if self._closed:
                raise UpstreamError("refused", "the upstream client is closed")
            idle = self._idle
            while idle and not fresh:
                conn = idle.pop()
                if conn.closed:
                    continue
                if loop.time() - conn.idle_since > self.config.keepalive:
                    conn.close()
                    continue
                self._active += 1
                return conn
            if self._active + len(idle) < self.config.pool_size:
                self._active += 1
                try:
                    return await self._connect(loop, deadline)
                except BaseException:
                    self._active -= 1
                    self._wake_one()
                    raise
            if idle:  # full, fresh wanted: drop the oldest idle one to make room
                idle.popleft().close()
                continue
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise UpstreamError(
                    "timeout", "no upstream connection became free in time (pool full)"
                ) from None
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    async def _connect(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Conn:
        timeout = min(self.config.connect_timeout, max(0.0, deadline - loop.time()))
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Conn(self),
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._host if self._ssl is not None else None,
                ),
                timeout,
            )
        except TimeoutError:
            raise UpstreamError("timeout", "the upstream did not answer in time") from None
        except OSError as e:
            raise connect_error(e) from e
        self._conns.add(conn)
        return conn

    def _release(self, conn: _Conn, reusable: bool) -> None:
        self._active -= 1
        if reusable and not conn.closed and not self._closed:
            conn.reused = True
            conn.idle_since = self._running_loop().time()
            self._idle.append(conn)
            if self._sweep is None:
                self._schedule_sweep()
        elif not conn.closed:
            conn.close()
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            w = self._waiters.popleft()
            if not w.done():
                w.set_result(None)
                return

    def _lost(self, conn: _Conn) -> None:
        self._conns.discard(conn)
        if conn.resp is None and conn in self._idle:
            self._idle.remove(conn)
            self._wake_one()

    def _schedule_sweep(self) -> None:
        loop = asyncio.get_running_loop()
        self._sweep = loop.call_later(self.config.keepalive, self._sweep_idle)

    def _sweep_idle(self) -> None:
        """Close connections idle past `keepalive`: one timer for the pool, not one per release."""
        self._sweep = None
        now = asyncio.get_running_loop().time()
        idle = self._idle
        while idle and now - idle[0].idle_since >= self.config.keepalive:
            idle.popleft().close()
        if idle:
            self._schedule_sweep()

    # ------------------------------------------------------------ Upstream

    async def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: AsyncIterable[bytes] | None,
    ) -> _Response:
        head, chunked = self._head(method, target, headers, body is not None)
        return await self._send(method, head, chunked, body)

    async def request_lines(
        self,
        method: str,
        target: str,
        lines: bytes,
        has_host: bool,
        has_length: bool,
        body: AsyncIterable[bytes] | None,
    ) -> _Response:
        """`request` with the header lines already as bytes (name, colon, value, CRLF each):
        the pass-through path never decodes the client's headers."""
        chunked = body is not None and not has_length
        head = b"%s %s HTTP/1.1\r\n" % (method.encode("latin-1"), target.encode("latin-1"))
        if not has_host:
            head += self._host_line
        head += lines
        if chunked:
            head += b"Transfer-Encoding: chunked\r\n"
        return await self._send(method, head + b"\r\n", chunked, body)

    async def _send(
        self, method: str, head: bytes, chunked: bool, body: AsyncIterable[bytes] | None
    ) -> _Response:
        loop = self._running_loop()
        deadline = loop.time() + self.config.timeout
        data = None
        if body is not None and not chunked:
            data = _buffered(body)  # a small body already here: one write, no task
        for attempt in (0, 1):
            conn = await self._acquire(deadline, fresh=attempt == 1)
            resp = _Response(conn, method == "HEAD", loop)
            resp.read_timeout = self.config.read_timeout
            conn.resp = resp
            transport = conn.transport
            assert transport is not None
            resp._timer = loop.call_at(deadline, resp.on_timeout)
            if body is None or data is not None:
                transport.write(head + data if data else head)
                resp.sent = True
            else:
                transport.write(head)
                resp.writer = loop.create_task(_send_body(conn, resp, body, chunked))
            try:
                await resp._head
            except _Stale:
                if attempt == 0 and method in _IDEMPOTENT:
                    continue
                raise UpstreamError("reset", "the upstream closed the connection") from None
            except asyncio.CancelledError:
                resp.release()
                raise
            return resp
        raise AssertionError("unreachable")

    def _head(
        self, method: str, target: str, headers: list[tuple[str, str]], has_body: bool
    ) -> tuple[bytes, bool]:
        """The request head as bytes; and whether the body goes chunked (no Content-Length)."""
        lines = [f"{method} {target} HTTP/1.1\r\n"]
        has_host = has_length = False
        for k, v in headers:
            n = len(k)
            if n == 4 and k.lower() == "host":
                has_host = True
            elif n == 14 and k.lower() == "content-length":
                has_length = True
            lines.append(f"{k}: {v}\r\n")
        if not has_host:
            lines.insert(1, f"Host: {self._host_header}\r\n")
        chunked = has_body and not has_length
        if chunked:
            lines.append("Transfer-Encoding: chunked\r\n")
        lines.append("\r\n")
        return "".join(lines).encode("utf-8", "surrogateescape"), chunked

    async def websocket(
        self, target: str, headers: list[tuple[str, str]], protocols: tuple[str, ...]
    ) -> aiohttp.ClientWebSocketResponse:
        return await self._fallback().websocket(target, headers, protocols)

    def _fallback(self) -> AiohttpUpstream:
        if self._aiohttp is None:
            self._aiohttp = AiohttpUpstream(self.config)
        return self._aiohttp

    async def reachable(self) -> bool:
        """True when a TCP (and TLS) connection to the upstream can be opened."""
        return await self._fallback().reachable()

    async def close(self) -> None:
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        self._idle.clear()
        for conn in list(self._conns):
            conn.close()
        for w in self._waiters:
            if not w.done():
                w.set_result(None)
        if self._aiohttp is not None:
            await self._aiohttp.close()
            self._aiohttp = None


def _buffered(body: Any) -> bytes | None:
    """The whole body when the listener already holds all of it (a small request)."""
    whole = getattr(body, "whole", None)
    if whole is not None:
        data: bytes | None = whole()
        return data
    is_eof = getattr(body, "is_eof", None)  # an aiohttp StreamReader
    if is_eof is None or not is_eof():
        return None
    raw: bytes = body.read_nowait(-1)
    return raw


async def _send_body(
    conn: _Conn, resp: _Response, body: AsyncIterable[bytes], chunked: bool
) -> None:
    """Stream the request body, honouring the transport's write flow control."""
    resp.body_started = True
    transport = conn.transport
    assert transport is not None
    iter_any = getattr(body, "iter_any", None)
    source: AsyncIterable[bytes] = iter_any() if iter_any is not None else body
    try:
        async for chunk in source:
            if conn.closed:
                return
            if not chunk:
                continue
            if chunked:
                transport.writelines((b"%x\r\n" % len(chunk), chunk, b"\r\n"))
            else:
                transport.write(chunk)
            await conn.drain()
        if chunked and not conn.closed:
            transport.write(b"0\r\n\r\n")
        resp.sent = True
    except asyncio.CancelledError:
        raise
    except Exception as e:
        resp.fail(UpstreamError("reset", f"the request body could not be forwarded: {e}"))
