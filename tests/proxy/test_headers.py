"""Which request headers a proxy forwards: hop-by-hop ones and what `Connection` lists go."""

from __future__ import annotations

from multidict import CIMultiDict

from chaosproxy.proxy.headers import HOP_BY_HOP, forwardable


def _fwd(*pairs: tuple[str, str], skip: frozenset[str] = HOP_BY_HOP) -> list[tuple[str, str]]:
    return forwardable(CIMultiDict(pairs), skip)


def test_hop_by_hop_headers_are_dropped_and_the_rest_kept_in_order_and_spelling() -> None:
    got = _fwd(
        ("X-B", "2"),
        ("Keep-Alive", "timeout=5"),
        ("x-a", "1"),
        ("Transfer-Encoding", "chunked"),
        ("X-B", "3"),
    )
    assert got == [("X-B", "2"), ("x-a", "1"), ("X-B", "3")]


def test_headers_the_connection_header_lists_are_hop_by_hop_too() -> None:
    got = _fwd(
        ("Connection", "close, X-Trace"),
        ("Connection", " x-other "),
        ("X-Trace", "t"),
        ("X-Other", "o"),
        ("X-Kept", "k"),
    )
    assert got == [("X-Kept", "k")]


def test_proxy_headers_are_not_forwarded() -> None:
    got = _fwd(("Proxy-Authorization", "Basic x"), ("Proxy-Foo", "1"), ("Accept", "*/*"))
    assert got == [("Accept", "*/*")]


def test_the_caller_s_skip_set_is_honoured() -> None:
    got = _fwd(("Host", "a"), ("Accept", "*/*"), skip=HOP_BY_HOP | {"host"})
    assert got == [("Accept", "*/*")]
