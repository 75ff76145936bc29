"""`stream_reset`: parameters, and where it resets (end to end with a grpcio client in
tests/proxy/h2/test_grpc_faults.py). On an exchange without streams it is `reset`."""

from __future__ import annotations

import pytest

from chaosproxy.common.errors import ConfigError
from chaosproxy.faults import build
from chaosproxy.faults.stream_reset import StreamResetFault
from tests.faults.fakes import FakeExchange, run


def stream_reset(params: dict[str, object]) -> StreamResetFault:
    fault = build("stream_reset", params, "fault")
    assert isinstance(fault, StreamResetFault)
    return fault


class StreamFake(FakeExchange):
    """A fake exchange that is one stream: it records the code it was reset with."""

    codes: list[int]

    def reset_stream(self, code: int) -> None:
        self.codes = [*getattr(self, "codes", []), code]
        self.finished, self.how_ended = True, "rst_stream"


@pytest.mark.parametrize(
    ("params", "code", "at"),
    [
        ({}, 2, "request"),
        ({"code": "CANCEL"}, 8, "request"),
        ({"code": "refused_stream", "at": "headers"}, 7, "headers"),
        ({"code": 11, "after_bytes": "1KiB"}, 11, "body"),
        ({"after_bytes": 0}, 2, "headers"),
    ],
)
def test_params(params: dict[str, object], code: int, at: str) -> None:
    f = stream_reset(params)
    assert (f.code, f.at) == (code, at)


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"code": "NOPE"}, "code"),
        ({"code": -1}, "code"),
        ({"at": "headers", "after_bytes": 3}, "at"),
    ],
)
def test_bad_params_are_located(params: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        stream_reset(params)
    assert f"fault.stream_reset.{key}" in str(err.value)


async def test_resets_the_stream_with_its_code_before_forwarding() -> None:
    ex = StreamFake()
    await run(stream_reset({"code": "CANCEL"}), ex)
    assert (ex.codes, ex.how_ended, ex.upstream_calls) == ([8], "rst_stream", 0)
    assert ex.events == [("stream_reset", "at=request code=8")]


async def test_after_bytes_lets_them_through_first() -> None:
    ex = StreamFake()
    await run(stream_reset({"after_bytes": 2}), ex)
    assert ex.sent_body == b"ab"
    assert ex.codes == [2]
    assert ex.flushes == 1


async def test_without_streams_it_is_a_tcp_reset() -> None:
    ex = FakeExchange()
    await run(stream_reset({"code": "CANCEL"}), ex)
    assert ex.how_ended == "reset"
