"""The client-facing HTTP/2 connection: the hand-off on the preface from the HTTP/1.1
listener, the SETTINGS it announces, GOAWAY on an idle connection, a stop that lets the
streams in flight finish."""

from __future__ import annotations

import asyncio

from h2.events import ConnectionTerminated, RemoteSettingsChanged

from chaosproxy.faults import build
from chaosproxy.proxy.h2.connection import MAX_CONCURRENT_STREAMS, STREAM_WINDOW
from tests.conftest import StartProxy
from tests.proxy.h2.conftest import GrpcSetup
from tests.proxy.h2.test_connection import events_until_eof


async def test_idle_connection_gets_goaway_then_close(
    start_proxy: StartProxy, refused_url: str
) -> None:
    rt = await start_proxy(refused_url, idle_timeout=0.2)
    events = await events_until_eof(rt.proxy_port)
    settings: dict[int, int] = {}
    for e in events:
        if isinstance(e, RemoteSettingsChanged):
            settings.update({int(k): v.new_value for k, v in e.changed_settings.items()})
    assert settings[0x3] == MAX_CONCURRENT_STREAMS  # SETTINGS_MAX_CONCURRENT_STREAMS
    assert settings[0x4] == STREAM_WINDOW  # SETTINGS_INITIAL_WINDOW_SIZE
    goaway = [e for e in events if isinstance(e, ConnectionTerminated)]
    assert len(goaway) == 1 and goaway[0].error_code == 0


async def test_a_broken_preface_is_refused_and_the_proxy_serves_on(
    start_proxy: StartProxy, refused_url: str
) -> None:
    """`PRI * HTTP/2.0` then not the preface: not handed to HTTP/2; the HTTP/1.1 listener
    answers its JSON 400 and closes, and the next connection is served."""
    rt = await start_proxy(refused_url)
    reader, writer = await asyncio.open_connection("127.0.0.1", rt.proxy_port)
    writer.write(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b'"requestId"' in answer
    reader, writer = await asyncio.open_connection("127.0.0.1", rt.proxy_port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 502")


async def test_a_stop_lets_calls_in_flight_finish(
    grpc_via_proxy: GrpcSetup,
) -> None:
    """A call held by a fault when the proxy stops still completes (within --grace); the
    connection then closes."""
    g = grpc_via_proxy
    g.proxy.engine.add_rule([build("latency", {"delay": "300ms"}, "f")])
    call = asyncio.ensure_future(g.unary()(b"late"))
    await g.injected.until(1)  # the call is in the proxy, held by the delay
    await g.proxy.stop()
    assert await call == b"echo:late"
    await g.done.until(1)
    assert g.done[0].status == 200


async def test_a_stream_s_delay_waits_in_the_proxy_s_deadlines(grpc_via_proxy: GrpcSetup) -> None:
    """A call's request-side delay waits in the same heap as HTTP/1.1's (it ends on time, never
    early), and leaves nothing there once answered."""
    g = grpc_via_proxy
    g.proxy.engine.add_rule([build("latency", {"delay": "200ms"}, "f")])
    call = asyncio.ensure_future(g.unary()(b"late"))
    await g.injected.until(1)
    assert len(g.proxy.core.deadlines) == 1
    assert await call == b"echo:late"
    await g.done.until(1)
    assert g.done[0].duration >= 0.2 and len(g.proxy.core.deadlines) == 0
