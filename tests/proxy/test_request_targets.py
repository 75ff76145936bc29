"""The request target never chooses where the proxy connects (SSRF): only a path goes to the
configured upstream; absolute-form is rewritten to its path; CONNECT, `OPTIONS *`, other forms
and HTTP versions other than 1.0/1.1 are answered by the proxy and reach no upstream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tests.conftest import StartProxy
from tests.proxy.rawhttp import raw_request


@pytest.fixture
async def seen_upstream(start_upstream) -> tuple[str, list[str]]:  # type: ignore[no-untyped-def]
    seen: list[str] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request.raw_path)
        return web.Response(text="upstream")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    return await start_upstream(app), seen


@pytest.mark.parametrize(
    ("line", "status", "says"),
    [
        (b"CONNECT @127.0.0.1:22 HTTP/1.1", 405, "CONNECT is not proxied"),
        (b"CONNECT 127.0.0.1:22 HTTP/1.1", 405, "CONNECT is not proxied"),
        (b"GET @127.0.0.1:22/x HTTP/1.1", 400, ""),  # the parser refuses it already
        (b"GET * HTTP/1.1", 400, "OPTIONS only"),
        (b"GET /api/items HTTP/2.0", 505, "HTTP/2.0 is not supported"),
    ],
)
async def test_targets_that_are_not_a_path_reach_no_upstream(
    seen_upstream: tuple[str, list[str]],
    start_proxy: StartProxy,
    line: bytes,
    status: int,
    says: str,
) -> None:
    upstream, seen = seen_upstream
    rt = await start_proxy(upstream)
    res = await raw_request(rt.proxy_url, line + b"\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert res.status == status
    body = json.loads(res.body)
    assert says in body["error"]["details"] and body["error"]["requestId"]
    assert seen == []


async def test_an_http_0_9_request_line_is_refused(
    seen_upstream: tuple[str, list[str]], start_proxy: StartProxy
) -> None:
    upstream, seen = seen_upstream
    rt = await start_proxy(upstream)
    res = await raw_request(rt.proxy_url, b"GET /api/items\r\n\r\n")
    assert res.status == 505 and seen == []


async def test_absolute_form_goes_to_the_configured_upstream_as_a_path(
    seen_upstream: tuple[str, list[str]], start_proxy: StartProxy
) -> None:
    upstream, seen = seen_upstream
    rt = await start_proxy(upstream)
    wire = (
        b"GET http://169.254.169.254/latest/meta?x=1 HTTP/1.1\r\n"
        b"Host: x\r\nConnection: close\r\n\r\n"
    )
    res = await raw_request(rt.proxy_url, wire)
    assert (res.status, res.body) == (200, b"upstream")
    assert seen == ["/latest/meta?x=1"]


async def test_options_star_is_answered_by_the_proxy(
    seen_upstream: tuple[str, list[str]], start_proxy: StartProxy
) -> None:
    upstream, seen = seen_upstream
    rt = await start_proxy(upstream)
    res = await raw_request(
        rt.proxy_url, b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert res.status == 200 and "OPTIONS" in (res.header("Allow") or "") and seen == []


@pytest.fixture
async def victim() -> AsyncIterator[tuple[int, list[int]]]:
    """Another loopback service the proxy must never reach: it records each connection, then
    sends a banner and closes, so any reply the proxy gives came after the record was made."""
    accepted: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        writer.write(b"SSH-2.0-victim-banner\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1], accepted
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize(
    ("line", "status"),
    [
        ("CONNECT @127.0.0.1:{port} HTTP/1.1", 405),
        ("CONNECT 127.0.0.1:{port} HTTP/1.1", 405),
        ("GET http://127.0.0.1:{port}/x HTTP/1.1", 200),
    ],
)
async def test_the_target_never_makes_the_proxy_connect_elsewhere(
    seen_upstream: tuple[str, list[str]],
    victim: tuple[int, list[int]],
    start_proxy: StartProxy,
    line: str,
    status: int,
) -> None:
    """A target naming another host and port neither opens a
    connection there nor returns that service's bytes."""
    upstream, _ = seen_upstream
    port, accepted = victim
    rt = await start_proxy(upstream)
    wire = line.format(port=port).encode() + b"\r\nHost: x\r\nConnection: close\r\n\r\n"
    res = await raw_request(rt.proxy_url, wire)
    assert accepted == []
    assert b"victim-banner" not in res.body
    assert res.status == status
