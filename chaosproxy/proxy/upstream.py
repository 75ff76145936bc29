"""Forwarding to the upstream, behind one small interface.

`Upstream.request()` sends one request and returns once the status line and headers arrived; the
body streams from `UpstreamResponse.body()`. Two implementations: `native.NativeUpstream` (the
default: own keep-alive pool, httptools) and `AiohttpUpstream` below (aiohttp's ClientSession,
the `--upstream-client aiohttp` fallback). Both satisfy these protocols exactly (mypy checks it).
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import socket
import ssl
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import aiohttp
import yarl
from aiohttp.client_reqrep import ConnectionKey
from aiohttp.connector import Connection
from aiohttp.tracing import Trace

from chaosproxy.common.errors import REFUSED_DETAILS, UpstreamError
from chaosproxy.proxy.headers import HOP_BY_HOP_BYTES, connection_listed


@dataclass(frozen=True)
class UpstreamConfig:
    url: yarl.URL
    pool_size: int = 256
    connect_timeout: float = 5.0
    timeout: float = 30.0  # until the status line and headers arrive: 504 past it
    read_timeout: float | None = None  # idle gap allowed while streaming a body
    keepalive: float = 30.0
    ca_file: str | None = None
    insecure: bool = False
    # The response head (status line and headers), as the listener bounds a request's head:
    # past either, a 502 and the connection is closed.
    max_head: int = 64 * 1024
    max_headers: int = 128


class OutgoingBody(Protocol):
    """A request body to forward (the listener's `RequestBody`)."""

    def whole(self) -> bytes | None:
        """Every byte, when all already arrived (then one write); else None (then stream it)."""
        ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...


class UpstreamBody(Protocol):
    """A response body, chunk by chunk as it arrives."""

    @property
    def complete(self) -> bool:
        """Every byte already arrived (buffered here): the first read takes it all."""
        ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def __anext__(self) -> bytes: ...

    async def aclose(self) -> None:
        """Give the body up; one not read to its end closes its connection."""
        ...


class UpstreamResponse(Protocol):
    """An upstream's answer once its head arrived.

    The end-to-end header lines are kept as received (`head_lines`: name, colon, value, CRLF
    each), so a reply no fault looks at goes back without being decoded; `headers` decodes them.
    """

    status: int
    reason: str
    reason_bytes: bytes
    head_lines: bytes
    has_length: bool  # Content-Length among the end-to-end headers
    has_id: bool  # X-Request-Id among them
    retry_after: bytes | None

    @property
    def headers(self) -> list[tuple[str, str]]:
        """End-to-end headers only, in the upstream's order and spelling."""
        ...

    def body(self) -> UpstreamBody: ...

    def release(self) -> None:
        """Done with this response: a body read to its end has gone back to the pool already;
        one that was not closes its connection."""
        ...


class Upstream(Protocol):
    config: UpstreamConfig

    async def request(
        self,
        method: str,
        target: str,
        lines: bytes,
        has_host: bool,
        has_length: bool,
        body: OutgoingBody | None,
    ) -> UpstreamResponse:
        """Send one request (its header lines as bytes: name, colon, value, CRLF each; whether
        they carry Host and Content-Length) and return once the response head arrived."""
        ...

    async def reachable(self) -> bool: ...

    async def close(self) -> None: ...


class ScannedHead(NamedTuple):
    kept: list[tuple[bytes, bytes]]  # end-to-end headers, order and spelling kept
    lines: bytes  # the same as header lines
    has_length: bool
    has_id: bool
    retry_after: bytes | None
    framed: bool  # Content-Length or Transfer-Encoding: the body does not end with the connection


def scan_head(raw: Iterable[tuple[bytes, bytes]]) -> ScannedHead:
    """One pass over a response's raw headers: keep the end-to-end ones (minus hop-by-hop,
    `Proxy-*` and what `Connection` lists) as lines, note what the writer needs."""
    lines: list[bytes] = []
    keep: list[tuple[bytes, bytes]] = []
    framed = has_length = has_id = False
    retry_after: bytes | None = None
    listed: frozenset[bytes] | None = None
    for k, v in raw:
        low = k.lower()
        if low in HOP_BY_HOP_BYTES:
            if low == b"transfer-encoding":
                framed = True
            elif low == b"connection":
                extra = connection_listed(v)
                if extra:
                    listed = extra if listed is None else listed | extra
            continue
        if low == b"content-length":
            framed = has_length = True
        elif low == b"x-request-id":
            has_id = True
        elif low == b"retry-after":
            retry_after = v
        elif low.startswith(b"proxy-"):
            continue
        keep.append((k, v))
        lines += (k, b": ", v, b"\r\n")
    if listed:
        keep = [(k, v) for k, v in keep if k.lower() not in listed]
        lines = []
        for k, v in keep:
            lines += (k, b": ", v, b"\r\n")
    return ScannedHead(keep, b"".join(lines), has_length, has_id, retry_after, framed)


def decode_headers(kept: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in kept]


_ADDRESS = re.compile(r" ?\('[^']*', \d+(?:, \d+, \d+)?\)")


def connect_error(e: BaseException) -> UpstreamError:
    """A failed connect, in words a client may read: the cause, never the upstream's address
    (the same words for a real refusal as for an injected one)."""
    if isinstance(e, ConnectionRefusedError):
        return UpstreamError("refused", REFUSED_DETAILS)
    if isinstance(e, socket.gaierror):  # the name did not resolve: its own words, no address
        return UpstreamError("refused", f"cannot connect to the upstream: {e.strerror}")
    if isinstance(e, OSError) and e.errno and e.errno > 0 and not isinstance(e, ssl.SSLError):
        # asyncio's message repeats the address ("Connect call failed ('10.0.0.7', 8080)").
        return UpstreamError("refused", f"cannot connect to the upstream: {os.strerror(e.errno)}")
    return UpstreamError("refused", f"cannot connect to the upstream: {_ADDRESS.sub('', str(e))}")


def classify(exc: BaseException) -> UpstreamError:
    """Map a client-side exception to a bounded reason: refused, timeout, reset or protocol."""
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamError("timeout", "the upstream did not answer in time")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return connect_error(exc.os_error)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return UpstreamError("reset", "the upstream closed the connection")
    if isinstance(exc, aiohttp.ClientOSError):
        if exc.errno in (errno.ECONNRESET, errno.EPIPE):
            return UpstreamError("reset", "the upstream reset the connection")
        return UpstreamError("refused", f"upstream connection error: {exc}")
    if isinstance(exc, ConnectionError):
        return UpstreamError("reset", f"upstream connection lost: {exc}")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return UpstreamError("reset", f"the upstream broke off the body: {exc}")
    return UpstreamError("protocol", f"invalid upstream response: {type(exc).__name__}: {exc}")


class _AiohttpResponse:
    __slots__ = (
        "_body",
        "_kept",
        "_resp",
        "has_id",
        "has_length",
        "head_lines",
        "reason",
        "reason_bytes",
        "retry_after",
        "status",
    )

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self.status = resp.status
        self.reason = resp.reason or ""
        self.reason_bytes = self.reason.encode("latin-1", "replace")
        scanned = scan_head(resp.raw_headers)
        self._kept = scanned.kept
        self.head_lines = scanned.lines
        self.has_length = scanned.has_length
        self.has_id = scanned.has_id
        self.retry_after = scanned.retry_after
        self._body = _Body(resp)

    @property
    def headers(self) -> list[tuple[str, str]]:
        return decode_headers(self._kept)

    def body(self) -> _Body:
        return self._body

    def release(self) -> None:
        if self._resp.content.is_eof():
            self._resp.release()
        else:
            self._resp.close()  # a body not read to the end cannot go back to the pool


class _Body:
    """The upstream body, chunk by chunk as it arrives; `complete` once every byte is here."""

    __slots__ = ("_it", "_resp")

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self._it = resp.content.iter_any()

    @property
    def complete(self) -> bool:
        return self._resp.content.is_eof()

    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._it.__anext__()
        except StopAsyncIteration:
            self._resp.release()
            raise
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            self._resp.close()
            raise classify(e) from e

    async def aclose(self) -> None:
        if self._resp.content.is_eof():
            self._resp.release()
        else:
            self._resp.close()


async def tcp_reachable(config: UpstreamConfig) -> bool:
    """True when a TCP connection to the upstream can be opened (readiness)."""
    url = config.url
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        async with asyncio.timeout(config.connect_timeout):
            _, writer = await asyncio.open_connection(url.host, port)
    except (TimeoutError, OSError):
        return False
    writer.close()
    return True


class _StrictConnector(aiohttp.TCPConnector):
    """A pool that never reuses a connection on which the upstream sent bytes nobody asked
    for (a response longer than its Content-Length): aiohttp would take them as the answer to
    the next request sent on it. (Overrides aiohttp's private `_get`; the test of the case,
    tests/proxy/test_hostile_upstreams.py, fails if aiohttp changes under it.)"""

    async def _get(self, key: ConnectionKey, traces: list[Trace]) -> Connection | None:
        conns = self._conns.get(key)
        if conns:
            for idle in [c for c in conns if c[0].should_close]:
                conns.remove(idle)
                idle[0].close()
        return await super()._get(key, traces)


def make_client_ssl(ca_file: str | None, insecure: bool) -> ssl.SSLContext | bool:
    if insecure:
        return False
    ctx = ssl.create_default_context(cafile=ca_file)
    return ctx


class AiohttpUpstream:
    """Upstream over aiohttp's ClientSession: keep-alive pool, no decompression, no redirects."""

    def __init__(self, config: UpstreamConfig) -> None:
        self.config = config
        self._base = str(config.url).rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            c = self.config
            connector = _StrictConnector(
                limit=c.pool_size,
                keepalive_timeout=c.keepalive,
                ssl=make_client_ssl(c.ca_file, c.insecure) if c.url.scheme == "https" else False,
                enable_cleanup_closed=False,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=c.connect_timeout, sock_read=c.read_timeout
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
                connector_owner=True,
                max_headers=c.max_headers,  # each line: aiohttp's own 8 KiB
            )
        return self._session

    async def request(
        self,
        method: str,
        target: str,
        lines: bytes,
        has_host: bool,
        has_length: bool,
        body: OutgoingBody | None,
    ) -> UpstreamResponse:
        # aiohttp wants pairs: the lines split back, decoded as the listener decodes them.
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, _, v in (line.partition(b": ") for line in lines.split(b"\r\n") if line)
        ]
        url = yarl.URL(self._base + target, encoded=True)
        try:
            async with asyncio.timeout(self.config.timeout):
                resp = await self._client().request(
                    method,
                    url,
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                    compress=False,
                    auto_decompress=False,
                )
        except Exception as e:
            raise classify(e) from e
        if resp.status == 101:  # the connection now speaks something else: not ours to relay
            resp.close()
            raise UpstreamError("protocol", "the upstream switched protocols unasked")
        if resp.status < 100:  # not an HTTP status (RFC 9110 §15)
            resp.close()
            raise UpstreamError("protocol", f"invalid upstream response: status {resp.status:03d}")
        return _AiohttpResponse(resp)

    async def reachable(self) -> bool:
        return await tcp_reachable(self.config)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
