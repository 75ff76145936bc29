"""Forwarding one exchange upstream: the request headers it gets, and the upstream call.

Streaming the reply back through the faults' hooks is `faults/pipeline.py`'s job."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chaosproxy.common.errors import UpstreamError
from chaosproxy.proxy.headers import connection_listed
from chaosproxy.proxy.upstream import UpstreamResponse

if TYPE_CHECKING:
    from chaosproxy.proxy.exchange import ProxyExchange


def upstream_lines(ex: ProxyExchange) -> tuple[bytes, bool, bool]:
    """The request header lines the upstream gets: the client's, in order and spelling, minus
    hop-by-hop ones (and those `Connection` lists) and the never-forwarded ones, plus
    X-Forwarded-* and the request id; and whether they carry Host and Content-Length. One pass
    over the raw headers, never decoding them."""
    core = ex.core
    skip = core.request_skip_bytes
    lines: list[bytes] = []
    kept: list[tuple[bytes, bytes]] = []
    prior = host = None
    has_id = has_host = has_length = False
    listed: frozenset[bytes] | None = None
    for k, v in ex.head.raw:
        low = k.lower()
        if low == b"host":
            if host is None:
                host = v
        elif low == b"x-forwarded-for":
            prior = v if prior is None else prior + b", " + v
        elif low == b"x-request-id":
            has_id = True
        elif low == b"content-length":
            has_length = True
        elif low == b"connection":
            extra = connection_listed(v)
            if extra:
                listed = extra if listed is None else listed | extra
        if low in skip or low.startswith(b"proxy-"):
            continue
        if low == b"host":
            has_host = True
        kept.append((k, v))
        lines += (k, b": ", v, b"\r\n")
    if listed:
        lines = []
        for k, v in kept:
            if k.lower() not in listed:
                lines += (k, b": ", v, b"\r\n")
            elif k.lower() == b"host":
                has_host = False
    if core.forwarded_headers:
        ip = ex.client_ip.encode("latin-1")
        lines += (b"X-Forwarded-For: ", prior + b", " + ip if prior else ip, b"\r\n")
        lines += (b"X-Forwarded-Proto: ", core.scheme.encode("latin-1"), b"\r\n")
        if host:
            lines += (b"X-Forwarded-Host: ", host, b"\r\n")
    if not has_id:
        lines += (b"X-Request-Id: ", ex.request_id.encode("latin-1"), b"\r\n")
    return b"".join(lines), has_host, has_length


async def request(ex: ProxyExchange) -> UpstreamResponse:
    """Send the exchange's request upstream; its response once the head arrived. The time it
    took and a failure's reason are kept on the exchange (for events and logs)."""
    body = ex.body
    if body is not None and not body.complete:
        await body.buffered()  # no upstream connection is held while a body trickles in
    t = ex.clock.monotonic()
    head = ex.head
    try:
        lines, has_host, has_length = upstream_lines(ex)
        return await ex.core.upstream.request(
            head.method, head.target, lines, has_host, has_length, ex.body
        )
    except UpstreamError as e:
        ex.upstream_error = e.reason
        raise
    finally:
        ex.upstream_duration = ex.clock.monotonic() - t
