"""The HTTP/2 connection itself, seen by a raw client (h2's state machine on a plain socket):
a connection error is a GOAWAY, and a peer's small windows are honoured."""

from __future__ import annotations

import asyncio

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import ConnectionTerminated, Event

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
