"""Hop-by-hop headers (RFC 9110 §7.6.1): the one filter both directions of the proxy use.

A header is end-to-end unless it is hop-by-hop, a `Proxy-*` header, or named by the message's
`Connection` header. The filter works on raw header pairs (bytes, as parsed), keeps order and
spelling, and never decodes: the pass-through path forwards what it was sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

HOP_BY_HOP_BYTES = frozenset(h.encode() for h in HOP_BY_HOP)
# Never removed because `Connection` lists them: the message's framing (a body sent without its
# `Content-Length` would be read by the next hop as the next request: smuggling), and the
# request id the proxy journals under (nginx ignores the listing altogether; HAProxy forwards
# both). `Transfer-Encoding` is hop-by-hop already: the proxy frames every body itself.
NEVER_LISTED = frozenset({"content-length", "x-request-id"})
_NOT_LISTABLE: Final = HOP_BY_HOP_BYTES | frozenset(h.encode() for h in NEVER_LISTED) | {b""}
_NONE: Final[frozenset[bytes]] = frozenset()

RawHeaders = list[tuple[bytes, bytes]]


class NameKinds:
    """What each header name means to a per-message scan, looked up as the name came on the
    wire (`kinds.of(name)`): `classify` gets the lower-cased name once per spelling, since peers
    send the same few names in the same spelling, and the scan spares a `lower()` per header.
    Bounded: past `bound` spellings (a peer sending ever new names) a new one is classified each
    time, not kept. (A class of its own, not a dict with `__missing__`: compiled, the lookup is
    a direct call and one dict probe.)"""

    __slots__ = ("_bound", "_classify", "_known")

    def __init__(self, classify: Callable[[bytes], int], bound: int = 1024) -> None:
        self._known: dict[bytes, int] = {}
        self._classify = classify
        self._bound = bound

    def of(self, name: bytes) -> int:
        what = self._known.get(name, -1)
        if what < 0:
            what = self._classify(name.lower())
            if len(self._known) < self._bound:
                self._known[name] = what
        return what

    def __len__(self) -> int:
        return len(self._known)


def connection_listed(value: bytes) -> frozenset[bytes]:
    """The end-to-end header names one raw `Connection` value lists (hop-by-hop for this
    message), minus `NEVER_LISTED`; the usual `keep-alive` or `close` lists none, without
    splitting."""
    if value == b"keep-alive" or value == b"close" or value.lower() in (b"keep-alive", b"close"):
        return _NONE
    return frozenset(t.strip().lower() for t in value.split(b",")) - _NOT_LISTABLE


def end_to_end(
    raw: Iterable[tuple[bytes, bytes]],
    skip: frozenset[bytes] = HOP_BY_HOP_BYTES,
    watch: frozenset[bytes] = _NONE,
) -> tuple[RawHeaders, bytes, RawHeaders]:
    """The headers of `raw` a proxy passes on, as pairs and as the lines of a message head
    (name, colon, value, CRLF each): minus `skip` (lower-case names: hop-by-hop ones, and
    whatever else the caller never forwards), `Proxy-*` and what `Connection` lists; order and
    spelling kept. Third, the headers named in `watch` (lower-case name, value), kept or not:
    what the caller must know of the message (its framing, its id) in the same pass. One pass;
    a second over the kept ones only when `Connection` lists a name."""
    kept: RawHeaders = []
    lines: list[bytes] = []
    seen: RawHeaders = []
    listed: frozenset[bytes] | None = None
    for k, v in raw:
        low = k.lower()
        if low in watch:
            seen.append((low, v))
        if low == b"connection":
            extra = connection_listed(v)
            if extra:
                listed = extra if listed is None else listed | extra
        if low in skip or low.startswith(b"proxy-"):
            continue
        kept.append((k, v))
        lines += (k, b": ", v, b"\r\n")
    if listed:
        kept = [(k, v) for k, v in kept if k.lower() not in listed]
        return kept, header_lines(kept), seen
    return kept, b"".join(lines), seen


def header_lines(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Header pairs as the lines of a message head: name, colon, value, CRLF each."""
    lines: list[bytes] = []
    for k, v in headers:
        lines += (k, b": ", v, b"\r\n")
    return b"".join(lines)
