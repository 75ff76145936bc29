"""An upstream response's head, scanned once: the end-to-end header lines the client gets as
received (never decoded on the pass-through path), and what the writer must know about them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from chaosproxy.proxy.wire.headers import RawHeaders, end_to_end


class ScannedHead(NamedTuple):
    kept: RawHeaders  # end-to-end headers, order and spelling kept
    lines: bytes  # the same as header lines
    has_length: bool
    has_id: bool
    retry_after: bytes | None
    framed: bool  # Content-Length or Transfer-Encoding: the body does not end with the connection


_WATCH = frozenset({b"content-length", b"transfer-encoding", b"x-request-id", b"retry-after"})


def scan_head(raw: Sequence[tuple[bytes, bytes]]) -> ScannedHead:
    """Keep a response's end-to-end headers (`wire.headers.end_to_end`) as lines; note the
    framing, the request id and `Retry-After` as the upstream sent them."""
    kept, lines, seen = end_to_end(raw, watch=_WATCH)
    framed = has_length = has_id = False
    retry_after: bytes | None = None
    for name, value in seen:
        if name == b"content-length":
            framed = has_length = True
        elif name == b"transfer-encoding":
            framed = True
        elif name == b"x-request-id":
            has_id = True
        else:
            retry_after = value
    return ScannedHead(kept, lines, has_length, has_id, retry_after, framed)


def decode_headers(kept: RawHeaders) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in kept]
