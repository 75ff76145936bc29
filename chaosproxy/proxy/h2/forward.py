"""Forwarding one HTTP/2 request stream upstream and streaming the answer back.

Two ways up: over an HTTP/2 stream of the h2 upstream pool (`client.py`; gRPC always,
everything with `--upstream-h2`), with the request's DATA pumped up as it arrives while the
answer streams down (bidirectional streaming keeps streaming); or over the HTTP/1.1 upstream
client (`upstream/`) for an HTTP/2 client's plain request, the upstream being HTTP/1.1.

Either way the answer goes back through the faults' hooks (reply hooks, headers hooks, body
filters) and, with none, as sent: headers minus connection-specific ones, DATA as it comes,
trailers, and an upstream RST_STREAM as the same RST_STREAM.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from chaosproxy.common.clock import Clock
from chaosproxy.common.errors import UpstreamError
from chaosproxy.faults.base import Reply
from chaosproxy.proxy.downstream.responses import body_allowed
from chaosproxy.proxy.h2.client import H2ClientConnection, H2Upstream
from chaosproxy.proxy.h2.connection import CONNECTION_WINDOW, MAX_CONCURRENT_STREAMS
from chaosproxy.proxy.h2.deadline import upstream_timeout
from chaosproxy.proxy.h2.exchange import H2Exchange
from chaosproxy.proxy.h2.headers import (
    H2Headers,
    end_to_end_h2,
    grpc_status_in,
    lower_headers,
    split_pseudo,
)
from chaosproxy.proxy.h2.stream import (
    CANCEL,
    INTERNAL_ERROR,
    REFUSED_STREAM,
    Stream,
    StreamReset,
)
from chaosproxy.proxy.upstream.forward import Forwarder

FIRST_BODY_BYTES = 16 * 1024
assert FIRST_BODY_BYTES * MAX_CONCURRENT_STREAMS <= CONNECTION_WINDOW
# A stream the upstream refused unprocessed goes again while the request DATA it carried is
# all still held: up to this much a stream, until the upstream's answer begins.
REPLAY_LIMIT = 64 * 1024
_ATTEMPTS = 3  # a refused stream goes on a new connection up to twice

_FORWARDED = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"})


class _Refused(Exception):
    """The upstream refused the stream before processing it: it may go again (once `pump`,
    the task that sent its DATA up, stopped)."""

    def __init__(self, pump: asyncio.Task[None] | None) -> None:
        super().__init__("refused")
        self.pump = pump


class _Replay:
    """The request DATA sent up a stream, kept until the upstream's answer begins: a stream
    refused unprocessed (REFUSED_STREAM, or above the last stream id of the upstream's GOAWAY:
    a graceful stop) goes again on another connection with it, as Envoy and gRPC retry a
    request whose body they still hold. Past `REPLAY_LIMIT` bytes (or with faults filtering the
    DATA) nothing is kept, and a refusal reaches the client as RST_STREAM(REFUSED_STREAM),
    which it may retry itself."""

    __slots__ = ("chunks", "size")

    def __init__(self, keep: bool) -> None:
        self.chunks: list[bytes] | None = [] if keep else None
        self.size = 0

    def keep(self, data: bytes) -> None:
        if self.chunks is not None:
            self.size += len(data)
            if self.size > REPLAY_LIMIT:
                self.chunks = None
            else:
                self.chunks.append(data)


class UpstreamStreamReset(UpstreamError):
    """The upstream reset its stream: the client's stream is reset with the same code."""

    def __init__(self, code: int) -> None:
        super().__init__("reset", f"the upstream reset the stream (error code {code})")
        self.code = code


@dataclass(frozen=True)
class Route:
    """Where a stream goes and the header rules on the way (resolved once at startup)."""

    h1: Forwarder  # the HTTP/1.1 upstream client and its header rules
    h2: H2Upstream
    clock: Clock
    upstream_h2: bool = False  # --upstream-h2: every request over HTTP/2
    head_timeout: float = 30.0  # until the answer's head (not for gRPC: its deadline rules)
    drop: frozenset[bytes] = frozenset()  # request headers never forwarded
    forwarded_headers: bool = True
    rewrite_host: bool = False
    # Longest silence in a request body forwarded to an HTTP/1.1 upstream (--body-timeout)
    body_timeout: float | None = None

    async def forward(self, ex: H2Exchange) -> None:
        if ex.grpc or self.upstream_h2:
            await self._via_h2(ex)
        else:
            await self._via_h1(ex)

    # ------------------------------------------------------------ HTTP/2 upstream

    def request_headers(self, ex: H2Exchange) -> H2Headers:
        up = self.h2
        authority = up.authority if self.rewrite_host or not ex.authority else ex.authority
        out: H2Headers = [
            (b":method", ex.method.encode("latin-1")),
            (b":scheme", up.scheme),
            (b":authority", authority if isinstance(authority, bytes) else authority.encode()),
            (b":path", ex.target.encode("latin-1")),
        ]
        skip = self.drop | _FORWARDED if self.forwarded_headers else self.drop
        prior = b""
        has_id = False
        for k, v in end_to_end_h2(ex.raw):
            if k == b"x-forwarded-for":
                prior = v if not prior else prior + b", " + v
            if k == b"x-request-id":
                has_id = True
            if k == b"host" or k in skip:
                continue
            if k == b"grpc-timeout" and ex.deadline is not None:
                v = upstream_timeout(ex, self.clock.monotonic())  # the time left, not given
            out.append((k, v))
        if self.forwarded_headers:
            ip = ex.client_ip.encode("latin-1")
            out.append((b"x-forwarded-for", prior + b", " + ip if prior else ip))
            out.append((b"x-forwarded-proto", ex.scheme.encode("latin-1")))
            if ex.authority:
                out.append((b"x-forwarded-host", ex.authority.encode("latin-1")))
        if not has_id:
            out.append((b"x-request-id", ex.request_id.encode("latin-1")))
        return out

    async def _via_h2(self, ex: H2Exchange) -> None:
        down = ex.stream
        end = down.ended and not down.buffered and down.trailers is None
        headers = self.request_headers(ex)
        t = self.clock.monotonic()
        # A stream the upstream refused (REFUSED_STREAM, or past its GOAWAY: never processed)
        # goes again on another connection, as HTTP/2 allows, while its DATA is held (`_Replay`).
        replay = _Replay(ex.request_filters is None)
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                conn, up = await self.h2.open(headers, end)
            except UpstreamError as e:
                ex.upstream_error = e.reason
                ex.upstream_duration = self.clock.monotonic() - t
                raise
            try:
                await self._exchange(ex, conn, up, end, t, replay, attempt < _ATTEMPTS)
                return
            except _Refused as r:
                if r.pump is not None:
                    await asyncio.wait([r.pump])  # one reader of the client's DATA at a time

    async def _exchange(
        self,
        ex: H2Exchange,
        conn: H2ClientConnection,
        up: Stream,
        end: bool,
        t: float,
        replay: _Replay,
        again: bool,  # a refused stream may go once more
    ) -> None:
        ex.upstream_abort = lambda: conn.reset(up, CANCEL)
        pump = None
        if not end:
            pump = asyncio.get_running_loop().create_task(_pump(ex, conn, up, replay))
        try:
            try:
                if ex.grpc or not self.head_timeout:
                    head = await up.head
                else:
                    async with asyncio.timeout(self.head_timeout):
                        head = await up.head
            except TimeoutError:
                raise UpstreamError(
                    "timeout", f"no answer from the upstream within {self.head_timeout:g}s"
                ) from None
            except StreamReset as e:
                if ex.finished:
                    return  # a fault answered the client meanwhile and cancelled this stream
                if e.code == REFUSED_STREAM and again and (end or replay.chunks is not None):
                    if pump is not None:
                        pump.cancel()
                    raise _Refused(pump) from None
                raise UpstreamStreamReset(e.code) from None
            finally:
                ex.upstream_duration = self.clock.monotonic() - t
            replay.chunks = None  # answered: it will not go again
            pseudo, regular = split_pseudo(head)
            status = int(pseudo.get(b":status", b"502"))

            async def chunks() -> AsyncIterator[bytes]:
                while True:
                    try:
                        d = await up.read()
                    except StreamReset as e:
                        raise UpstreamStreamReset(e.code) from None
                    if d is None:
                        return
                    yield d

            def ended() -> bool:
                return up.ended and not up.buffered and up.trailers is None

            await stream_back(
                ex, status, end_to_end_h2(regular), chunks(), lambda: up.trailers, ended
            )
        finally:
            ex.upstream_abort = None
            sending = pump is not None and not pump.done()
            if pump is not None and sending:
                pump.cancel()
            if up.id in conn.streams and (sending or not (up.ended and ex.complete)):
                conn.reset(up, CANCEL)  # the client or a fault gave the stream up
            conn.done(up)

    # ------------------------------------------------------------ HTTP/1.1 upstream

    async def _via_h1(self, ex: H2Exchange) -> None:
        down = ex.stream
        raw: H2Headers = []
        if ex.authority and ex.header("host") is None:
            raw.append((b"host", ex.authority.encode("latin-1")))
        raw += [(k, v) for k, v in end_to_end_h2(ex.raw) if k != b"te"]
        body = None if down.ended and not down.buffered else _StreamBody(down)
        if body is not None:
            # As for an HTTP/1.1 client: no upstream connection is held for a body that does
            # not come; its first frame's worth (or all of it) first, its silence bounded.
            # No more than a frame: streams waiting here must not take the connection's
            # whole window between them (256 streams x 16 KiB fit in it).
            try:
                await down.fill(FIRST_BODY_BYTES, self.body_timeout)
            except TimeoutError:
                await ex.respond(
                    408,
                    ex.error_body(408, f"no request body bytes arrived for {self.body_timeout:g}s"),
                    [("content-type", "application/json")],
                )
                return
        t = self.clock.monotonic()
        try:
            resp = await self.h1.request(
                ex.method, ex.target, raw, ex.client_ip, ex.request_id, body
            )
        except UpstreamError as e:
            ex.upstream_error = e.reason
            raise
        finally:
            ex.upstream_duration = self.clock.monotonic() - t
        ub = resp.body()
        try:
            allowed = body_allowed(ex.method, resp.status)

            async def chunks() -> AsyncIterator[bytes]:
                if allowed:
                    async for c in ub:
                        yield c

            await stream_back(
                ex,
                resp.status,
                lower_headers(resp.headers),
                chunks(),
                lambda: None,
                lambda: not allowed,
            )
        finally:
            with contextlib.suppress(Exception):
                await ub.aclose()
            resp.release()


class _StreamBody:
    """A client stream's DATA as the HTTP/1.1 upstream client reads a request body."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream

    def whole(self) -> bytes | None:
        return None  # always streamed: its DATA is acknowledged as it goes up

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        while (d := await self.stream.read()) is not None:
            yield d


async def _pump(ex: H2Exchange, conn: H2ClientConnection, up: Stream, replay: _Replay) -> None:
    """The client's DATA (and trailers) up the upstream stream as they arrive; each chunk
    acknowledged to the client once the upstream took it (and kept in `replay`). On a stream
    sent again, what the refused one carried goes first."""
    down = ex.stream
    try:
        if ex.request_filters is None:
            for again in list(replay.chunks or ()):
                await conn.send_data(up, again)
            while (d := await down.read()) is not None:
                replay.keep(d)
                await conn.send_data(up, d)
        else:  # faults on the client's messages (`grpc_message`)
            body: AsyncIterator[bytes] = _StreamBody(down).__aiter__()
            for f in ex.request_filters:
                body = f(ex, body)
            async for d in body:
                await conn.send_data(up, d)
        conn.end_stream(up, down.trailers)
    except StreamReset:
        if down.reset_code is not None and up.id in conn.streams:
            conn.reset(up, CANCEL)  # the client gave up: so does the upstream stream
        if up.reset_code != REFUSED_STREAM:  # else what is unread goes on the next stream
            down.release()


async def stream_back(
    ex: H2Exchange,
    status: int,
    headers: H2Headers,
    chunks: AsyncIterator[bytes],
    trailers: Callable[[], H2Headers | None],
    ended: Callable[[], bool],
) -> None:
    """The upstream's answer to the client through the faults' hooks."""
    if ex.reply_hooks:
        reply = Reply(status, "", [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers])
        for hook in ex.reply_hooks:
            changed = await hook(ex, reply)
            if changed is None or ex.finished:
                return  # the hook answered the client itself
            reply = changed
        status, headers = reply.status, lower_headers(reply.headers)
    has_id = False
    for k, v in headers:
        if k == b"x-request-id":
            has_id = True
        elif k == b"retry-after":
            with contextlib.suppress(ValueError):
                ex.retry_after = float(v)
        elif k == b"grpc-status" and ex.grpc:  # a trailers-only answer
            ex.grpc_status = grpc_status_in(((k, v),))
    out: H2Headers = [(b":status", str(status).encode()), *headers]
    if not has_id:
        out.append((b"x-request-id", ex.request_id.encode("latin-1")))
    if ex.mark is not None:
        out.append((b"x-chaos-injected", ex.mark.encode("latin-1", "replace")))
    ex.set_status(status)
    conn, down = ex.conn, ex.stream
    if ex.passthrough and ended():
        conn.send_headers(down, out, end=True)  # e.g. gRPC's trailers-only answer
        ex.done()
        return
    conn.send_headers(down, out)
    for sent in ex.headers_hooks or ():
        await sent(ex)
        if ex.finished:
            return
    body = chunks
    for f in ex.body_filters or ():
        body = f(ex, body)
    try:
        async for chunk in body:
            if ex.finished:
                return
            if chunk:
                await conn.send_data(down, chunk)
    except UpstreamStreamReset as e:
        ex.upstream_error = e.reason
        ex.fail(e.code)
        return
    except UpstreamError as e:
        ex.upstream_error = e.reason
        ex.fail(INTERNAL_ERROR)
        return
    if ex.finished:
        return
    tail = trailers()
    if tail and ex.grpc:
        ex.grpc_status = grpc_status_in(tail)
    conn.end_stream(down, tail)
    ex.done()
