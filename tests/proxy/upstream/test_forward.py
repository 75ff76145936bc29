"""The request head the upstream gets: the client's header lines in order and spelling, minus
hop-by-hop ones, what `Connection` lists and the never-forwarded ones, plus `X-Forwarded-*` and
the request id — and whether they carry Host and Content-Length (the client adds what lacks)."""

from __future__ import annotations

from typing import Any, cast

from chaosproxy.proxy.upstream.forward import Forwarder
from chaosproxy.proxy.upstream.interface import Upstream

NOWHERE = cast(Upstream, object())  # `lines` never calls the upstream


def lines(raw: list[tuple[bytes, bytes]], **options: Any) -> tuple[bytes, bool, bool]:
    forwarder = Forwarder(NOWHERE, **options)
    return forwarder.lines(raw, "10.0.0.9", "rid-1")


def test_the_client_s_headers_go_as_sent_plus_forwarding_headers_and_the_id() -> None:
    raw = [
        (b"Host", b"shop:8080"),
        (b"accept", b"*/*"),
        (b"Connection", b"keep-alive"),
        (b"X-Forwarded-For", b"1.1.1.1"),
        (b"Keep-Alive", b"timeout=5"),
        (b"x-forwarded-for", b"2.2.2.2"),
        (b"Proxy-Authorization", b"Basic x"),
    ]
    assert lines(raw) == (
        b"Host: shop:8080\r\naccept: */*\r\n"
        b"X-Forwarded-For: 1.1.1.1, 2.2.2.2, 10.0.0.9\r\n"
        b"X-Forwarded-Proto: http\r\n"
        b"X-Forwarded-Host: shop:8080\r\n"
        b"X-Request-Id: rid-1\r\n",
        True,
        False,
    )


def test_without_forwarding_headers_the_client_s_own_pass_and_its_id_is_kept() -> None:
    raw = [
        (b"Host", b"a"),
        (b"X-Forwarded-For", b"1.1.1.1"),
        (b"X-Request-Id", b"mine"),
        (b"Content-Length", b"3"),
    ]
    assert lines(raw, forwarded_headers=False) == (
        b"Host: a\r\nX-Forwarded-For: 1.1.1.1\r\nX-Request-Id: mine\r\nContent-Length: 3\r\n",
        True,
        True,
    )


def test_dropped_and_rewritten_headers_never_go_and_the_host_is_the_upstream_s() -> None:
    raw = [(b"Host", b"client-side"), (b"Expect", b"100-continue"), (b"X-Secret", b"s")]
    got, has_host, _ = lines(
        raw, drop=frozenset({"Expect", "x-secret"}), rewrite_host=True, scheme="https"
    )
    assert got == (
        b"X-Forwarded-For: 10.0.0.9\r\nX-Forwarded-Proto: https\r\n"
        b"X-Forwarded-Host: client-side\r\nX-Request-Id: rid-1\r\n"
    )
    assert has_host is False  # the client writes the upstream's own Host


def test_a_host_that_connection_lists_is_not_sent_and_the_client_adds_its_own() -> None:
    raw = [(b"Host", b"a"), (b"Connection", b"close, HOST, x-a"), (b"X-A", b"1"), (b"X-B", b"2")]
    got, has_host, _ = lines(raw, forwarded_headers=False)
    assert (got, has_host) == (b"X-B: 2\r\nX-Request-Id: rid-1\r\n", False)


def test_connection_never_unframes_a_request_body() -> None:
    raw = [(b"Host", b"a"), (b"Connection", b"Content-Length"), (b"Content-Length", b"5")]
    got, _, has_length = lines(raw, forwarded_headers=False)
    assert got == b"Host: a\r\nContent-Length: 5\r\nX-Request-Id: rid-1\r\n" and has_length


def test_header_names_are_classified_whatever_their_spelling() -> None:
    forwarder = Forwarder(NOWHERE, forwarded_headers=False)
    out, has_host, has_length = forwarder.lines(
        [
            (b"HOST", b"h"),
            (b"content-length", b"2"),
            (b"X-REQUEST-ID", b"c"),
            (b"KEEP-ALIVE", b"1"),
        ],
        "1.2.3.4",
        "r",
    )
    assert out == b"HOST: h\r\ncontent-length: 2\r\nX-REQUEST-ID: c\r\n"
    assert has_host and has_length
    out, _, _ = forwarder.lines(
        [(b"Proxy-Foo", b"p"), (b"PROXY-foo", b"q"), (b"X-A", b"v")], "", "r"
    )
    assert out == b"X-A: v\r\nX-Request-Id: r\r\n"
