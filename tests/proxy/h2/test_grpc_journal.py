"""The journal's `grpc_status` is the status the gRPC client read, whatever ended the call: each
case makes real grpcio calls through the proxy, each call with its own `x-request-id` (the
proxy keeps a client's id), and every journal line of that call names the code grpcio reported.
The status is decided once (`H2Exchange.call_status`) and the journal writes a stream's lines
when the stream ends, so no fault needs to know what its answer becomes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from chaosproxy.common.events import RequestDone
from chaosproxy.engine.journal import Journal
from chaosproxy.faults import build
from chaosproxy.faults.base import Fault
from tests.conftest import StartProxy
from tests.proxy.h2.conftest import CHANNEL_OPTIONS, SERVICE, GrpcSetup, Seen

Calls = list[tuple[str, str, float]]  # (request id, method, timeout)


async def call(g: GrpcSetup, rid: str, method: str = "Unary", timeout: float = 10.0) -> str:
    """One call with `rid` as its request id; the status name grpcio reported."""
    md = (("x-request-id", rid),)
    try:
        if method == "Count":  # server streaming: read to the end
            stream = g.channel.unary_stream(f"/{SERVICE}/Count")(b"4", metadata=md, timeout=timeout)
            async for _ in stream:
                pass
        elif method == "Chat":  # bidirectional: three messages each way
            chat = g.channel.stream_stream(f"/{SERVICE}/Chat")(metadata=md, timeout=timeout)
            for m in (b"a", b"b", b"c"):
                await chat.write(m)
            await chat.done_writing()
            async for _ in chat:
                pass
        else:
            await g.unary(method)(b"x" * 64, metadata=md, timeout=timeout)
    except grpc.aio.AioRpcError as e:
        return e.code().name
    return "OK"


@pytest.fixture
async def journal(grpc_via_proxy: GrpcSetup, tmp_path: Path) -> AsyncIterator[Journal]:
    j = Journal(tmp_path / "faults.jsonl")
    j.attach(grpc_via_proxy.proxy.bus)
    yield j
    j.close()


def lines(j: Journal) -> list[dict[str, Any]]:
    return [json.loads(x) for x in j.path.read_text().splitlines()]


def rule(g: GrpcSetup, *faults: Fault) -> None:
    g.proxy.engine.clear_rules()
    g.proxy.engine.add_rule(list(faults))


def f(name: str, **params: Any) -> Fault:
    return build(name, params, "f")


# name -> (the faults, the calls: id, method, timeout)
CASES: dict[str, tuple[Callable[[], list[Fault]], Calls]] = {
    "grpc_abort": (lambda: [f("grpc_abort", code="RESOURCE_EXHAUSTED")], [("a", "Unary", 10)]),
    "error 503": (lambda: [f("error", status=503)], [("a", "Unary", 10)]),
    "error 404": (lambda: [f("error", status=404)], [("a", "Unary", 10)]),
    "rate_limit": (lambda: [f("rate_limit", rps=0.001, burst=1)], [("a", "Unary", 10)] * 0),
    "upstream_down": (lambda: [f("upstream_down")], [("a", "Unary", 10)]),
    "hang then error": (
        lambda: [f("hang", duration="50ms", then="error")],
        [("a", "Unary", 10)],
    ),
    "hang then close": (lambda: [f("hang", duration="50ms", then="close")], [("a", "Unary", 10)]),
    "hang then reset": (lambda: [f("hang", duration="50ms", then="reset")], [("a", "Unary", 10)]),
    "hang to the deadline": (lambda: [f("hang")], [("a", "Unary", 0.4)]),
    "latency past the deadline": (lambda: [f("latency", delay="5s")], [("a", "Unary", 0.4)]),
    "latency then OK": (lambda: [f("latency", delay="20ms")], [("a", "Unary", 10)]),
    "reset": (lambda: [f("reset")], [("a", "Unary", 10)]),
    "reset at headers": (lambda: [f("reset", at="headers")], [("a", "Unary", 10)]),
    "stream_reset CANCEL": (lambda: [f("stream_reset", code="CANCEL")], [("a", "Unary", 10)]),
    "stream_reset ENHANCE_YOUR_CALM": (
        lambda: [f("stream_reset", code="ENHANCE_YOUR_CALM", at="headers")],
        [("a", "Unary", 10)],
    ),
    "malformed": (lambda: [f("malformed")], [("a", "Unary", 10)]),
    "truncate": (lambda: [f("truncate", bytes=3)], [("a", "Unary", 10)]),
    "grpc_message abort, server stream": (
        lambda: [f("grpc_message", abort="ABORTED", after_messages=2)],
        [("a", "Count", 10)],
    ),
    "grpc_message corrupt": (lambda: [f("grpc_message", corrupt=True)], [("a", "Unary", 10)]),
    "throttle, bidi stream": (lambda: [f("throttle", rate="64KiB")], [("a", "Chat", 10)]),
}
CASES["rate_limit"] = (CASES["rate_limit"][0], [("a", "Unary", 10), ("b", "Unary", 10)])


@pytest.mark.parametrize("case", sorted(CASES))
async def test_each_line_names_the_status_grpcio_reported(
    grpc_via_proxy: GrpcSetup, journal: Journal, case: str
) -> None:
    g = grpc_via_proxy
    faults, calls = CASES[case]
    rule(g, *faults())
    seen = {rid: await call(g, rid, method, timeout) for rid, method, timeout in calls}
    await g.done.until(len(calls))
    got = lines(journal)
    assert got, "no fault acted"
    assert {(x["request_id"], x["grpc_status"]) for x in got} <= set(seen.items())
    assert all(x["protocol"] == "h2" for x in got)


async def test_stale_error_pool_exhaustion_and_a_call_that_succeeds(
    grpc_via_proxy: GrpcSetup, journal: Journal
) -> None:
    """A cached error answered again (503: UNAVAILABLE); a pool of one held by a call that
    succeeds while the next finds it exhausted (500: UNKNOWN)."""
    g = grpc_via_proxy
    stale = f("stale_error")
    rule(g, stale, f("error", status=503))
    seen = {"first": await call(g, "first")}
    rule(g, stale)  # the same fault object: its cache holds the first call's answer
    seen["cached"] = await call(g, "cached")
    rule(g, f("pool_exhaustion", size=1, hold="400ms", queue_timeout="0s"))
    holder = asyncio.create_task(call(g, "holder"))
    await g.injected.until(3)  # the holder has the pool's one slot
    seen["refused"] = await call(g, "refused")
    seen["holder"] = await holder
    await g.done.until(4)
    assert seen == {
        "first": "UNAVAILABLE",
        "cached": "UNAVAILABLE",
        "refused": "UNKNOWN",
        "holder": "OK",
    }
    got = [(x["request_id"], x["fault"], x["grpc_status"]) for x in lines(journal)]
    assert sorted(got) == sorted(
        [
            ("first", "error", "UNAVAILABLE"),
            ("cached", "stale_error", "UNAVAILABLE"),
            ("holder", "pool_exhaustion", "OK"),
            ("refused", "pool_exhaustion", "UNKNOWN"),
        ]
    )


async def test_a_line_waits_for_its_stream_and_close_writes_what_waits(
    grpc_via_proxy: GrpcSetup, journal: Journal
) -> None:
    """While the call is held its line is not written (its status is not known yet); a
    journal closed meanwhile writes it as it is, without a status."""
    g = grpc_via_proxy
    rule(g, f("hang"))
    held = asyncio.create_task(call(g, "held", timeout=30))
    await g.injected.until(1)
    assert journal.path.read_text() == ""
    journal.close()
    (line,) = lines(journal)
    assert (line["request_id"], line["fault"], "grpc_status" in line) == ("held", "hang", False)
    held.cancel()
    with pytest.raises(asyncio.CancelledError):
        await held


async def test_a_call_its_client_gave_up_on_at_its_deadline_is_deadline_exceeded(
    start_proxy: StartProxy,
) -> None:
    """No fault: a service slower than the call's deadline. grpcio cancels the stream at its
    deadline (RST_STREAM CANCEL) and reports DEADLINE_EXCEEDED; so do the proxy's events (and
    so its error counts), not CANCELLED. A call cancelled early stays CANCELLED."""
    release, arrived = asyncio.Event(), asyncio.Event()

    async def slow(request: bytes, ctx: Any) -> bytes:
        arrived.set()
        await release.wait()
        return request

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "t.S", {"Slow": grpc.unary_unary_rpc_method_handler(slow)}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        rt = await start_proxy(f"http://127.0.0.1:{port}")
        done = Seen()
        rt.bus.subscribe(RequestDone, done.add)
        async with grpc.aio.insecure_channel(
            f"127.0.0.1:{rt.proxy_port}", options=CHANNEL_OPTIONS
        ) as ch:
            slow_call = ch.unary_unary("/t.S/Slow")
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await slow_call(b"x", timeout=0.3)
            assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            await done.until(1)
            arrived.clear()
            cancelled = slow_call(b"y", timeout=30)
            await arrived.wait()  # the call is through the proxy, at the service
            cancelled.cancel()
            await done.until(2)
    finally:
        release.set()
        await server.stop(None)
    assert [(d.injected, d.grpc_status) for d in done] == [(False, 4), (False, 1)]
