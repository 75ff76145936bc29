"""Errors the proxy itself produces: JSON with a request id, the truth about truncation."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from chaosproxy.proxy.downstream.exchange import ProxyExchange
from tests.conftest import StartProxy

StartUpstream = Callable[[web.Application], Awaitable[str]]


def app_with(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


def hard_reset(request: web.Request) -> None:
    """A real TCP RST from inside the handler."""
    assert request.transport is not None
    sock = request.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    request.transport.abort()


@pytest.fixture
async def hang() -> AsyncIterator[asyncio.Event]:
    """An event upstream handlers wait on; set at teardown so nothing is left hanging."""
    ev = asyncio.Event()
    yield ev
    ev.set()


def assert_error_shape(body: bytes, status: int, rid: str) -> dict[str, object]:
    err = json.loads(body)["error"]
    assert err["code"] == status
    assert err["requestId"] == rid
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["details"], str) and err["details"]
    return dict(err)


async def test_upstream_down_gives_502_json_with_request_id(
    start_proxy: StartProxy, refused_url: str
) -> None:
    rt = await start_proxy(refused_url)
    async with aiohttp.ClientSession() as s, s.get(rt.proxy_url + "/x") as r:
        body = await r.read()
    assert r.status == 502
    assert r.headers["Content-Type"].startswith("application/json")
    err = assert_error_shape(body, 502, r.headers["X-Request-Id"])
    assert err["message"] == "Bad Gateway"


async def test_upstream_down_echoes_the_clients_request_id(
    start_proxy: StartProxy, refused_url: str
) -> None:
    rt = await start_proxy(refused_url)
    async with (
        aiohttp.ClientSession() as s,
        s.get(rt.proxy_url + "/x", headers={"X-Request-Id": "req-42"}) as r,
    ):
        body = await r.read()
    assert r.headers["X-Request-Id"] == "req-42"
    assert_error_shape(body, 502, "req-42")


async def test_upstream_slower_than_timeout_gives_504_json(
    start_upstream: StartUpstream, start_proxy: StartProxy, hang: asyncio.Event
) -> None:
    async def handler(request: web.Request) -> web.Response:
        await hang.wait()
        return web.Response(text="late")

    up = await start_upstream(app_with(handler))
    rt = await start_proxy(up, upstream_timeout=0.3)
    async with aiohttp.ClientSession() as s, s.get(rt.proxy_url + "/slow") as r:
        body = await r.read()
    assert r.status == 504
    err = assert_error_shape(body, 504, r.headers["X-Request-Id"])
    assert err["message"] == "Gateway Timeout"


async def test_upstream_reset_before_headers_gives_502_json(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    async def handler(request: web.Request) -> web.Response:
        hard_reset(request)
        return web.Response()

    up = await start_upstream(app_with(handler))
    rt = await start_proxy(up)
    async with aiohttp.ClientSession() as s, s.get(rt.proxy_url + "/") as r:
        body = await r.read()
    assert r.status == 502
    assert_error_shape(body, 502, r.headers["X-Request-Id"])


async def reset_mid_body(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Length": "1000000"})
    await resp.prepare(request)
    await resp.write(b"x" * 10_000)
    await asyncio.sleep(0.05)  # let the first bytes leave before the reset
    hard_reset(request)
    return resp


async def chunked_reset_mid_body(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse()
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    await resp.write(b"x" * 10_000)
    await asyncio.sleep(0.05)
    hard_reset(request)
    return resp


async def test_upstream_silent_mid_body_past_the_read_timeout_is_a_truncation(
    start_upstream: StartUpstream, start_proxy: StartProxy, hang: asyncio.Event
) -> None:
    async def stall(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_length = 100
        await resp.prepare(request)
        await resp.write(b"x" * 10)
        await hang.wait()
        return resp

    rt = await start_proxy(await start_upstream(app_with(stall)), read_timeout=0.3)
    async with aiohttp.ClientSession() as s, s.get(rt.proxy_url + "/") as r:
        assert r.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await asyncio.wait_for(r.read(), 5)


@pytest.mark.parametrize(
    "upstream_handler",
    [reset_mid_body, chunked_reset_mid_body],
    ids=["content-length", "chunked"],
)
async def test_upstream_reset_mid_body_is_a_truncation_the_client_sees(
    upstream_handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    start_upstream: StartUpstream,
    start_proxy: StartProxy,
) -> None:
    rt = await start_proxy(await start_upstream(app_with(upstream_handler)))
    async with aiohttp.ClientSession() as s, s.get(rt.proxy_url + "/") as r:
        assert r.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await r.read()


async def test_proxy_keeps_serving_after_an_upstream_reset(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/reset":
            return await reset_mid_body(request)
        return web.Response(text="fine")

    up = await start_upstream(app_with(handler))
    rt = await start_proxy(up)
    async with aiohttp.ClientSession() as s:
        async with s.get(rt.proxy_url + "/reset") as r:
            with pytest.raises(aiohttp.ClientPayloadError):
                await r.read()
        for _ in range(3):
            async with s.get(rt.proxy_url + "/ok") as r:
                assert (r.status, await r.text()) == (200, "fine")


async def test_internal_failure_gives_500_json_without_a_stack_trace(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="fine")

    def broken(ex: ProxyExchange) -> None:
        raise RuntimeError("secret internal detail")

    up = await start_upstream(app_with(handler))
    rt = await start_proxy(up)
    rt.core.request_faults = broken  # type: ignore[assignment]
    async with aiohttp.ClientSession() as s, s.get(rt.proxy_url + "/") as r:
        body = await r.read()
    assert r.status == 500
    assert_error_shape(body, 500, r.headers["X-Request-Id"])
    assert b"Traceback" not in body and b"secret internal detail" not in body


async def test_upstream_failure_is_logged_with_the_request_id(
    start_proxy: StartProxy, caplog: pytest.LogCaptureFixture, refused_url: str
) -> None:
    rt = await start_proxy(refused_url)
    with caplog.at_level(logging.WARNING, logger="chaosproxy"):
        async with aiohttp.ClientSession() as s, s.get(rt.proxy_url + "/x") as r:
            await r.read()
    rid = r.headers["X-Request-Id"]
    assert any(rid in rec.getMessage() for rec in caplog.records)


async def test_upstream_failure_log_record_carries_the_request_id_field(
    start_proxy: StartProxy, caplog: pytest.LogCaptureFixture, refused_url: str
) -> None:
    rt = await start_proxy(refused_url)
    with caplog.at_level(logging.WARNING, logger="chaosproxy"):
        async with aiohttp.ClientSession() as s, s.get(rt.proxy_url + "/x") as r:
            await r.read()
    rid = r.headers["X-Request-Id"]
    assert any(getattr(rec, "request_id", None) == rid for rec in caplog.records)


# What a broken or hostile client sends, and the status it gets back.
MALFORMED = {
    "oversized-header": (
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
        431,
    ),
    "oversized-target": (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "too-many-headers": (
        b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n",
        431,
    ),
    "not-http": (b"GARBAGE\r\n\r\n", 400),
    "cl-and-te": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
}


async def raw_exchange(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


@pytest.mark.parametrize("kind", sorted(MALFORMED))
async def test_malformed_request_gets_a_json_error_with_request_id_and_no_traceback(
    kind: str,
    demo_upstream: str,
    start_proxy: StartProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    rt = await start_proxy(demo_upstream)
    data, status = MALFORMED[kind]
    raw = await raw_exchange(rt.proxy_port, data)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].split(b" ")[1] == str(status).encode()
    rid = next(
        line.split(b": ", 1)[1].decode()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"x-request-id:")
    )
    assert_error_shape(body, status, rid)
    assert not [r for r in caplog.records if r.exc_info]
    assert any(rid in r.getMessage() for r in caplog.records)
    async with aiohttp.ClientSession() as s, s.get(rt.proxy_url + "/api/items") as r:
        assert r.status == 200
