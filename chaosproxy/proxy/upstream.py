"""Forwarding to the upstream, behind one small interface.

`Upstream.request()` sends one request and returns once the status line and headers arrived; the
body streams from `UpstreamResponse.body()`. The aiohttp ClientSession implementation below is
the only one today; a leaner one (own keep-alive pool, C parser) can replace it without touching
the rest of the proxy.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import socket
import ssl
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import yarl

from chaosproxy.errors import REFUSED_DETAILS, UpstreamError
from chaosproxy.proxy.headers import HOP_BY_HOP, forwardable


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


class UpstreamResponse(Protocol):
    status: int
    reason: str

    @property
    def headers(self) -> list[tuple[str, str]]:
        """End-to-end headers only, in the upstream's order and spelling."""
        ...

    def body(self) -> AsyncIterator[bytes]: ...

    def release(self) -> None: ...


class Upstream(Protocol):
    config: UpstreamConfig

    async def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: AsyncIterable[bytes] | None,
    ) -> UpstreamResponse: ...

    async def reachable(self) -> bool: ...

    async def close(self) -> None: ...


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
    __slots__ = ("_resp", "headers", "reason", "status")

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self.status = resp.status
        self.reason = resp.reason or ""
        self.headers = forwardable(resp.headers, HOP_BY_HOP)

    def body(self) -> AsyncIterator[bytes]:
        return _Body(self._resp)

    def release(self) -> None:
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
            self._resp.release()
            raise classify(e) from e

    async def aclose(self) -> None:
        self._resp.release()


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
            connector = aiohttp.TCPConnector(
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
            )
        return self._session

    async def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: AsyncIterable[bytes] | None,
    ) -> UpstreamResponse:
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
        return _AiohttpResponse(resp)

    async def websocket(
        self, target: str, headers: list[tuple[str, str]], protocols: tuple[str, ...]
    ) -> aiohttp.ClientWebSocketResponse:
        url = yarl.URL(self._base + target, encoded=True)
        try:
            async with asyncio.timeout(self.config.timeout):
                return await self._client().ws_connect(
                    url, headers=headers, protocols=protocols, autoping=False, max_msg_size=0
                )
        except aiohttp.WSServerHandshakeError as e:
            raise UpstreamError("protocol", f"websocket handshake refused: {e.status}") from e
        except Exception as e:
            raise classify(e) from e

    async def reachable(self) -> bool:
        """True when a TCP (and TLS) connection to the upstream can be opened."""
        url = self.config.url
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            async with asyncio.timeout(self.config.connect_timeout):
                _, writer = await asyncio.open_connection(url.host, port)
        except (TimeoutError, OSError):
            return False
        writer.close()
        return True

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
