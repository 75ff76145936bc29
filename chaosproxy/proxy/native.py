"""A lean upstream client: its own keep-alive pool of asyncio protocols and httptools' C parser.

Most of a proxied request's CPU went to aiohttp's ClientSession; this implements the same
`Upstream` interface for plain HTTP/1.1 to one upstream with far less work per request. Four
modules, one job each: this one writes requests (and sends a request again when a reused
connection turns out stale), `native_pool` hands out connections, `native_conn` is one
connection (the asyncio protocol and its flow control) and `native_exchange` the exchange it
carries (the response parser and its state, the bounded head, the body buffer).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterable

from chaosproxy.common.errors import UpstreamError
from chaosproxy.proxy.native_conn import Conn
from chaosproxy.proxy.native_exchange import Response, Stale, State
from chaosproxy.proxy.native_pool import Pool
from chaosproxy.proxy.upstream import OutgoingBody, UpstreamConfig, connect_error, tcp_reachable

# RFC 9110 §9.2.2: requests a client may repeat on its own. A POST the upstream may have read
# before it closed the connection is never sent twice: the client decides about retrying it.
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


def make_ssl_context(ca_file: str | None, insecure: bool) -> ssl.SSLContext:
    """The same rules as `make_client_ssl`: verify against `ca_file` (or the system), or not."""
    if insecure:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=ca_file)


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
        host_header = host if self._port == default else f"{host}:{self._port}"
        self._host_line = f"Host: {host_header}\r\n".encode("latin-1", "replace")
        self._ssl = make_ssl_context(config.ca_file, config.insecure) if self._tls else None
        self.pool = Pool(config.pool_size, config.keepalive, self._connect)
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"<NativeUpstream {self.config.url} {self.pool!r}>"

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        """The pool's loop, looked up once: `get_running_loop` costs a getpid() each call."""
        loop = self._loop
        if loop is None or loop.is_closed():
            loop = self._loop = asyncio.get_running_loop()
        return loop

    async def _connect(self, deadline: float) -> Conn:
        loop = self._running_loop()
        timeout = min(self.config.connect_timeout, max(0.0, deadline - loop.time()))
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: Conn(self.pool),
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
        return conn

    # ------------------------------------------------------------ Upstream

    async def request(
        self,
        method: str,
        target: str,
        lines: bytes,
        has_host: bool,
        has_length: bool,
        body: OutgoingBody | None,
    ) -> Response:
        """The header lines come as bytes (name, colon, value, CRLF each): the pass-through
        path never decodes the client's headers."""
        chunked = body is not None and not has_length
        head = b"%s %s HTTP/1.1\r\n" % (method.encode("latin-1"), target.encode("latin-1"))
        if not has_host:
            head += self._host_line
        head += lines
        if chunked:
            head += b"Transfer-Encoding: chunked\r\n"
        head += b"\r\n"
        loop = self._running_loop()
        config = self.config
        deadline = loop.time() + config.timeout
        data = None
        if body is not None and not chunked:
            data = body.whole()  # a small body already here: one write, no task
        for attempt in (0, 1):
            conn = await self.pool.acquire(loop, deadline, fresh=attempt == 1)
            resp = Response(conn, method == "HEAD", loop, config.max_head, config.max_headers)
            resp.read_timeout = config.read_timeout
            conn.resp = resp
            transport = conn.transport
            assert transport is not None
            resp.start_timer(deadline)
            if body is None or data is not None:
                transport.write(head + data if data else head)
                resp.sent = True
            else:
                transport.write(head)
                resp.state = State.STREAMING
                resp.writer = loop.create_task(_send_body(conn, resp, body, chunked))
            try:
                await resp.wait_head()
            except Stale:
                if attempt == 0 and method in _IDEMPOTENT:
                    continue
                raise UpstreamError("reset", "the upstream closed the connection") from None
            except asyncio.CancelledError:
                resp.release()
                raise
            return resp
        raise AssertionError("unreachable")

    async def reachable(self) -> bool:
        return await tcp_reachable(self.config)

    async def close(self) -> None:
        self.pool.close()


async def _send_body(conn: Conn, resp: Response, body: AsyncIterable[bytes], chunked: bool) -> None:
    """Stream the request body, honouring the transport's write flow control."""
    transport = conn.transport
    assert transport is not None
    try:
        async for chunk in body:
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
