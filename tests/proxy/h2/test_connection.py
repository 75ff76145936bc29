"""The HTTP/2 connection itself, seen by a raw client (h2's state machine on a plain socket):
a connection error is a GOAWAY, and a peer's small windows are honoured."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import ConnectionTerminated, DataReceived, Event, ResponseReceived

from tests.conftest import StartProxy


async def events_until_eof(port: int, first: bytes | None = None) -> list[Event]:
    """Open a connection, send the preface (or `first`), and collect what the proxy sends
    until it closes the connection."""
    conn = H2Connection(H2Configuration(client_side=True))
    conn.initiate_connection()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(first if first is not None else conn.data_to_send())
    events: list[Event] = []
    while data := await reader.read(65536):
        events += conn.receive_data(data)
        writer.write(conn.data_to_send())  # SETTINGS acks
    writer.close()
    return events


async def test_garbage_after_a_good_preface_is_goaway(
    start_proxy: StartProxy, refused_url: str
) -> None:
    """A good preface, then DATA on stream 0 (a connection error): GOAWAY(PROTOCOL_ERROR),
    then close."""
    rt = await start_proxy(refused_url)
    conn = H2Connection(H2Configuration(client_side=True))
    conn.initiate_connection()
    junk = conn.data_to_send() + b"\x00\x00\x04\x00\x00\x00\x00\x00\x00zzzz"
    events = await events_until_eof(rt.proxy_port, junk)
    goaway = [e for e in events if isinstance(e, ConnectionTerminated)]
    assert goaway and goaway[0].error_code != 0


async def test_a_request_body_that_never_comes_is_408(
    start_upstream: Callable[[web.Application], Awaitable[str]], start_proxy: StartProxy
) -> None:
    """POST headers without END_STREAM, then silence: past --body-timeout a JSON 408 on the
    stream, and the HTTP/1.1 upstream was never called."""
    calls: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(request.path)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/up", handler)
    rt = await start_proxy(await start_upstream(app), body_timeout=0.2)
    conn = H2Connection(H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.send_headers(
        1, [(":method", "POST"), (":path", "/up"), (":scheme", "http"), (":authority", "x")]
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", rt.proxy_port)
    writer.write(conn.data_to_send())
    status = None
    body = b""
    while status is None or not body:
        data = await reader.read(65536)
        assert data, "closed before the answer"
        for e in conn.receive_data(data):
            if isinstance(e, ResponseReceived):
                status = dict(e.headers or [])[b":status"]
            elif isinstance(e, DataReceived):
                body += e.data or b""
        writer.write(conn.data_to_send())
    writer.close()
    assert status == b"408"
    assert b'"requestId"' in body
    assert calls == []
