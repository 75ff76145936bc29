"""Faults on gRPC calls through the proxy, as a grpcio client sees them: each one a status."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import grpc
import pytest

from chaosproxy.faults import build
from tests.proxy.h2.conftest import SERVICE, GrpcSetup


async def failed(
    g: GrpcSetup, method: str = "Unary", timeout: float | None = None
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await g.unary(method)(b"x", timeout=timeout)
    return err.value


async def test_error_is_a_trailers_only_status_as_envoy_sends(grpc_via_proxy: GrpcSetup) -> None:
    """`error: {status: 503}` on a gRPC call: grpc-status UNAVAILABLE, the upstream not called."""
    g = grpc_via_proxy
    g.proxy.engine.add_rule([build("error", {"status": 503}, "f")])
    err = await failed(g)
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert "injected by chaosproxy" in (err.details() or "")
    assert g.service.calls == 0
    await g.done.until(1)
    assert (g.done[0].protocol, g.done[0].injected) == ("h2", True)
    assert g.injected[0].fault == "error"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("UNAVAILABLE", grpc.StatusCode.UNAVAILABLE),
        ("RESOURCE_EXHAUSTED", grpc.StatusCode.RESOURCE_EXHAUSTED),
        (4, grpc.StatusCode.DEADLINE_EXCEEDED),
        ("permission_denied", grpc.StatusCode.PERMISSION_DENIED),
    ],
)
async def test_grpc_abort_answers_the_chosen_status(
    grpc_via_proxy: GrpcSetup, code: object, expected: grpc.StatusCode
) -> None:
    g = grpc_via_proxy
    g.proxy.engine.add_rule([build("grpc_abort", {"code": code, "message": "nope ✗"}, "f")])
    err = await failed(g)
    assert err.code() == expected
    assert err.details() == "nope ✗"
    assert g.service.calls == 0


async def test_grpc_abort_pushback_header(grpc_via_proxy: GrpcSetup) -> None:
    g = grpc_via_proxy
    g.proxy.engine.add_rule([build("grpc_abort", {"pushback": "250ms"}, "f")])
    err = await failed(g)
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert ("grpc-retry-pushback-ms", "250") in list(err.trailing_metadata() or ())


async def test_latency_delays_the_call_which_then_succeeds(grpc_via_proxy: GrpcSetup) -> None:
    g = grpc_via_proxy
    g.proxy.engine.add_rule([build("latency", {"delay": "300ms"}, "f")])
    t = time.monotonic()
    assert await g.unary()(b"slow") == b"echo:slow"
    assert time.monotonic() - t >= 0.3
    assert g.injected[0].outcome == "delay=0.300"


async def test_latency_longer_than_the_deadline(grpc_via_proxy: GrpcSetup) -> None:
    g = grpc_via_proxy
    g.proxy.engine.add_rule([build("latency", {"delay": "30s"}, "f")])
    err = await failed(g, timeout=0.3)
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await g.done.until(1)  # the client's RST_STREAM ended the stream's wait
    assert g.service.calls == 0


async def test_reset_is_a_stream_reset_not_a_connection_reset(grpc_via_proxy: GrpcSetup) -> None:
    """RST_STREAM(INTERNAL_ERROR): the call fails INTERNAL; a call on the same channel (the
    same connection) that no rule matches goes through."""
    g = grpc_via_proxy
    g.proxy.engine.add_rule([build("reset", {}, "f")], match=lambda v: v.path == f"/{SERVICE}/Fail")
    err = await failed(g, "Fail")
    assert err.code() == grpc.StatusCode.INTERNAL
    assert "RST_STREAM" in (err.details() or "")
    assert await g.unary()(b"fine") == b"echo:fine"


async def test_reset_after_headers(grpc_via_proxy: GrpcSetup) -> None:
    g = grpc_via_proxy
    g.proxy.engine.add_rule([build("reset", {"at": "headers"}, "f")])
    err = await failed(g)
    assert err.code() == grpc.StatusCode.INTERNAL
    assert g.service.calls == 1  # the upstream answered; the client never saw it


async def test_hang_until_the_deadline(grpc_via_proxy: GrpcSetup) -> None:
    g = grpc_via_proxy
    g.proxy.engine.add_rule([build("hang", {}, "f")])
    err = await failed(g, timeout=0.3)
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await g.done.until(1)
    # Ended by the client's RST_STREAM at its deadline, or by the proxy's own DEADLINE_EXCEEDED
    # at the same deadline (tests/proxy/h2/test_deadline.py), whichever came first: either
    # way the call's status is what grpcio reported (the client's CANCEL at its deadline).
    d = g.done[0]
    assert d.injected and (d.status, d.grpc_status) in {(0, 4), (200, 4)}


async def test_hang_then_error_is_unavailable(grpc_via_proxy: GrpcSetup) -> None:
    g = grpc_via_proxy
    g.proxy.engine.add_rule([build("hang", {"duration": "200ms", "then": "error"}, "f")])
    err = await failed(g)
    assert err.code() == grpc.StatusCode.UNAVAILABLE  # 504, mapped as Envoy maps it


async def test_faults_on_a_streaming_call(grpc_via_proxy: GrpcSetup) -> None:
    g = grpc_via_proxy
    g.proxy.engine.add_rule([build("grpc_abort", {"code": "ABORTED"}, "f")])
    call = g.channel.unary_stream(f"/{SERVICE}/Count")(b"3")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        [m async for m in call]
    assert err.value.code() == grpc.StatusCode.ABORTED


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"code": "CANCEL"}, grpc.StatusCode.CANCELLED),
        ({"code": "ENHANCE_YOUR_CALM"}, grpc.StatusCode.RESOURCE_EXHAUSTED),
        ({"code": 2, "at": "headers"}, grpc.StatusCode.INTERNAL),
    ],
)
async def test_stream_reset_with_a_chosen_code(
    grpc_via_proxy: GrpcSetup, params: dict[str, object], expected: grpc.StatusCode
) -> None:
    g = grpc_via_proxy
    g.proxy.engine.add_rule([build("stream_reset", params, "f")])
    err = await failed(g)
    assert err.code() == expected
    await g.done.until(1)
    assert g.injected[0].fault == "stream_reset"


async def test_stream_reset_mid_stream(grpc_via_proxy: GrpcSetup) -> None:
    """after_bytes: the first messages of a server stream leave, then the reset."""
    g = grpc_via_proxy
    # Each message is 5 bytes of gRPC framing and 6 of payload: two whole ones pass.
    g.proxy.engine.add_rule([build("stream_reset", {"code": "CANCEL", "after_bytes": 22}, "f")])
    call = g.channel.unary_stream(f"/{SERVICE}/Count")(b"5")
    got = []
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for m in call:
            got.append(m)
    assert err.value.code() == grpc.StatusCode.CANCELLED
    # grpc-core may drop messages it holds unread when the reset comes: a prefix arrives.
    assert got == [b"part-0", b"part-1"][: len(got)]
    await g.done.until(1)
    assert g.injected[0].outcome == "after_bytes=22 code=8"
    assert (g.done[0].status, g.done[0].protocol) == (200, "h2")


SCENARIO = """
name: grpc-collect-down
phases:
  - name: broken
    duration: 10m
    rules:
      - match: {grpc: {service: "test.*", method: Collect}}
        fault: {grpc_abort: {code: UNAVAILABLE}}
"""


async def test_a_scenario_rule_matches_one_grpc_method(grpc_via_proxy: GrpcSetup) -> None:
    """`match: {grpc: {service, method}}` from YAML: only that method's calls fail."""
    from chaosproxy.config.loader import load_scenario_text

    g = grpc_via_proxy
    g.proxy.engine.start_scenario(load_scenario_text(SCENARIO))

    async def one() -> AsyncIterator[bytes]:
        yield b"a"

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await g.channel.stream_unary(f"/{SERVICE}/Collect")(one())
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert await g.unary()(b"ok") == b"echo:ok"
    assert [e.rule for e in g.injected] and g.injected[0].scenario == "grpc-collect-down"


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("upstream_down", {}, grpc.StatusCode.UNAVAILABLE),
        ("malformed", {}, grpc.StatusCode.INTERNAL),
        ("truncate", {"bytes": 3}, grpc.StatusCode.UNKNOWN),  # no trailers: "Stream removed"
        ("error", {"status": 404}, grpc.StatusCode.UNIMPLEMENTED),
        ("error", {"status": 503, "after_upstream": True}, grpc.StatusCode.UNAVAILABLE),
    ],
)
async def test_other_faults_on_a_grpc_call(
    grpc_via_proxy: GrpcSetup, name: str, params: dict[str, object], expected: grpc.StatusCode
) -> None:
    g = grpc_via_proxy
    g.proxy.engine.add_rule([build(name, params, "f")])
    err = await failed(g)
    assert err.code() == expected
    await g.done.until(1)
    assert g.done[0].injected


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("latency", {"delay": "100ms", "at": "response"}),
        ("throttle", {"rate": "64KiB/s"}),
        ("slicer", {"size": 3}),
    ],
)
async def test_faults_that_let_a_call_succeed(
    grpc_via_proxy: GrpcSetup, name: str, params: dict[str, object]
) -> None:
    g = grpc_via_proxy
    g.proxy.engine.add_rule([build(name, params, "f")])
    assert await g.unary()(b"still") == b"echo:still"
    got = [m async for m in g.channel.unary_stream(f"/{SERVICE}/Count")(b"3")]
    assert got == [b"part-0", b"part-1", b"part-2"]
    assert [e.fault for e in g.injected][:1] == [name]


async def test_rate_limit_is_unavailable_past_the_burst(grpc_via_proxy: GrpcSetup) -> None:
    g = grpc_via_proxy
    g.proxy.engine.add_rule([build("rate_limit", {"rps": 0.001, "burst": 1}, "f")])
    assert await g.unary()(b"first") == b"echo:first"
    err = await failed(g)
    assert err.code() == grpc.StatusCode.UNAVAILABLE  # 429, mapped as Envoy maps it
    await g.done.until(2)
    assert g.done[1].retry_after is not None
