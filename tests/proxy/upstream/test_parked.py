"""A response sent at once (`send_now`) that ends with its connection reusable is parked on the
connection and starts the next exchange there: its parser and fields are made once per
connection. Nothing of one exchange may reach the next, and a parked response whose connection
closes lets go of its parser."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from chaosproxy.proxy.upstream import response
from chaosproxy.proxy.upstream.client import NativeUpstream
from chaosproxy.proxy.upstream.response import Response
from tests.proxy.upstream.test_client import (  # noqa: F401 (fixtures)
    Handler,
    Kept,
    RawServer,
    clients,
    raw_server,
    read_request,
)

FIRST = (
    b"HTTP/1.1 503 Busy\r\nRetry-After: 5\r\nX-Request-Id: up-1\r\nX-First: 1\r\n"
    b"Content-Length: 4\r\n\r\nbusy"
)
SECOND = b"HTTP/1.1 200 OK\r\nX-Second: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"


class Seen(Kept):
    """A sink that also keeps the head's fields as the exchange saw them."""

    seen: tuple[object, ...] = ()

    def head(self, resp: object) -> None:
        assert isinstance(resp, Response)
        self.seen = (
            resp.status,
            resp.reason_bytes,
            resp.head_lines,
            resp.retry_after,
            resp.has_id,
            resp.has_length,
            resp.headers,
        )


def answering(*answers: bytes, close: bool = False) -> Handler:
    """An upstream that answers each request with the next of `answers` (the first opens the
    pool's connection), then closes the connection or keeps it open."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", *answers):
            await read_request(reader)
            writer.write(answer)
            await writer.drain()
        if not close:  # (else the fixture closes the writer)
            await reader.read()

    return handler


async def connected(
    start: Callable[..., Awaitable[RawServer]],
    client: Callable[..., NativeUpstream],
    handler: Handler,
) -> tuple[RawServer, NativeUpstream]:
    """A client of one connection to `handler`, opened by an awaited request (whose response
    is not parked) and idle."""
    rs = await start(handler)
    up = client(rs.url, pool_size=1)
    resp = await up.request("GET", "/open", b"", False, False, None)
    async for _ in resp.body():
        pass
    assert up.pool.idle == 1
    return rs, up


async def exchange(up: NativeUpstream, target: str) -> tuple[Response, Seen]:
    sink = Seen()
    resp = up.send_now("GET", target, b"", False, sink)
    assert resp is not None
    async with asyncio.timeout(5):
        await sink.ended
    return resp, sink


async def closed(up: NativeUpstream) -> None:
    async with asyncio.timeout(5):
        while up.pool.idle:  # the close reaches the pool
            await asyncio.sleep(0.01)


async def test_the_next_exchange_on_a_connection_reuses_its_response_and_starts_clean(
    raw_server: Callable[..., Awaitable[RawServer]],  # noqa: F811
    clients: Callable[..., NativeUpstream],  # noqa: F811
) -> None:
    rs, up = await connected(raw_server, clients, answering(FIRST, SECOND))
    first, one = await exchange(up, "/first")
    second, two = await exchange(up, "/second")
    assert second is first  # parked on the one connection, started again
    assert one.seen == (
        503,
        b"Busy",
        b"Retry-After: 5\r\nX-Request-Id: up-1\r\nX-First: 1\r\nContent-Length: 4\r\n",
        b"5",
        True,
        True,
        [("Retry-After", "5"), ("X-Request-Id", "up-1"), ("X-First", "1"), ("Content-Length", "4")],
    )
    assert (one.data, two.data) == (b"busy", b"ok")
    # Nothing of the first answer: no Retry-After, no id, no length, its own headers only.
    assert two.seen == (200, b"OK", b"X-Second: 2\r\n", None, False, False, [("X-Second", "2")])
    assert rs.connections == 1


async def test_a_parked_response_lets_go_of_its_parser_when_its_connection_closes(
    raw_server: Callable[..., Awaitable[RawServer]],  # noqa: F811
    clients: Callable[..., NativeUpstream],  # noqa: F811
) -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    _, up = await connected(raw_server, clients, answering(ok, close=True))
    parked, sink = await exchange(up, "/")
    assert sink.data == b"ok"
    await closed(up)
    # No reference cycle left through the parser (see response._SPENT_PARSER).
    assert parked.parser is response._SPENT_PARSER


async def test_a_response_followed_by_bytes_nobody_asked_for_is_not_parked(
    raw_server: Callable[..., Awaitable[RawServer]],  # noqa: F811
    clients: Callable[..., NativeUpstream],  # noqa: F811
) -> None:
    # More after a complete response in the same read: the connection is not trusted (closed),
    # and its response is not kept for another exchange.
    more = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n"
    _, up = await connected(raw_server, clients, answering(more))
    resp, sink = await exchange(up, "/")
    assert sink.data == b"ok"
    assert resp.parser is response._SPENT_PARSER
    await closed(up)
