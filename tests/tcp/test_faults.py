"""Each TCP fault through a real relay: what a client and the server observe. Time is checked
only from below (a delay at least as long as asked); which pipe a fault sits on is read from the
relay (the other direction keeps the fast path)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from chaosproxy.tcp.relay import Relay
from chaosproxy.tcp.rules import tcp_rule
from tests.proxy.rawhttp import reset
from tests.tcp.conftest import Rig, Upstream


def add(rig: Rig, fault: str, params: dict[str, Any] | None = None, p: float = 1.0) -> str:
    return rig.engine.add_compiled_rule(tcp_rule("db", fault, params, probability=p)).id


def only_relay(rig: Rig) -> Relay:
    (relay,) = rig.proxy("db").relays
    return relay


async def round_trip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: Upstream, data: bytes
) -> tuple[float, float, float]:
    """(sent, the server read it, the client read the echo), loop times."""
    loop = asyncio.get_running_loop()
    before = len(up.arrivals)
    sent = loop.time()
    writer.write(data)
    echoed = await reader.readexactly(len(data))
    assert echoed == data
    return sent, up.arrivals[before][0], loop.time()


@pytest.mark.parametrize("direction", ["upstream", "downstream", "both"])
async def test_latency_delays_the_direction_asked(
    rig: Rig, upstream: Upstream, direction: str
) -> None:
    add(rig, "latency", {"latency": "150ms", "direction": direction})
    reader, writer = await rig.connect("db")
    sent, at_server, back = await round_trip(reader, writer, upstream, b"ping")
    relay = only_relay(rig)
    if direction in ("upstream", "both"):
        assert at_server - sent >= 0.15
        assert relay.up.flow is not None and relay.up.flow.latency
    else:
        assert relay.up.flow is None  # the client's bytes take the fast path
    if direction in ("downstream", "both"):
        assert back - at_server >= 0.15
        assert relay.down.flow is not None and relay.down.flow.latency
    else:
        assert relay.down.flow is None
    writer.close()


async def test_latency_waits_in_the_registry_s_deadlines_and_leaves_none_when_closed(
    rig: Rig, upstream: Upstream
) -> None:
    # Every proxy's latency toxics wait in one heap (the registry's): bytes held now are one
    # entry there, and a client reset takes its entry with it.
    add(rig, "latency", {"latency": "1h", "direction": "upstream"})
    _, writer = await rig.connect("db")
    writer.write(b"held")
    async with asyncio.timeout(10):
        while not len(rig.proxies.deadlines):
            await asyncio.sleep(0.01)
    assert len(rig.proxies.deadlines) == 1 and upstream.arrivals == []
    reset(writer)  # the held bytes go nowhere (a FIN would wait behind them, as TCP does)
    async with asyncio.timeout(10):
        while len(rig.proxies.deadlines):
            await asyncio.sleep(0.01)
    assert upstream.arrivals == []


async def test_a_rule_added_or_removed_applies_to_an_open_connection(
    rig: Rig, upstream: Upstream
) -> None:
    reader, writer = await rig.connect("db")
    await round_trip(reader, writer, upstream, b"before")
    relay = only_relay(rig)
    assert relay.down.flow is None
    rule = add(rig, "latency", {"latency": "200ms"})
    _sent, at_server, back = await round_trip(reader, writer, upstream, b"during")
    assert back - at_server >= 0.2
    rig.engine.remove_rule(rule)
    assert relay.down.flow is None  # the fault is gone from the live connection
    assert await round_trip(reader, writer, upstream, b"after")
    journal = [(f.request_id, f.fault, f.outcome, f.method, f.path) for f in rig.faults]
    assert journal == [(relay.id, "latency", "latency=0.200 downstream", "TCP", "tcp:db")]
    writer.close()


async def test_bandwidth_paces_the_bytes(rig: Rig, upstream: Upstream) -> None:
    rate = 200_000  # bytes per second
    add(rig, "bandwidth", {"rate": rate})
    reader, writer = await rig.connect("db")
    payload = os.urandom(100_000)
    loop = asyncio.get_running_loop()
    start = loop.time()
    writer.write(payload)
    assert await reader.readexactly(len(payload)) == payload
    # All but the first paced piece (PACE seconds of the rate) waited for the link.
    assert loop.time() - start >= (len(payload) - rate * 0.02) / rate
    writer.close()


async def test_slicer_cuts_the_stream_into_slices(rig: Rig, upstream: Upstream) -> None:
    add(rig, "slicer", {"average_size": 10, "size_variation": 5, "delay": "20ms"})
    reader, writer = await rig.connect("db")
    payload = bytes(range(200))
    writer.write(payload)
    reads: list[bytes] = []
    while sum(map(len, reads)) < len(payload):
        reads.append(await reader.read(65536))
    assert b"".join(reads) == payload
    assert len(reads) > 1  # the echo came back in pieces, 20 ms apart
    writer.close()


async def test_timeout_holds_the_bytes_then_closes(rig: Rig, upstream: Upstream) -> None:
    add(rig, "timeout", {"timeout": "300ms"})
    loop = asyncio.get_running_loop()
    start = loop.time()  # before the connection: the timeout counts from its accept
    reader, writer = await rig.connect("db")
    writer.write(b"lost in the partition")
    assert await reader.read() == b""  # closed (FIN) ...
    assert loop.time() - start >= 0.299  # ... after the timeout (a timer is a hair early)
    assert upstream.received in ([], [bytearray()])  # nothing got through
    writer.close()


async def test_timeout_zero_holds_until_the_fault_ends_and_loses_nothing(
    rig: Rig, upstream: Upstream
) -> None:
    rule = add(rig, "timeout", {"timeout": 0})
    reader, writer = await rig.connect("db")
    writer.write(b"held ")
    writer.write(b"in order")
    await upstream.connected.wait()
    assert upstream.received == [bytearray()]  # connected upstream, but nothing forwarded
    rig.engine.remove_rule(rule)  # the partition heals
    assert await reader.readexactly(13) == b"held in order"
    writer.close()


async def test_reset_after_its_timeout(rig: Rig, upstream: Upstream) -> None:
    add(rig, "reset", {"timeout": "200ms"})
    loop = asyncio.get_running_loop()
    start = loop.time()  # before the connection: the timeout counts from its accept
    reader, writer = await rig.connect("db")
    writer.write(b"x")
    assert await reader.readexactly(1) == b"x"  # the connection works until then
    with pytest.raises(ConnectionResetError):
        await reader.read(1)
    assert loop.time() - start >= 0.199  # a timer is a hair early


async def test_limit_data_closes_after_that_many_bytes(rig: Rig, upstream: Upstream) -> None:
    add(rig, "limit_data", {"bytes": 1000})
    reader, writer = await rig.connect("db")
    writer.write(os.urandom(5000))
    got = await reader.read(-1)  # to the end of stream
    assert len(got) == 1000
    assert bytes(upstream.received[0])[:1000] == got
    writer.close()


async def test_refused_resets_at_accept_without_reaching_the_upstream(
    rig: Rig, upstream: Upstream
) -> None:
    add(rig, "refused")
    reader, _writer = await rig.connect("db")
    with pytest.raises(ConnectionResetError):
        await reader.read(1)
    assert upstream.accepted == 0
    info = rig.proxies.get("db")
    assert (info.accepted, info.refused) == (1, 1)


async def test_half_open_accepts_and_never_connects_upstream(rig: Rig, upstream: Upstream) -> None:
    add(rig, "half_open")
    reader, writer = await rig.connect("db")
    writer.write(b"anyone there?")
    await writer.drain()
    proxy = rig.proxy("db")
    assert len(proxy.relays) == 1 and only_relay(rig).upstream is None
    writer.write_eof()  # the client gives up: the proxy closes its side too
    assert await reader.read() == b""
    await proxy.idle.wait()
    assert upstream.accepted == 0
    writer.close()


async def test_slow_close_delays_the_end_of_stream(rig: Rig, upstream: Upstream) -> None:
    add(rig, "slow_close", {"delay": "250ms"})
    reader, writer = await rig.connect("db")
    await round_trip(reader, writer, upstream, b"bye")
    loop = asyncio.get_running_loop()
    start = loop.time()
    upstream.writers[0].close()  # the server closes its side
    assert await reader.read() == b""
    assert loop.time() - start >= 0.25
    writer.close()


async def test_probability_is_rolled_per_connection(rig: Rig, upstream: Upstream) -> None:
    add(rig, "refused", p=0.5)
    outcomes = []
    for _ in range(40):
        reader, writer = await rig.connect("db")
        writer.write(b"?")
        try:
            outcomes.append(await reader.readexactly(1) == b"?")
        except (ConnectionResetError, asyncio.IncompleteReadError):
            outcomes.append(False)
        writer.close()
    assert 0 < outcomes.count(True) < 40
    assert rig.proxies.get("db").refused == outcomes.count(False)


async def test_several_rules_apply_together(rig: Rig, upstream: Upstream) -> None:
    add(rig, "latency", {"latency": "100ms", "direction": "upstream"})
    add(rig, "latency", {"latency": "100ms", "direction": "downstream"})
    reader, writer = await rig.connect("db")
    sent, at_server, back = await round_trip(reader, writer, upstream, b"both")
    assert at_server - sent >= 0.1 and back - at_server >= 0.1
    assert {f.rule for f in rig.faults} == {"r1", "r2"}
    writer.close()
