"""`grpc_message`: parameters, and the gRPC message prefix read across chunk boundaries as the
answer streams (end to end with grpcio in tests/proxy/h2/test_grpc_message.py)."""

from __future__ import annotations

import asyncio

import pytest

from chaosproxy.common.clock import FakeClock
from chaosproxy.common.errors import ConfigError
from chaosproxy.faults import build
from chaosproxy.faults.base import Reply
from chaosproxy.faults.grpc_message import GrpcMessageFault
from tests.faults.fakes import FakeExchange, run


def fault(params: dict[str, object]) -> GrpcMessageFault:
    f = build("grpc_message", params, "fault")
    assert isinstance(f, GrpcMessageFault)
    return f


def msg(payload: bytes) -> bytes:
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


class GrpcFake(FakeExchange):
    """A gRPC call whose answer is `chunks`; it records trailers a fault ended it with."""

    def __init__(self, chunks: list[bytes], clock: FakeClock | None = None) -> None:
        reply = Reply(200, "OK", [("content-type", "application/grpc")])
        super().__init__(clock=clock, upstream=(reply, list(chunks)))
        self.headers = {"content-type": "application/grpc"}
        self.trailers: list[tuple[str, str]] | None = None

    def end_with_trailers(self, fields: list[tuple[str, str]]) -> None:
        self.trailers = fields
        self.finished, self.how_ended = True, "trailers"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"delay": "1s"}, ("delay", 1, 1.0)),
        ({"delay": "20ms", "nth": 3}, ("delay", 3, 0.02)),
        ({"corrupt": True, "nth": 2}, ("corrupt", 2, 0.0)),
        ({"abort": "unavailable", "after_messages": 3}, ("abort", 1, 0.0)),
    ],
)
def test_params(params: dict[str, object], expected: tuple[str, int, float]) -> None:
    f = fault(params)
    assert (f.action, f.nth, f.delay) == expected


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({}, ""),
        ({"corrupt": False}, ""),
        ({"delay": "1s", "abort": 14}, ""),
        ({"abort": "OK"}, ".abort"),
        ({"abort": 14, "nth": 2}, ".nth"),
        ({"delay": "1s", "after_messages": 2}, ".after_messages"),
        ({"corrupt": True, "message": "x"}, ".message"),
        ({"delay": "1s", "nth": 0}, ".nth"),
    ],
)
def test_bad_params_are_located(params: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        fault(params)
    assert f"fault.grpc_message{key}:" in str(err.value)


# Three messages cut at awkward places: inside a prefix, inside a payload, two in one chunk.
MESSAGES = [msg(b"alpha"), msg(b""), msg(b"gamma-gamma")]
WIRE = b"".join(MESSAGES)
CUTS = [WIRE[:3], WIRE[3:8], WIRE[8:15], WIRE[15:]]


async def test_corrupt_the_second_message_across_chunks() -> None:
    ex = GrpcFake(CUTS)
    await run(fault({"corrupt": True, "nth": 3}), ex)
    assert ex.sent_body == MESSAGES[0] + MESSAGES[1] + msg(b"\xff" * 11)
    assert ex.events == [("grpc_message", "corrupt message=3 bytes=11")]


async def test_abort_after_two_messages_ends_with_the_status() -> None:
    ex = GrpcFake(CUTS)
    await run(fault({"abort": "RESOURCE_EXHAUSTED", "after_messages": 2, "message": "ë"}), ex)
    assert ex.sent_body == MESSAGES[0] + MESSAGES[1]  # the empty second message counts
    assert ex.trailers == [("grpc-status", "8"), ("grpc-message", "%C3%AB")]


async def test_abort_after_zero_messages() -> None:
    ex = GrpcFake(CUTS)
    await run(fault({"abort": 14, "after_messages": 0}), ex)
    assert ex.sent_body == b""
    assert ex.trailers is not None


async def test_abort_past_the_last_message_does_nothing() -> None:
    ex = GrpcFake(CUTS)
    await run(fault({"abort": 14, "after_messages": 4}), ex)
    assert (ex.sent_body, ex.trailers, ex.events) == (WIRE, None, [])


async def test_delay_before_the_nth_message() -> None:
    clock = FakeClock()
    ex = GrpcFake(CUTS, clock)
    t = asyncio.ensure_future(run(fault({"delay": "2s", "nth": 3}), ex))
    await ex.acted.wait()
    assert ex.sent_body == MESSAGES[0] + MESSAGES[1]  # the first two left before the gap
    await clock.wait_sleepers(1)
    clock.advance(2.0)
    await t
    assert ex.sent_body == WIRE


async def test_not_grpc_passes_untouched() -> None:
    ex = GrpcFake(CUTS)
    ex.headers = {"content-type": "application/json"}
    await run(fault({"corrupt": True}), ex)
    assert (ex.sent_body, ex.events) == (WIRE, [])
