"""`grpc_abort`: parameters, and the trailers-only answer it asks the exchange for (end to end
through a real grpcio client in tests/proxy/h2/test_grpc_faults.py)."""

from __future__ import annotations

import pytest

from chaosproxy.common.errors import ConfigError
from chaosproxy.faults import build
from chaosproxy.faults.grpc_abort import GrpcAbortFault, percent_encoded
from tests.faults.fakes import FakeExchange, run


def abort(params: dict[str, object]) -> GrpcAbortFault:
    fault = build("grpc_abort", params, "fault")
    assert isinstance(fault, GrpcAbortFault)
    return fault


@pytest.mark.parametrize(
    ("code", "number"), [("UNAVAILABLE", 14), ("unavailable", 14), (8, 8), ("DATA_LOSS", 15)]
)
def test_code_by_name_or_number(code: object, number: int) -> None:
    assert abort({"code": code}).code == number


@pytest.mark.parametrize("code", ["OK", 0, 17, "NOPE", True, 1.5])
def test_bad_codes_are_located(code: object) -> None:
    with pytest.raises(ConfigError) as err:
        abort({"code": code})
    assert "fault.grpc_abort.code" in str(err.value)


async def test_answers_trailers_only_without_the_upstream() -> None:
    ex = FakeExchange()
    await run(abort({"code": "RESOURCE_EXHAUSTED", "message": "50% ✗", "pushback": "2s"}), ex)
    assert ex.upstream_calls == 0
    assert (ex.sent_status, ex.sent_body, ex.how_ended) == (200, b"", "respond")
    assert ex.sent_headers == [
        ("content-type", "application/grpc"),
        ("grpc-status", "8"),
        ("grpc-message", "50%25 %E2%9C%97"),
        ("grpc-retry-pushback-ms", "2000"),
    ]
    assert ex.events == [("grpc_abort", "grpc-status=8")]


def test_percent_encoding_keeps_printable_ascii() -> None:
    assert percent_encoded("a b/c") == "a b/c"
    assert percent_encoded("100%") == "100%25"
    assert percent_encoded("\n") == "%0A"
