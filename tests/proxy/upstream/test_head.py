"""An upstream response head as the client gets it: end-to-end lines as received, and what the
writer must know (framing, the request id, `Retry-After`)."""

from __future__ import annotations

from chaosproxy.proxy.upstream.head import decode_headers, scan_head


def test_end_to_end_lines_are_kept_as_received_and_the_framing_noted() -> None:
    head = scan_head(
        [
            (b"Server", b"x"),
            (b"Transfer-Encoding", b"chunked"),
            (b"Connection", b"keep-alive, X-Hop"),
            (b"X-Hop", b"1"),
            (b"retry-after", b"7"),
            (b"Proxy-Authenticate", b"Basic"),
        ]
    )
    assert head.lines == b"Server: x\r\nretry-after: 7\r\n"
    assert decode_headers(head.kept) == [("Server", "x"), ("retry-after", "7")]
    assert (head.framed, head.has_length, head.has_id, head.retry_after) == (
        True,
        False,
        False,
        b"7",
    )


def test_a_body_without_length_or_coding_ends_with_the_connection() -> None:
    head = scan_head([(b"Content-Type", b"text/plain")])
    assert not head.framed and not head.has_length


def test_connection_never_removes_the_length_nor_the_id() -> None:
    head = scan_head(
        [
            (b"Connection", b"Content-Length, X-Request-Id"),
            (b"Content-Length", b"5"),
            (b"X-Request-Id", b"u"),
        ]
    )
    assert head.lines == b"Content-Length: 5\r\nX-Request-Id: u\r\n"
    assert head.framed and head.has_length and head.has_id


def test_names_are_classified_whatever_their_spelling() -> None:
    for spelling in (b"connection", b"CONNECTION", b"Connection", b"cOnNeCtIoN"):
        scanned = scan_head([(spelling, b"close"), (b"Proxy-X", b"1"), (b"PROXY-y", b"2")])
        assert scanned.lines == b""
    late = scan_head([(b"TE", b"trailers"), (b"Retry-After", b"3"), (b"content-LENGTH", b"1")])
    assert late.lines == b"Retry-After: 3\r\ncontent-LENGTH: 1\r\n"
    assert (late.retry_after, late.has_length, late.framed) == (b"3", True, True)
