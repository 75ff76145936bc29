"""The upstream client: its own keep-alive pool of asyncio protocols and httptools' C parser.

It implements the `Upstream` interface for HTTP/1.1 to one upstream with little work per request
(aiohttp's ClientSession, the client before it, cost about 1.7 times the CPU per request). Its
modules, one job each: this one writes requests (and sends a request again when a reused
connection turns out stale) and opens upgrade tunnels (`tunnel`), `pool` hands out connections,
`connection` is one connection (the asyncio protocol and its flow control) and `response` the
exchange it carries (the response parser and its state, the bounded head, the body buffer).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable

from chaosproxy.common.errors import UpstreamError
from chaosproxy.proxy.upstream.connect import connect_error, make_ssl_context, tcp_reachable
from chaosproxy.proxy.upstream.connection import Conn
from chaosproxy.proxy.upstream.interface import OutgoingBody, Sink, Stale, UpstreamConfig
from chaosproxy.proxy.upstream.pool import Pool
from chaosproxy.proxy.upstream.response import Response, State
from chaosproxy.proxy.upstream.tunnel import StreamTunnel, open_tunnel

# RFC 9110 §9.2.2: requests a client may repeat on its own. A POST the upstream may have read
# before it closed the connection is never sent twice: the client decides about retrying it.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


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
        # What `send_now` reads per request, copied from the (frozen) config: compiled, a
        # field of this class is read directly, one of the config's is looked up.
        self._timeout = config.timeout
        self._read_timeout = config.read_timeout
        self._max_head = config.max_head
        self._max_headers = config.max_headers
        self._sweep_step = min(config.timeout, config.read_timeout or config.timeout)

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
                if attempt == 0 and method in IDEMPOTENT:
                    continue
                raise UpstreamError("reset", "the upstream closed the connection") from None
            except asyncio.CancelledError:
                resp.release()
                raise
            return resp
        raise AssertionError("unreachable")

    def send_now(
        self, method: str, target: str, lines: bytes, has_host: bool, sink: Sink
    ) -> Response | None:
        """Send a request without a body on an idle keep-alive connection, now, its answer
        handed to `sink` as it is parsed; None when no connection is idle (then `request`).
        No task, no future, no timer: the pool sweeps the head deadline (and the body's
        `read_timeout`). A reused connection
        the upstream had closed meanwhile fails the sink with `Stale`: the caller decides
        about sending again (`request` does it on a fresh connection)."""
        loop = self._running_loop()
        pool = self.pool
        conn = pool.take_idle(loop)
        if conn is None:
            pool.add_spare(loop, loop.time() + self._timeout)
            return None
        spare = conn.take_spare()
        if isinstance(spare, Response):  # the last exchange's, ended reusable: no new parser
            resp = spare
            resp.start(conn, sink)
        else:
            resp = Response(conn, False, loop, self._max_head, self._max_headers, sink)
        conn.resp = resp
        transport = conn.transport
        assert transport is not None
        resp.read_timeout = self._read_timeout
        resp.deadline = loop.time() + self._timeout
        pool.watch_deadlines(self._sweep_step)
        host = b"" if has_host else self._host_line
        m, t = method.encode("latin-1"), target.encode("latin-1")
        transport.write(b"%s %s HTTP/1.1\r\n%s%s\r\n" % (m, t, host, lines))
        resp.sent = True
        return resp

    async def upgrade(
        self, method: str, target: str, lines: bytes, has_host: bool, protocol: str
    ) -> StreamTunnel:
        head = f"{method} {target} HTTP/1.1\r\n".encode("latin-1", "replace")
        if not has_host:
            head += self._host_line
        head += lines + f"Connection: Upgrade\r\nUpgrade: {protocol}\r\n\r\n".encode(
            "latin-1", "replace"
        )
        return await open_tunnel(self._host, self._port, self._ssl, self.config.timeout, head)

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
