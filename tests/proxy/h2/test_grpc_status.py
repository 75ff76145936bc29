"""The gRPC status of each call, as the proxy's events carry it: the status a grpcio client
read, whoever set it (the upstream's trailers, its trailers-only answer, a fault, a reset), and
the protocol of every request and fault."""

from __future__ import annotations

import grpc
import pytest

from chaosproxy.faults import build
from chaosproxy.observe.metrics import Metrics
from chaosproxy.observe.stats import Stats
from tests.proxy.h2.conftest import GrpcSetup

OK, UNKNOWN, FAILED_PRECONDITION, INTERNAL, UNAVAILABLE = 0, 2, 9, 13, 14


async def call(g: GrpcSetup, method: str = "Unary") -> grpc.StatusCode:
    try:
        await g.unary(method)(b"x", timeout=10)
    except grpc.aio.AioRpcError as e:
        return e.code()
    return grpc.StatusCode.OK


async def test_the_upstreams_status_from_trailers_and_trailers_only(
    grpc_via_proxy: GrpcSetup,
) -> None:
    g = grpc_via_proxy
    assert await call(g) == grpc.StatusCode.OK  # DATA, then trailers with grpc-status 0
    assert await call(g, "Fail") == grpc.StatusCode.FAILED_PRECONDITION  # trailers-only
    await g.done.until(2)
    assert [(d.protocol, d.status, d.grpc_status) for d in g.done] == [
        ("h2", 200, OK),
        ("h2", 200, FAILED_PRECONDITION),
    ]


@pytest.mark.parametrize(
    ("fault", "params", "seen", "code"),
    [
        ("grpc_abort", {"code": "UNAVAILABLE"}, grpc.StatusCode.UNAVAILABLE, UNAVAILABLE),
        ("error", {"status": 503}, grpc.StatusCode.UNAVAILABLE, UNAVAILABLE),
        ("error", {"status": 500}, grpc.StatusCode.UNKNOWN, UNKNOWN),
    ],
)
async def test_a_faults_answer_is_the_calls_status_in_events_and_journal_fields(
    grpc_via_proxy: GrpcSetup, fault: str, params: dict[str, object], seen: object, code: int
) -> None:
    g = grpc_via_proxy
    g.proxy.engine.add_rule([build(fault, params, "f")])
    assert await call(g) == seen
    await g.done.until(1)
    assert (g.done[0].grpc_status, g.done[0].injected) == (code, True)
    (ev,) = g.injected
    assert (ev.protocol, ev.grpc_status) == ("h2", code)


async def test_a_reset_stream_is_what_grpc_makes_of_it(grpc_via_proxy: GrpcSetup) -> None:
    g = grpc_via_proxy
    g.proxy.engine.add_rule([build("reset", {}, "f")])
    assert await call(g) == grpc.StatusCode.INTERNAL
    await g.done.until(1)
    assert (g.done[0].status, g.done[0].grpc_status) == (0, INTERNAL)
    # not an answer: the fault's event has no status; the call's end does (and so the journal)
    assert g.injected[0].grpc_status is None


async def test_metrics_and_per_second_rows_count_grpc_calls_by_status(
    grpc_via_proxy: GrpcSetup,
) -> None:
    """Fed the proxy's own events: UNAVAILABLE is an error there though its HTTP status is 200,
    FAILED_PRECONDITION (an answer, like a 4xx) is not."""
    g = grpc_via_proxy
    metrics, stats = Metrics(), Stats()
    assert await call(g) == grpc.StatusCode.OK
    assert await call(g, "Fail") == grpc.StatusCode.FAILED_PRECONDITION
    g.proxy.engine.add_rule([build("grpc_abort", {"code": "UNAVAILABLE"}, "f")])
    assert await call(g) == grpc.StatusCode.UNAVAILABLE
    await g.done.until(3)
    for ev in g.done:
        metrics.on_request(ev)
        stats.on_request(ev)
    text = metrics.exposition().decode()
    assert 'chaosproxy_requests_total{code="200",method="POST",protocol="h2"} 3.0' in text
    for name, n in (("OK", 1), ("FAILED_PRECONDITION", 1), ("UNAVAILABLE", 1)):
        assert f'chaosproxy_grpc_calls_total{{grpc_status="{name}"}} {n}.0' in text
    t = int(g.done[0].t - g.done[0].duration)
    rows = [r for r in stats.range(t - 1, t + 60) if r["requests"]]
    assert sum(r["requests"] for r in rows) == 3
    assert sum(r["errors"] for r in rows) == 1
    merged: dict[str, int] = {}
    for r in rows:
        for k, n in r["grpc"].items():
            merged[k] = merged.get(k, 0) + n
    assert merged == {"OK": 1, "FAILED_PRECONDITION": 1, "UNAVAILABLE": 1}
