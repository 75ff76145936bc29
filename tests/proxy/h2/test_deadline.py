"""A gRPC call's deadline (`grpc-timeout`) kept at the proxy when faults hold the call: the
proxy's own DEADLINE_EXCEEDED seen on the wire by a raw HTTP/2 client, the time left passed
upstream as seen by a real grpcio server, and the header's grammar."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest

from chaosproxy.faults import build
from chaosproxy.proxy.h2.deadline import LONGEST, format_grpc_timeout, parse_grpc_timeout
from chaosproxy.proxy.h2.stream import CANCEL
from tests.conftest import StartProxy
from tests.proxy.h2.conftest import CHANNEL_OPTIONS, SERVICE, EchoService, GrpcSetup
from tests.proxy.h2.support_raw import RawH2, grpc_message, head_of, reset_code


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1S", 1.0),
        ("250m", 0.25),
        ("2M", 120.0),
        ("1H", 3600.0),
        ("1500u", 0.0015),
        ("99999999n", 0.099999999),
        ("0m", 0.0),
        ("00000010S", 10.0),
    ],
)
def test_parse(value: str, seconds: float) -> None:
    assert parse_grpc_timeout(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value",
    [None, "", "S", "5", "5s", "5 S", "-5S", "1.5S", "123456789S", "\u0661S", "99999999H", "+1S"],
)
def test_malformed_or_endless_is_ignored(value: str | None) -> None:
    """As gRPC: a value it cannot read is no deadline; one past LONGEST is as good as none."""
    assert parse_grpc_timeout(value) is None


@pytest.mark.parametrize("seconds", [0.0, 1e-9, 0.25, 1.0, 59.5, 3600.0, 1e6, LONGEST])
def test_format_reads_back_no_shorter(seconds: float) -> None:
    text = format_grpc_timeout(seconds)
    back = parse_grpc_timeout(text)
    assert back is not None and back >= seconds and len(text) <= 9


async def test_a_hang_is_answered_deadline_exceeded_at_the_deadline(
    grpc_via_proxy: GrpcSetup,
) -> None:
    """The client gave 200 ms and keeps no timer of its own: the proxy answers trailers-only
    grpc-status 4 instead of holding the stream; nothing went upstream."""
    g = grpc_via_proxy
    g.proxy.engine.add_rule([build("hang", {}, "f")])
    raw = await RawH2.open(g.proxy.proxy_port)
    try:
        sid = raw.call(body=grpc_message(b"x"), timeout="200m")
        async with asyncio.timeout(30):  # a guard against a hang, not a measure
            events = await raw.ended(sid)
    finally:
        raw.close()
    head = head_of(events)
    assert (head[":status"], head["grpc-status"], head["content-type"]) == (
        "200",
        "4",
        "application/grpc",
    )
    assert head["grpc-message"] == "Deadline Exceeded"
    assert reset_code(events) is None
    await g.done.until(1)
    assert (g.done[0].status, g.done[0].injected) == (200, True)
    assert g.service.calls == 0


async def test_mid_answer_the_stream_is_cancelled(grpc_via_proxy: GrpcSetup) -> None:
    """A throttled server stream still sending at the deadline: RST_STREAM(CANCEL), as Envoy
    resets a stream whose answer started (a message may be cut: no trailers after it)."""
    g = grpc_via_proxy
    g.proxy.engine.add_rule([build("throttle", {"rate": 8, "chunk": 1}, "f")])
    raw = await RawH2.open(g.proxy.proxy_port)
    try:
        sid = raw.call("Count", grpc_message(b"5"), timeout="300m")
        async with asyncio.timeout(30):
            events = await raw.ended(sid)
    finally:
        raw.close()
    assert head_of(events)[":status"] == "200"
    assert reset_code(events) == CANCEL


async def test_malformed_grpc_timeout_is_no_deadline(grpc_via_proxy: GrpcSetup) -> None:
    """`grpc-timeout: 1x`: ignored, so the fault runs its course (hang 300 ms then 504 →
    UNAVAILABLE), not DEADLINE_EXCEEDED."""
    g = grpc_via_proxy
    g.proxy.engine.add_rule([build("hang", {"duration": "300ms", "then": "error"}, "f")])
    raw = await RawH2.open(g.proxy.proxy_port)
    try:
        sid = raw.call(body=grpc_message(b"x"), timeout="1x")
        async with asyncio.timeout(30):
            events = await raw.ended(sid)
    finally:
        raw.close()
    assert head_of(events)["grpc-status"] == "14"


async def test_grpcio_client_sees_deadline_exceeded(grpc_via_proxy: GrpcSetup) -> None:
    """`latency: {at: response}` longer than the call's deadline: the upstream answered, the
    answer is held, the call ends DEADLINE_EXCEEDED (by the proxy or the client's own timer,
    whichever comes first: the same status)."""
    g = grpc_via_proxy
    g.proxy.engine.add_rule([build("latency", {"delay": "30s", "at": "response"}, "f")])
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await g.unary()(b"x", timeout=0.3)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await g.done.until(1)
    assert g.service.calls == 1


@pytest.fixture
async def remaining_server() -> AsyncIterator[tuple[list[float], str]]:
    """A grpcio server whose `Remaining` method answers the deadline it was given."""
    seen: list[float] = []

    async def remaining(req: bytes, ctx: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        left = ctx.time_remaining()
        assert left is not None
        seen.append(left)
        return b"ok"

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            EchoService().handler(),
            grpc.method_handlers_generic_handler(
                SERVICE, {"Remaining": grpc.unary_unary_rpc_method_handler(remaining)}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield seen, f"http://127.0.0.1:{port}"
    await server.stop(None)


async def test_the_upstream_gets_the_time_left(
    remaining_server: tuple[list[float], str], start_proxy: StartProxy
) -> None:
    """A call delayed 500 ms at the proxy with a 20 s deadline reaches the service with at
    most 19.5 s left (the header rewritten), as a service behind a slow hop would see it."""
    seen, url = remaining_server
    rt = await start_proxy(url)
    rt.engine.add_rule([build("latency", {"delay": "500ms"}, "f")])
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{rt.proxy_port}", options=CHANNEL_OPTIONS
    ) as channel:
        assert await channel.unary_unary(f"/{SERVICE}/Remaining")(b"", timeout=20) == b"ok"
    assert seen and seen[0] <= 19.5 + 0.001
