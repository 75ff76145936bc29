"""Header rules of a proxy: hop-by-hop removal (RFC 9110 §7.6.1) and X-Forwarded-*."""

from __future__ import annotations

from collections.abc import Iterable

from multidict import MultiMapping

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
_NOT_LISTABLE = HOP_BY_HOP_BYTES | frozenset(h.encode() for h in NEVER_LISTED) | {b""}
_NONE: frozenset[bytes] = frozenset()


def connection_listed(value: bytes) -> frozenset[bytes]:
    """The end-to-end header names one raw `Connection` value lists (hop-by-hop for this
    message), minus `NEVER_LISTED`; the usual `keep-alive` or `close` lists none, without
    splitting."""
    if value.lower() in (b"keep-alive", b"close"):
        return _NONE
    return frozenset(t.strip().lower() for t in value.split(b",")) - _NOT_LISTABLE


def _listed(connection_values: Iterable[str]) -> set[str]:
    """Header names a `Connection` header lists: hop-by-hop too (never `NEVER_LISTED`)."""
    listed = {t.strip().lower() for v in connection_values for t in v.split(",") if t.strip()}
    return listed - NEVER_LISTED


def forwardable(headers: MultiMapping[str], skip: frozenset[str]) -> list[tuple[str, str]]:
    """One pass over a parsed header multidict: drop `skip`, `Proxy-*` and what `Connection`
    lists; keep order and the original spelling. `skip` is computed once by the caller."""
    connection = headers.getall("Connection", None)
    if connection:
        skip = skip | _listed(connection)
    return [
        (k, v)
        for k, v in headers.items()
        if (low := k.lower()) not in skip and not low.startswith("proxy-")
    ]


def end_to_end(
    raw: Iterable[tuple[str, str]], drop: frozenset[str] = frozenset()
) -> list[tuple[str, str]]:
    """Headers minus hop-by-hop ones (and those `Connection` lists, and `drop`), order kept."""
    raw = list(raw)
    skip = HOP_BY_HOP | drop | _listed(v for k, v in raw if k.lower() == "connection")
    return [
        (k, v) for k, v in raw if (low := k.lower()) not in skip and not low.startswith("proxy-")
    ]
