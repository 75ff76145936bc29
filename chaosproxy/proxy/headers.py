"""Header rules of a proxy: hop-by-hop removal (RFC 9110 §7.6.1) and X-Forwarded-*."""

from __future__ import annotations

from collections.abc import Iterable

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


def _connection_tokens(raw: Iterable[tuple[str, str]]) -> frozenset[str]:
    tokens: set[str] = set()
    for name, value in raw:
        if name.lower() == "connection":
            tokens.update(t.strip().lower() for t in value.split(",") if t.strip())
    return frozenset(tokens)


def end_to_end(
    raw: Iterable[tuple[str, str]], drop: frozenset[str] = frozenset()
) -> list[tuple[str, str]]:
    """Headers minus hop-by-hop ones (and those `Connection` lists, and `drop`), order kept."""
    raw = list(raw)
    listed = _connection_tokens(raw)
    out = []
    for name, value in raw:
        low = name.lower()
        if low in HOP_BY_HOP or low in drop or low in listed or low.startswith("proxy-"):
            continue
        out.append((name, value))
    return out


def decode_raw(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw]
