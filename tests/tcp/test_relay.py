"""The relay with no fault: byte for byte both ways, half-close passed on, resets passed on as
resets, flow control that bounds what the proxy holds, connection counts."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from tests.tcp.conftest import MakeRig, Rig, Upstream


async def test_bytes_pass_unchanged_both_ways(rig: Rig, upstream: Upstream) -> None:
    reader, writer = await rig.connect("db")
    payload = os.urandom(3 * 1024 * 1024 + 17)  # several reads and writes, an odd tail
    writer.write(payload)
    echoed = await reader.readexactly(len(payload))
    assert echoed == payload
    assert bytes(upstream.received[0]) == payload
    writer.close()
    info = rig.proxies.get("db")
    assert info.accepted == 1
    assert info.bytes_up == len(payload) and info.bytes_down == len(payload)


async def test_half_close_is_passed_on_and_the_other_way_keeps_flowing(
    make_rig: MakeRig,
) -> None:
    """The client shuts its sending side; the server sees the end of stream, then answers,
    and the client reads the answer: a half-closed connection works through the proxy."""
    seen_eof = asyncio.Event()

    async def answer_after_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()  # until the client's FIN
        seen_eof.set()
        writer.write(b"got " + data)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer_after_eof, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    rig = await make_rig()
    await rig.proxies.add("h", "127.0.0.1:0", f"127.0.0.1:{port}")
    reader, writer = await rig.connect("h")
    writer.write(b"question")
    writer.write_eof()
    await seen_eof.wait()
    assert await reader.read() == b"got question"  # then the server's FIN: end of stream
    writer.close()
    await rig.proxy("h").idle.wait()  # both directions ended: the relay closed itself
    server.close()


async def test_an_upstream_reset_reaches_the_client_as_a_reset(make_rig: MakeRig) -> None:
    async def reset_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        writer.transport.abort()

    server = await asyncio.start_server(reset_at_once, "127.0.0.1", 0)
    rig = await make_rig()
    await rig.proxies.add("r", "127.0.0.1:0", f"127.0.0.1:{server.sockets[0].getsockname()[1]}")
    reader, writer = await rig.connect("r")
    writer.write(b"x")
    with pytest.raises(ConnectionResetError):
        await reader.read(1)
    server.close()


async def test_an_unreachable_upstream_resets_the_client_and_is_counted(
    make_rig: MakeRig,
) -> None:
    with socket.socket() as held:  # bound, never listening: a connect gets an RST
        held.bind(("127.0.0.1", 0))
        rig = await make_rig()
        await rig.proxies.add("down", "127.0.0.1:0", f"127.0.0.1:{held.getsockname()[1]}")
        reader, _ = await rig.connect("down")
        with pytest.raises(ConnectionResetError):
            await reader.read(1)
    assert rig.proxies.get("down").connect_failed == 1


async def test_a_client_that_does_not_read_holds_the_server_back(make_rig: MakeRig) -> None:
    """Flow control: the server writes far more than any buffer; the client reads nothing.
    The proxy stops reading the server (its write stalls), and holds a bounded amount."""
    total = 64 * 1024 * 1024
    written = 0
    stalled = asyncio.Event()

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal written
        chunk = b"z" * 65536
        while written < total:
            writer.write(chunk)
            written += len(chunk)
            if writer.transport.get_write_buffer_size() > 0:
                drain = asyncio.ensure_future(writer.drain())
                done, _ = await asyncio.wait({drain}, timeout=None if stalled.is_set() else 0.5)
                if not done:  # the proxy stopped reading: our socket buffers are full
                    stalled.set()
                    await drain

    server = await asyncio.start_server(flood, "127.0.0.1", 0)
    rig = await make_rig()
    await rig.proxies.add("f", "127.0.0.1:0", f"127.0.0.1:{server.sockets[0].getsockname()[1]}")
    reader, writer = await rig.connect("f")
    await stalled.wait()
    relay = next(iter(rig.proxy("f").relays))
    held = relay.client.transport.get_write_buffer_size() if relay.client.transport else 0
    assert written < total  # the server could not send it all
    assert held <= 1024 * 1024  # what the proxy holds for the client is bounded
    got = 0
    while got < total:  # and reading everything releases everything, in order
        data = await reader.read(1 << 20)
        assert data and set(data) == {ord("z")}
        got += len(data)
    writer.close()
    server.close()


async def test_connections_are_counted_open_and_accepted(rig: Rig, upstream: Upstream) -> None:
    conns = [await rig.connect("db") for _ in range(3)]
    for r, w in conns:
        w.write(b"hi")
        assert await r.readexactly(2) == b"hi"
    info = rig.proxies.get("db")
    assert (info.open, info.accepted) == (3, 3)
    for _, w in conns:
        w.close()
    await rig.proxy("db").idle.wait()
    assert rig.proxies.get("db").open == 0
