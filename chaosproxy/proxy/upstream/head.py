"""An upstream response's head, scanned once: the end-to-end header lines the client gets as
received (never decoded on the pass-through path), and what the writer must know about them."""

from __future__ import annotations

from typing import Final

from chaosproxy.proxy.wire.headers import (
    HOP_BY_HOP_BYTES,
    NameKinds,
    RawHeaders,
    connection_listed,
    header_lines,
)


class ScannedHead:
    """What the scan found (a plain class: compiled, its fields are read directly)."""

    __slots__ = ("framed", "has_id", "has_length", "kept", "lines", "retry_after")

    def __init__(
        self,
        kept: RawHeaders,
        lines: bytes,
        has_length: bool,
        has_id: bool,
        retry_after: bytes | None,
        framed: bool,
    ) -> None:
        self.kept = kept  # end-to-end headers, order and spelling kept
        self.lines = lines  # the same as header lines
        self.has_length = has_length
        self.has_id = has_id
        self.retry_after = retry_after
        # Content-Length or Transfer-Encoding: the body does not end with the connection
        self.framed = framed


# What each name the scan must notice means to it (lower-case); any other name is end-to-end
# unless it starts with `proxy-` or `Connection` lists it.
_LENGTH: Final = 0
_CODING: Final = 1
_ID: Final = 2
_RETRY: Final = 3
_CONNECTION: Final = 4
_HOP: Final = 5
_KEEP: Final = 6
_KIND = {n: _HOP for n in HOP_BY_HOP_BYTES} | {
    b"content-length": _LENGTH,
    b"transfer-encoding": _CODING,
    b"x-request-id": _ID,
    b"retry-after": _RETRY,
    b"connection": _CONNECTION,
}


def _classify(low: bytes) -> int:
    what = _KIND.get(low)
    if what is None:
        what = _HOP if low.startswith(b"proxy-") else _KEEP
    return what


_KINDS: Final = NameKinds(_classify)


def scan_head(raw: RawHeaders) -> ScannedHead:
    """Keep a response's end-to-end headers as lines (what `wire.headers.end_to_end` keeps, in
    one pass written for the answer: it runs once per proxied response); note the framing, the
    request id and `Retry-After` as the upstream sent them."""
    kept: RawHeaders = []
    lines: list[bytes] = []
    framed = has_length = has_id = False
    retry_after: bytes | None = None
    listed: frozenset[bytes] | None = None
    kinds = _KINDS
    for item in raw:
        k, v = item  # (`item` itself is kept: no new tuple)
        what = kinds.of(k)
        if what != _KEEP:
            if what == _HOP:
                continue
            if what == _CONNECTION:
                extra = connection_listed(v)
                if extra:
                    listed = extra if listed is None else listed | extra
                continue
            if what == _CODING:
                framed = True
                continue
            if what == _LENGTH:
                framed = has_length = True
            elif what == _ID:
                has_id = True
            else:
                retry_after = v
        kept.append(item)
        # Four appends, not `+= (k, ...)`: compiled, a tuple per header is most of the cost.
        lines.append(k)
        lines.append(b": ")
        lines.append(v)
        lines.append(b"\r\n")
    if listed:
        kept = [(k, v) for k, v in kept if k.lower() not in listed]
        return ScannedHead(kept, header_lines(kept), has_length, has_id, retry_after, framed)
    return ScannedHead(kept, b"".join(lines), has_length, has_id, retry_after, framed)


def decode_headers(kept: RawHeaders) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in kept]
