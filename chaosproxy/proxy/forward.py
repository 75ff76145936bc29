"""Forwarding one exchange upstream and streaming the reply back through the faults' hooks."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from chaosproxy.errors import UpstreamError
from chaosproxy.faults.base import Reply
from chaosproxy.proxy.headers import HOP_BY_HOP
from chaosproxy.proxy.upstream import UpstreamBody, UpstreamResponse

if TYPE_CHECKING:
    from chaosproxy.proxy.exchange import ProxyExchange

log = logging.getLogger("chaosproxy.proxy")

_HOP_BYTES = frozenset(h.encode() for h in HOP_BY_HOP)


def upstream_headers(ex: ProxyExchange) -> list[tuple[str, str]]:
    """The request headers the upstream gets: the client's, in order and spelling, minus
    hop-by-hop ones (and those `Connection` lists) and the never-forwarded ones, plus
    X-Forwarded-* and the request id. One pass over the raw headers."""
    core = ex.core
    skip = core.request_skip
    out: list[tuple[str, str]] = []
    prior = host = None
    has_id = False
    listed: set[str] | None = None
    for k, v in ex.head.raw_headers:
        low = k.lower()
        if low == "x-forwarded-for":
            prior = v if prior is None else f"{prior}, {v}"
        elif low == "host":
            if host is None:
                host = v
        elif low == "x-request-id":
            has_id = True
        elif low == "connection":
            tokens = {t.strip().lower() for t in v.split(",") if t.strip()}
            if tokens - HOP_BY_HOP:
                listed = tokens if listed is None else listed | tokens
        if low in skip or low.startswith("proxy-"):
            continue
        out.append((k, v))
    if listed:
        out = [(k, v) for k, v in out if k.lower() not in listed]
    if core.forwarded_headers:
        ip = ex.client_ip
        out.append(("X-Forwarded-For", f"{prior}, {ip}" if prior else ip))
        out.append(("X-Forwarded-Proto", core.scheme))
        if host:
            out.append(("X-Forwarded-Host", host))
    if not has_id:
        out.append(("X-Request-Id", ex.request_id))
    return out


def upstream_lines(ex: ProxyExchange) -> tuple[bytes, bool, bool]:
    """`upstream_headers` as bytes, never decoding the client's headers: the header lines, and
    whether they carry Host and Content-Length."""
    core = ex.core
    skip = core.request_skip_bytes
    lines: list[bytes] = []
    kept: list[tuple[bytes, bytes]] = []
    prior = host = None
    has_id = has_host = has_length = False
    listed: set[bytes] | None = None
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
        elif low == b"connection" and v.lower() not in (b"keep-alive", b"close"):
            extra = {t.strip().lower() for t in v.split(b",")} - _HOP_BYTES - {b""}
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


async def _request(ex: ProxyExchange) -> UpstreamResponse:
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


async def fetch_upstream(ex: ProxyExchange) -> tuple[Reply, AsyncIterator[bytes]]:
    resp = await _request(ex)
    return Reply(resp.status, resp.reason, resp.headers), resp.body()


async def proceed_upstream(ex: ProxyExchange) -> None:
    resp = await _request(ex)
    body = resp.body()
    try:
        if ex._reply_hooks is None and ex._headers_hooks is None and ex._body_filters is None:
            await _stream_verbatim(ex, resp, body)
            return
        reply = Reply(resp.status, resp.reason, resp.headers)
        for hook in ex._reply_hooks or ():
            changed = await hook(ex, reply)
            if changed is None or ex.finished:
                return
            reply = changed
        await _stream_reply(ex, reply, body, body.complete)
    finally:
        resp.release()  # back to the pool when read to its end, else its connection closes


async def _stream_verbatim(ex: ProxyExchange, resp: UpstreamResponse, body: UpstreamBody) -> None:
    """The pass-through path: no fault looks at the reply, its head goes back as received."""
    first = b""
    if body.complete:
        with contextlib.suppress(StopAsyncIteration):
            first = await body.__anext__()
    allowed = ex.send_verbatim_head(
        resp.status,
        resp.reason_bytes,
        resp.head_lines,
        resp.has_length,
        resp.has_id,
        resp.retry_after,
        first,
    )
    if allowed:
        await _pump(ex, body, body)
    elif not ex.finished:
        ex.end_body()


async def stream_reply(ex: ProxyExchange, reply: Reply, body: AsyncIterator[bytes]) -> None:
    """Send `reply`'s head, run headers hooks, then stream `body` through the filters."""
    await _stream_reply(ex, reply, body, False)


async def _stream_reply(
    ex: ProxyExchange, reply: Reply, body: AsyncIterator[bytes], whole: bool
) -> None:
    # A body that already arrived whole (`whole`) leaves with its head in one write (one
    # syscall). Not under a body filter: a throttled first write would hold the head back too.
    first = b""
    if whole and ex._headers_hooks is None and ex._body_filters is None:
        with contextlib.suppress(StopAsyncIteration):
            first = await body.__anext__()
    if not ex.send_head(reply.status, reply.reason, list(reply.headers), first):
        ex.end_body()
        return
    for hook in ex._headers_hooks or ():
        await hook(ex)
        if ex.finished:
            return
    stream = body
    for f in ex._body_filters or ():
        stream = f(ex, stream)
    await _pump(ex, stream, body)


async def _pump(
    ex: ProxyExchange, stream: AsyncIterator[bytes], body: AsyncIterator[bytes]
) -> None:
    """Write `stream` to the client, then end the body; an upstream failure mid-body closes the
    connection so the client sees the truncation."""
    try:
        async for chunk in stream:
            if ex.finished:
                return
            await ex.write_body(chunk)
    except UpstreamError as e:
        ex.upstream_error = e.reason
        log.warning(
            "upstream failed mid-response [%s]: %s",
            ex.request_id,
            e.details,
            extra={"request_id": ex.request_id},
        )
        ex.close()
        return
    finally:
        if stream is not body:
            await _aclose(stream)
    if not ex.finished:
        ex.end_body()


async def _aclose(it: AsyncIterator[bytes]) -> None:
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()
