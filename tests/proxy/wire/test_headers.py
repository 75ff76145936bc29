"""Which headers a proxy passes on: hop-by-hop ones, `Proxy-*` and what `Connection` lists go;
the rest keep their order and spelling. The one filter both directions use."""

from __future__ import annotations

from collections.abc import Iterable

from chaosproxy.proxy.wire.headers import (
    HOP_BY_HOP_BYTES,
    RawHeaders,
    connection_listed,
    end_to_end,
    header_lines,
)


def kept(raw: Iterable[tuple[bytes, bytes]], **kw: frozenset[bytes]) -> RawHeaders:
    """The pairs `end_to_end` keeps, checked against the lines it gives beside them."""
    pairs, lines, _ = end_to_end(raw, **kw)
    assert lines == header_lines(pairs)
    return pairs


def test_hop_by_hop_headers_are_dropped_and_the_rest_kept_in_order_and_spelling() -> None:
    got = kept(
        [
            (b"X-B", b"2"),
            (b"Keep-Alive", b"timeout=5"),
            (b"x-a", b"1"),
            (b"Transfer-Encoding", b"chunked"),
            (b"X-B", b"3"),
        ]
    )
    assert got == [(b"X-B", b"2"), (b"x-a", b"1"), (b"X-B", b"3")]


def test_headers_the_connection_header_lists_are_hop_by_hop_too() -> None:
    got = kept(
        [
            (b"Connection", b"close, X-Trace"),
            (b"Connection", b" x-other "),
            (b"X-Trace", b"t"),
            (b"X-Other", b"o"),
            (b"X-Kept", b"k"),
        ]
    )
    assert got == [(b"X-Kept", b"k")]


def test_connection_never_unframes_a_message_nor_drops_its_request_id() -> None:
    raw = [
        (b"Connection", b"Content-Length, X-Request-Id, Upgrade"),
        (b"Content-Length", b"5"),
        (b"X-Request-Id", b"r1"),
    ]
    assert kept(raw) == [(b"Content-Length", b"5"), (b"X-Request-Id", b"r1")]
    assert connection_listed(b"keep-alive") == frozenset()
    assert connection_listed(b"Close") == frozenset()
    assert connection_listed(b"X-A, ,x-b, content-length") == {b"x-a", b"x-b"}


def test_proxy_headers_are_not_forwarded() -> None:
    got = kept([(b"Proxy-Authorization", b"Basic x"), (b"Proxy-Foo", b"1"), (b"Accept", b"*/*")])
    assert got == [(b"Accept", b"*/*")]


def test_the_caller_s_skip_set_is_honoured() -> None:
    got = kept([(b"Host", b"a"), (b"Accept", b"*/*")], skip=HOP_BY_HOP_BYTES | {b"host"})
    assert got == [(b"Accept", b"*/*")]


def test_header_lines_are_written_as_given() -> None:
    assert header_lines([(b"X-A", b"1"), (b"x-b", b"")]) == b"X-A: 1\r\nx-b: \r\n"


def test_watched_headers_are_reported_whether_kept_or_not() -> None:
    raw = [
        (b"Transfer-Encoding", b"chunked"),
        (b"Connection", b"Retry-After"),
        (b"retry-after", b"5"),
        (b"X-A", b"1"),
    ]
    pairs, lines, seen = end_to_end(raw, watch=frozenset({b"transfer-encoding", b"retry-after"}))
    assert pairs == [(b"X-A", b"1")] and lines == b"X-A: 1\r\n"
    assert seen == [(b"transfer-encoding", b"chunked"), (b"retry-after", b"5")]


def test_name_kinds_classify_each_spelling_once_and_keep_no_more_than_the_bound() -> None:
    # A peer sending ever new names fills the memory to its bound only; every name is still
    # classified, and by its lower-cased form.
    from chaosproxy.proxy.wire.headers import NameKinds

    asked: list[bytes] = []

    def classify(low: bytes) -> int:
        asked.append(low)
        return len(low)

    kinds = NameKinds(classify, bound=4)
    assert [kinds.of(b"Host"), kinds.of(b"Host"), kinds.of(b"HOST")] == [4, 4, 4]
    assert asked == [b"host", b"host"]  # once per spelling
    for i in range(10):
        assert kinds.of(b"X-%d" % i) == 3
    assert len(kinds) == 4 and kinds.of(b"X-9") == 3 and asked.count(b"x-9") == 2
