"""The native upstream client against real sockets: raw asyncio servers, some misbehaving."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import pytest
import trustme
import yarl

from chaosproxy.common.errors import UpstreamError
from chaosproxy.proxy.upstream.client import NativeUpstream
from chaosproxy.proxy.upstream.interface import UpstreamConfig
from chaosproxy.proxy.upstream.response import Response, State

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """A raw TCP server on 127.0.0.1:0 that counts connections and records requests."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.url = ""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[..., Awaitable[RawServer]]]:
    servers: list[RawServer] = []

    async def start(handler: Handler, ssl_ctx: ssl.SSLContext | None = None) -> RawServer:
        rs = RawServer(handler)
        rs.server = await asyncio.start_server(rs._serve, "127.0.0.1", 0, ssl=ssl_ctx)
        port = rs.server.sockets[0].getsockname()[1]
        rs.url = f"{'https' if ssl_ctx else 'http'}://127.0.0.1:{port}"
        servers.append(rs)
        return rs

    yield start
    for rs in servers:
        assert rs.server is not None
        rs.server.close()


@pytest.fixture
async def clients() -> AsyncIterator[Callable[..., NativeUpstream]]:
    made: list[NativeUpstream] = []

    def make(url: str, **kw: object) -> NativeUpstream:
        up = NativeUpstream(UpstreamConfig(url=yarl.URL(url), **kw))  # type: ignore[arg-type]
        made.append(up)
        return up

    yield make
    for up in made:
        await up.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """The request head (no body)."""
    return await reader.readuntil(b"\r\n\r\n")


def ok(body: bytes = b"hello", extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


async def serve_ok_forever(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        await read_request(reader)
        writer.write(ok())
        await writer.drain()


class Streamed:
    """A request body that streams (never whole up front), like a large client upload."""

    def __init__(self, *parts: bytes) -> None:
        self.parts = parts

    def whole(self) -> bytes | None:
        return None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for p in self.parts:
            yield p


async def send(
    up: NativeUpstream,
    method: str = "GET",
    target: str = "/",
    headers: Sequence[tuple[str, str]] = (),
    body: Streamed | None = None,
) -> Response:
    """`up.request` with the header lines built from pairs, as the proxy's forwarder does."""
    lines = b"".join(f"{k}: {v}\r\n".encode() for k, v in headers)
    names = {k.lower() for k, _ in headers}
    return await up.request(method, target, lines, "host" in names, "content-length" in names, body)


async def read_all(up: NativeUpstream, target: str = "/", method: str = "GET") -> bytes:
    resp = await send(up, method, target)
    return b"".join([c async for c in resp.body()])


# ---------------------------------------------------------------- responses


async def test_response_keeps_end_to_end_headers_in_order_and_spelling(
    raw_server: Callable[..., Awaitable[RawServer]], clients: Callable[..., NativeUpstream]
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 201 Made It\r\nX-b: 1\r\nConnection: keep-alive, X-Secret\r\n"
            b"Keep-Alive: timeout=5\r\nX-Secret: s\r\nx-A: 2\r\nContent-Length: 2\r\n\r\nok"
        )
        await writer.drain()

    rs = await raw_server(handler)
    resp = await send(clients(rs.url), "GET", "/")
    assert (resp.status, resp.reason) == (201, "Made It")
    assert resp.headers == [("X-b", "1"), ("x-A", "2"), ("Content-Length", "2")]


async def test_keep_alive_connection_is_reused(
    raw_server: Callable[..., Awaitable[RawServer]], clients: Callable[..., NativeUpstream]
) -> None:
    rs = await raw_server(serve_ok_forever)
    up = clients(rs.url)
    assert [await read_all(up), await read_all(up), await read_all(up)] == [b"hello"] * 3
    assert rs.connections == 1


async def test_a_response_read_to_its_end_returns_its_connection_to_the_pool(
    raw_server: Callable[..., Awaitable[RawServer]], clients: Callable[..., NativeUpstream]
) -> None:
    rs = await raw_server(serve_ok_forever)
    up = clients(rs.url)
    resp = await send(up)
    assert (resp.state, up.pool.in_use, up.pool.idle) == (State.DONE, 0, 1)


async def test_small_complete_body_is_marked_complete(
    raw_server: Callable[..., Awaitable[RawServer]], clients: Callable[..., NativeUpstream]
) -> None:
    rs = await raw_server(serve_ok_forever)
    resp = await send(clients(rs.url), "GET", "/")
    assert resp.body().complete


async def test_close_after_headers_raises_reset_from_the_body(
    raw_server: Callable[..., Awaitable[RawServer]], clients: Callable[..., NativeUpstream]
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten.")
        await writer.drain()

    rs = await raw_server(handler)
    resp = await send(clients(rs.url), "GET", "/")
    with pytest.raises(UpstreamError) as e:
        async for _ in resp.body():
            pass
    assert e.value.reason == "reset"


async def test_close_before_any_response_byte_is_a_reset(
    raw_server: Callable[..., Awaitable[RawServer]], clients: Callable[..., NativeUpstream]
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    rs = await raw_server(handler)
    with pytest.raises(UpstreamError) as e:
        await send(clients(rs.url), "GET", "/")
    assert e.value.reason == "reset"


async def test_idle_connection_closed_by_upstream_is_retried_on_a_fresh_one(
    raw_server: Callable[..., Awaitable[RawServer]], clients: Callable[..., NativeUpstream]
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(ok())
        await writer.drain()
        await read_request(reader)  # the keep-alive race: it closes instead of answering

    rs = await raw_server(handler)
    up = clients(rs.url)
    assert await read_all(up) == b"hello"
    assert await read_all(up) == b"hello"
    assert rs.connections == 2


async def test_a_post_is_never_sent_twice_when_its_connection_dies(
    raw_server: Callable[..., Awaitable[RawServer]], clients: Callable[..., NativeUpstream]
) -> None:
    posts: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(ok())
        await writer.drain()
        posts.append(await read_request(reader))  # it may have acted on it, then closed

    rs = await raw_server(handler)
    up = clients(rs.url)
    assert await read_all(up) == b"hello"
    with pytest.raises(UpstreamError) as e:
        await read_all(up, method="POST")
    assert e.value.reason == "reset"
    assert len(posts) == 1 and rs.connections == 1


async def test_upstream_closing_an_idle_connection_takes_it_out_of_the_pool(
    raw_server: Callable[..., Awaitable[RawServer]], clients: Callable[..., NativeUpstream]
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(ok())
        await writer.drain()

    rs = await raw_server(handler)
    up = clients(rs.url)
    await read_all(up)
    async with asyncio.timeout(5):
        while up.pool.idle:
            await asyncio.sleep(0.01)
    assert await read_all(up) == b"hello"


async def test_chunked_body_with_extensions_and_trailers_arrives_whole(
    raw_server: Callable[..., Awaitable[RawServer]], clients: Callable[..., NativeUpstream]
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
            b"5;name=value\r\nhello\r\n7\r\n, world\r\n0\r\nX-Sum: 12\r\n\r\n"
        )
        await writer.drain()
        await read_request(reader)
        writer.write(ok(b"again"))
        await writer.drain()

    rs = await raw_server(handler)
    up = clients(rs.url)
    resp = await send(up, "GET", "/")
    assert resp.headers == []  # Transfer-Encoding and Trailer are hop-by-hop
    assert b"".join([c async for c in resp.body()]) == b"hello, world"
    assert await read_all(up) == b"again"  # the trailers did not poison the connection
    assert rs.connections == 1


async def test_interim_1xx_responses_are_skipped(
    raw_server: Callable[..., Awaitable[RawServer]], clients: Callable[..., NativeUpstream]
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n")
        writer.write(ok(b"final", "X-Final: yes\r\n"))
        await writer.drain()

    rs = await raw_server(handler)
    resp = await send(clients(rs.url), "GET", "/")
    assert (resp.status, ("X-Final", "yes") in resp.headers) == (200, True)
    assert b"".join([c async for c in resp.body()]) == b"final"


async def test_head_response_has_no_body_and_keeps_the_connection(
    raw_server: Callable[..., Awaitable[RawServer]], clients: Callable[..., NativeUpstream]
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        await writer.drain()
        await serve_ok_forever(reader, writer)

    rs = await raw_server(handler)
    up = clients(rs.url)
    assert await read_all(up, method="HEAD") == b""
    assert await read_all(up) == b"hello"
    assert rs.connections == 1


@pytest.mark.parametrize("status", [204, 304])
async def test_bodiless_statuses_end_at_the_head(
    status: int,
    raw_server: Callable[..., Awaitable[RawServer]],
    clients: Callable[..., NativeUpstream],
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(f"HTTP/1.1 {status} X\r\nETag: x\r\n\r\n".encode())
        await writer.drain()
        await serve_ok_forever(reader, writer)

    rs = await raw_server(handler)
    up = clients(rs.url)
    assert await read_all(up) == b""
    assert await read_all(up) == b"hello"
    assert rs.connections == 1


async def test_close_delimited_body_ends_with_the_connection(
    raw_server: Callable[..., Awaitable[RawServer]], clients: Callable[..., NativeUpstream]
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
        await writer.drain()

    rs = await raw_server(handler)
    up = clients(rs.url)
    assert await read_all(up) == b"until the end"
    assert (up.pool.in_use, up.pool.idle) == (0, 0)


async def test_http_1_0_response_does_not_return_to_the_pool(
    raw_server: Callable[..., Awaitable[RawServer]], clients: Callable[..., NativeUpstream]
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await reader.read()

    rs = await raw_server(handler)
    up = clients(rs.url)
    assert await read_all(up) == b"ok"
    assert (up.pool.in_use, up.pool.idle) == (0, 0)


async def test_body_not_read_to_the_end_closes_its_connection_on_release(
    raw_server: Callable[..., Awaitable[RawServer]], clients: Callable[..., NativeUpstream]
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 10)
        await writer.drain()
        await reader.read()

    rs = await raw_server(handler)
    up = clients(rs.url)
    resp = await send(up, "GET", "/")
    resp.release()
    assert (resp.state, up.pool.in_use, up.pool.idle) == (State.FAILED, 0, 0)


async def test_garbage_response_is_a_protocol_error(
    raw_server: Callable[..., Awaitable[RawServer]], clients: Callable[..., NativeUpstream]
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()
        await reader.read()

    rs = await raw_server(handler)
    with pytest.raises(UpstreamError) as e:
        await send(clients(rs.url), "GET", "/")
    assert e.value.reason == "protocol"


async def test_switching_protocols_unasked_is_a_protocol_error(
    raw_server: Callable[..., Awaitable[RawServer]], clients: Callable[..., NativeUpstream]
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\nPRI *")
        await writer.drain()
        await reader.read()

    rs = await raw_server(handler)
    up = clients(rs.url)
    with pytest.raises(UpstreamError) as e:
        await send(up, "GET", "/")
    assert e.value.reason == "protocol" and "switched protocols" in e.value.details
    assert (up.pool.in_use, up.pool.idle) == (0, 0)


async def test_slow_headers_time_out(
    raw_server: Callable[..., Awaitable[RawServer]], clients: Callable[..., NativeUpstream]
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.read()  # never answers

    rs = await raw_server(handler)
    with pytest.raises(UpstreamError) as e:
        await send(clients(rs.url, timeout=0.2), "GET", "/")
    assert e.value.reason == "timeout"


async def test_refused_port_is_refused(
    clients: Callable[..., NativeUpstream], refused_url: str
) -> None:
    with pytest.raises(UpstreamError) as e:
        await send(clients(refused_url), "GET", "/")
    assert e.value.reason == "refused"


async def test_pool_size_caps_concurrent_connections(
    raw_server: Callable[..., Awaitable[RawServer]], clients: Callable[..., NativeUpstream]
) -> None:
    rs = await raw_server(serve_ok_forever)
    up = clients(rs.url, pool_size=1)
    bodies = await asyncio.gather(*(read_all(up) for _ in range(5)))
    assert (bodies, rs.connections) == ([b"hello"] * 5, 1)


class Kept:
    """A sink that keeps what the answer brought (`send_now`)."""

    def __init__(self) -> None:
        self.data = b""
        self.ended = asyncio.get_running_loop().create_future()

    def head(self, resp: object) -> None:
        pass

    def body(self, data: bytes) -> None:
        self.data += data

    def flush(self) -> None:
        pass

    def end(self) -> None:
        self.ended.set_result(None)

    def failed(self, error: object) -> None:
        self.ended.set_exception(AssertionError(f"failed: {error}"))


async def serve_held_or_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """`/held` gets a body that never ends; anything else `ok()`."""
    while True:
        if (await read_request(reader)).split(b" ")[1] == b"/held":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nsome")
        else:
            writer.write(ok())
        await writer.drain()


async def test_a_request_that_finds_no_idle_connection_while_others_work_grows_the_pool(
    raw_server: Callable[..., Awaitable[RawServer]], clients: Callable[..., NativeUpstream]
) -> None:
    """The pool grows to the traffic's concurrency: a request sent at once (`send_now`) that
    finds every connection busy opens one more in the background, for the next one."""
    rs = await raw_server(serve_held_or_ok)
    up = clients(rs.url)
    held = await send(up, "GET", "/held")  # the pool's one connection, in use
    assert up.send_now("GET", "/", b"", False, Kept()) is None  # nothing idle: the caller waits
    async with asyncio.timeout(5):
        while up.pool.idle == 0:  # the spare, opened meanwhile
            await asyncio.sleep(0.01)
    sink = Kept()
    assert up.send_now("GET", "/", b"", False, sink) is not None
    await sink.ended
    assert (sink.data, rs.connections) == (b"hello", 2)
    held.release()


async def test_no_connection_is_opened_ahead_of_the_first_request_or_past_the_size(
    raw_server: Callable[..., Awaitable[RawServer]], clients: Callable[..., NativeUpstream]
) -> None:
    rs = await raw_server(serve_held_or_ok)
    up = clients(rs.url, pool_size=1)
    assert up.send_now("GET", "/", b"", False, Kept()) is None
    assert (up.pool.in_use, up.pool.idle) == (0, 0)  # no request in flight: nothing opened
    held = await send(up, "GET", "/held")
    assert up.send_now("GET", "/", b"", False, Kept()) is None
    assert (up.pool.in_use, up.pool.idle) == (1, 0)  # full: no spare
    held.release()
    assert await read_all(up) == b"hello"
    assert rs.connections == 2  # the held one was closed unread; one more, on demand


async def test_room_freed_in_a_full_pool_goes_to_the_waiting_request_not_a_newcomer(
    raw_server: Callable[..., Awaitable[RawServer]], clients: Callable[..., NativeUpstream]
) -> None:
    arrived: list[bytes] = []  # request targets in the order the upstream read them

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            target = (await read_request(reader)).split(b" ")[1]
            arrived.append(target)
            if target == b"/held":  # a body that never ends: its reader gives it up
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nsome")
            else:
                writer.write(ok())
            await writer.drain()

    rs = await raw_server(handler)
    up = clients(rs.url, pool_size=1)
    held = await send(up, "GET", "/held")  # the pool's only connection
    waiting = asyncio.create_task(read_all(up, "/waiting"))
    async with asyncio.timeout(5):
        while up.pool.waiting == 0:
            await asyncio.sleep(0.01)
    newcomer = asyncio.create_task(read_all(up, "/newcomer"))  # its first step runs next
    held.release()  # the connection closes: its room is free (the waiter's wake-up follows)
    assert await asyncio.gather(waiting, newcomer) == [b"hello", b"hello"]
    assert arrived == [b"/held", b"/waiting", b"/newcomer"]


async def test_waiting_requests_are_served_in_arrival_order_on_the_one_connection(
    raw_server: Callable[..., Awaitable[RawServer]], clients: Callable[..., NativeUpstream]
) -> None:
    rs = await raw_server(serve_ok_forever)
    up = clients(rs.url, pool_size=1)
    order: list[int] = []

    async def one(i: int) -> None:
        await read_all(up, f"/{i}")
        order.append(i)

    await asyncio.gather(*(one(i) for i in range(6)))
    assert order == list(range(6)) and rs.connections == 1
    assert (up.pool.in_use, up.pool.idle, up.pool.waiting) == (0, 1, 0)


async def test_slow_consumer_pauses_reading_from_the_upstream(
    raw_server: Callable[..., Awaitable[RawServer]], clients: Callable[..., NativeUpstream]
) -> None:
    size = 64 * 1024 * 1024
    wrote_all = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
        block = b"x" * (1024 * 1024)
        for _ in range(size // len(block)):
            writer.write(block)
            await writer.drain()
        wrote_all.set()

    rs = await raw_server(handler)
    resp = await send(clients(rs.url), "GET", "/")
    body = resp.body()
    first = await body.__anext__()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(wrote_all.wait(), 0.3)  # the proxy stopped reading
    received = len(first) + sum([len(c) async for c in body])
    assert received == size


async def test_connection_that_paused_for_a_big_body_serves_the_next_request(
    raw_server: Callable[..., Awaitable[RawServer]], clients: Callable[..., NativeUpstream]
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(ok(b"x" * (300 * 1024)))
        await writer.drain()
        await serve_ok_forever(reader, writer)

    rs = await raw_server(handler)
    up = clients(rs.url, timeout=5.0)
    resp = await send(up, "GET", "/")
    body = resp.body()
    conn = resp.conn
    assert conn is not None
    async with asyncio.timeout(5):
        # Unread, the body passes the high-water mark and reading pauses (or, when the last
        # of it came in the read that passed the mark, the exchange completed at once). Not
        # "until complete": how the bytes are split into reads decides whether the rest is
        # read before the pause.
        while not (conn.reading_paused or body.complete):
            await asyncio.sleep(0.01)
    assert sum([len(c) async for c in body]) == 300 * 1024  # reading resumes as it drains
    assert await read_all(up) == b"hello"
    assert rs.connections == 1


# ---------------------------------------------------------------- requests


async def test_request_is_serialised_as_given_with_host_added_when_absent(
    raw_server: Callable[..., Awaitable[RawServer]], clients: Callable[..., NativeUpstream]
) -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            seen.append(await read_request(reader))
            writer.write(ok())
            await writer.drain()

    rs = await raw_server(handler)
    up = clients(rs.url)
    await send(up, "GET", "/a%2Fb?q=%20x", [("x-Lower", "1"), ("X-Upper", "2")])
    await send(up, "GET", "/", [("Host", "client.example")])
    host = rs.url.removeprefix("http://")
    assert seen[0] == (
        f"GET /a%2Fb?q=%20x HTTP/1.1\r\nHost: {host}\r\nx-Lower: 1\r\nX-Upper: 2\r\n\r\n".encode()
    )
    assert b"Host: client.example\r\n" in seen[1] and host.encode() not in seen[1]


async def test_body_without_content_length_goes_chunked(
    raw_server: Callable[..., Awaitable[RawServer]], clients: Callable[..., NativeUpstream]
) -> None:
    got: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_request(reader)
        got.append(head + await reader.readuntil(b"0\r\n\r\n"))
        writer.write(ok())
        await writer.drain()

    rs = await raw_server(handler)
    resp = await send(clients(rs.url), "POST", "/", body=Streamed(b"abc", b"", b"defgh"))
    assert resp.status == 200
    assert got[0].endswith(b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n")


async def test_body_with_content_length_is_sent_verbatim(
    raw_server: Callable[..., Awaitable[RawServer]], clients: Callable[..., NativeUpstream]
) -> None:
    got: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_request(reader)
        got.append(head + await reader.readexactly(8))
        writer.write(ok())
        await writer.drain()

    rs = await raw_server(handler)
    up = clients(rs.url)
    await send(up, "PUT", "/", [("Content-Length", "8")], Streamed(b"abcd", b"efgh"))
    assert got[0].endswith(b"Content-Length: 8\r\n\r\nabcdefgh")
    assert b"chunked" not in got[0]


# ---------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_server(ca: trustme.CA, raw_server: Callable[..., Awaitable[RawServer]]) -> RawServer:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    return await raw_server(serve_ok_forever, ctx)


async def test_tls_upstream_verified_with_the_given_ca(
    ca: trustme.CA,
    tls_server: RawServer,
    clients: Callable[..., NativeUpstream],
    tmp_path: Path,
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    assert await read_all(clients(tls_server.url, ca_file=str(ca_file))) == b"hello"


async def test_tls_upstream_with_unknown_ca_is_refused(
    tls_server: RawServer, clients: Callable[..., NativeUpstream]
) -> None:
    with pytest.raises(UpstreamError) as e:
        await send(clients(tls_server.url), "GET", "/")
    assert e.value.reason == "refused"


async def test_tls_upstream_insecure_skips_verification(
    tls_server: RawServer, clients: Callable[..., NativeUpstream]
) -> None:
    assert await read_all(clients(tls_server.url, insecure=True)) == b"hello"


# ---------------------------------------------------------------- selection


def test_native_client_is_the_default() -> None:
    from chaosproxy.process.runtime import Runtime, Settings

    assert isinstance(Runtime(Settings(upstream=yarl.URL("http://x"))).upstream, NativeUpstream)
