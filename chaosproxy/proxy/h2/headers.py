"""HTTP/2 header lists as the proxy passes them on, and the few gRPC facts it needs.

Headers stay as h2 hands them over: (name, value) byte pairs, names lower-case, pseudo-headers
(`:method`, `:path`, `:status`...) first. HTTP/2 forbids connection-specific headers (RFC 9113
§8.2.2): they never cross, in either direction, whatever the peer sent (an HTTP/1.1 upstream's
`Connection`, `Keep-Alive` or `Transfer-Encoding` included); `te` crosses only as `trailers`,
which gRPC sends.
"""

from __future__ import annotations

from collections.abc import Iterable

from chaosproxy.faults.grpc_abort import GRPC_CODES
from chaosproxy.proxy.wire.headers import HOP_BY_HOP_BYTES, connection_listed

H2Headers = list[tuple[bytes, bytes]]

# Connection-specific in HTTP/2: never forwarded (`te: trailers` is the one exception).
CONNECTION_SPECIFIC = HOP_BY_HOP_BYTES | {b"http2-settings"}


def end_to_end_h2(headers: Iterable[tuple[bytes, bytes]]) -> H2Headers:
    """`headers` minus connection-specific ones, `Proxy-*` and what a `Connection` header
    lists (as `wire.headers.end_to_end` filters HTTP/1.1 heads); `te` only as `te: trailers`."""
    pairs = list(headers)
    listed: frozenset[bytes] = frozenset()
    for k, v in pairs:
        if k.lower() == b"connection":
            listed |= connection_listed(v)
    out: H2Headers = []
    for k, v in pairs:
        low = k.lower()
        if low in CONNECTION_SPECIFIC or low in listed or low.startswith(b"proxy-"):
            if low == b"te" and v.strip().lower() == b"trailers":
                out.append((low, v))
            continue
        out.append((k, v))
    return out


def split_pseudo(headers: Iterable[tuple[bytes, bytes]]) -> tuple[dict[bytes, bytes], H2Headers]:
    """Pseudo-headers (by name) and the regular headers, in order."""
    pseudo: dict[bytes, bytes] = {}
    regular: H2Headers = []
    for k, v in headers:
        if k[:1] == b":":
            pseudo.setdefault(k, v)
        else:
            regular.append((k, v))
    return pseudo, regular


def lower_headers(headers: Iterable[tuple[str, str]]) -> H2Headers:
    """HTTP/1.1-style (name, value) text pairs as HTTP/2 header fields (lower-case names),
    minus connection-specific ones."""
    return end_to_end_h2(
        (k.lower().encode("latin-1"), v.encode("latin-1", "replace")) for k, v in headers
    )


def is_grpc(content_type: str | bytes | None) -> bool:
    """`application/grpc`, `application/grpc+proto`, `application/grpc-web`...: gRPC."""
    if content_type is None:
        return False
    ct = content_type if isinstance(content_type, str) else content_type.decode("latin-1")
    return ct.lower().startswith("application/grpc")


def grpc_method(path: str) -> tuple[str, str] | None:
    """`/pkg.Service/Method` as (`pkg.Service`, `Method`); None for any other path."""
    if not path.startswith("/"):
        return None
    service, sep, method = path[1:].partition("/")
    if not sep or not service or not method or "/" in method:
        return None
    return service, method


def grpc_status_of_http(status: int) -> int:
    """The gRPC code a client reads from an HTTP status without `grpc-status`
    (grpc/doc/http-grpc-status-mapping.md); Envoy maps its local replies the same way."""
    if status == 400:
        return GRPC_CODES["INTERNAL"]
    if status == 401:
        return GRPC_CODES["UNAUTHENTICATED"]
    if status == 403:
        return GRPC_CODES["PERMISSION_DENIED"]
    if status == 404:
        return GRPC_CODES["UNIMPLEMENTED"]
    if status in (429, 502, 503, 504):
        return GRPC_CODES["UNAVAILABLE"]
    return GRPC_CODES["UNKNOWN"]


def grpc_status_in(fields: Iterable[tuple[bytes, bytes]] | None) -> int | None:
    """The `grpc-status` of a head or trailers (None when absent); a value that is not a
    status (0-16) is UNKNOWN, as gRPC clients read it."""
    for k, v in fields or ():
        if k == b"grpc-status":
            try:
                code = int(v)
            except ValueError:
                return GRPC_CODES["UNKNOWN"]
            return code if 0 <= code <= 16 else GRPC_CODES["UNKNOWN"]
    return None


# What a client's gRPC library reports for a stream reset with an HTTP/2 error code
# (grpc/doc/PROTOCOL-HTTP2.md, "Errors"): REFUSED_STREAM is retried, then UNAVAILABLE.
_RESET_STATUS = {
    0x7: "UNAVAILABLE",
    0x8: "CANCELLED",
    0xB: "RESOURCE_EXHAUSTED",
    0xC: "PERMISSION_DENIED",
}


_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
# Longer deadlines are as good as none (grpc-core caps its own far deadlines likewise); the
# largest value the format allows is 99999999 hours.
LONGEST = 30 * 24 * 3600.0


def parse_grpc_timeout(value: str | None) -> float | None:
    """Seconds from a `grpc-timeout` value (the gRPC over HTTP/2 spec: 1 to 8 digits and a
    unit, `H` `M` `S` `m` `u` `n`); None when absent, malformed or past `LONGEST`."""
    if value is None or not 2 <= len(value) <= 9:
        return None
    digits, unit = value[:-1], value[-1]
    if not digits.isascii() or not digits.isdigit() or unit not in _UNITS:
        return None
    seconds = int(digits) * _UNITS[unit]
    return seconds if seconds <= LONGEST else None


def grpc_status_of_reset(code: int) -> int:
    """The gRPC code a client reads from RST_STREAM(`code`): INTERNAL unless listed above."""
    return GRPC_CODES[_RESET_STATUS.get(code, "INTERNAL")]
