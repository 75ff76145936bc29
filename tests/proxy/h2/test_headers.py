"""Header lists across HTTP/2: connection-specific fields never cross, `te: trailers` does;
the gRPC path and status facts."""

from __future__ import annotations

import pytest

from chaosproxy.proxy.h2.headers import (
    end_to_end_h2,
    grpc_method,
    grpc_status_of_http,
    is_grpc,
    lower_headers,
    split_pseudo,
)


def test_connection_specific_headers_never_cross() -> None:
    raw = [
        (b"content-type", b"application/grpc"),
        (b"connection", b"keep-alive, x-hop"),
        (b"keep-alive", b"timeout=5"),
        (b"transfer-encoding", b"chunked"),
        (b"upgrade", b"h2c"),
        (b"proxy-authorization", b"secret"),
        (b"x-hop", b"1"),
        (b"te", b"trailers"),
        (b"x-end", b"2"),
    ]
    assert end_to_end_h2(raw) == [
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
        (b"x-end", b"2"),
    ]


def test_te_other_than_trailers_is_dropped() -> None:
    assert end_to_end_h2([(b"te", b"gzip")]) == []


def test_http1_headers_become_lower_case_fields() -> None:
    assert lower_headers([("Content-Type", "text/plain"), ("Connection", "close")]) == [
        (b"content-type", b"text/plain")
    ]


def test_split_pseudo_keeps_order_of_the_rest() -> None:
    pseudo, rest = split_pseudo(
        [(b":method", b"GET"), (b"a", b"1"), (b":path", b"/"), (b"b", b"2")]
    )
    assert pseudo == {b":method": b"GET", b":path": b"/"}
    assert rest == [(b"a", b"1"), (b"b", b"2")]


@pytest.mark.parametrize(
    ("ct", "grpc"),
    [
        ("application/grpc", True),
        (b"application/grpc+proto", True),
        ("Application/GRPC", True),
        ("application/json", False),
        (None, False),
    ],
)
def test_is_grpc(ct: str | bytes | None, grpc: bool) -> None:
    assert is_grpc(ct) is grpc


@pytest.mark.parametrize(
    ("path", "parts"),
    [("/pkg.S/M", ("pkg.S", "M")), ("/S/M/x", None), ("/S", None), ("/S/", None), ("x", None)],
)
def test_grpc_method(path: str, parts: tuple[str, str] | None) -> None:
    assert grpc_method(path) == parts


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, 13),
        (401, 16),
        (403, 7),
        (404, 12),
        (429, 14),
        (502, 14),
        (503, 14),
        (504, 14),
        (500, 2),
        (418, 2),
    ],
)
def test_http_status_to_grpc_status(status: int, code: int) -> None:
    assert grpc_status_of_http(status) == code
