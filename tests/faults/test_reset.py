"""The `reset` fault: a real TCP RST at request, after the headers, or mid-body."""

from __future__ import annotations

import asyncio
import errno

import aiohttp
import pytest

from chaosproxy.common.errors import ConfigError
from chaosproxy.faults import build
from chaosproxy.faults.base import Reply
from chaosproxy.faults.reset import ResetFault
from tests.faults.conftest import StartProxy, Upstream, pattern
from tests.faults.fakes import FakeExchange, run


def reset(params: dict[str, object]) -> ResetFault:
    fault = build("reset", params, "fault")
    assert isinstance(fault, ResetFault)
    return fault


async def raw_get(proxy_url: str, path: str) -> tuple[bytes, BaseException | None]:
    """Everything a raw socket receives for one GET, and the error that ended it."""
    host, port = proxy_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    data, error = b"", None
    try:
        async with asyncio.timeout(5):
            while chunk := await reader.read(65536):
                data += chunk
    except OSError as e:
        error = e
    finally:
        writer.close()
    return data, error


# ---------------------------------------------------------------- parameters


def test_after_bytes_accepts_sizes() -> None:
    assert reset({"after_bytes": "2KiB"}).after_bytes == 2048


def test_at_and_after_bytes_together_are_rejected() -> None:
    with pytest.raises(ConfigError, match=r"fault\.reset\.at: give either at or after_bytes"):
        reset({"at": "headers", "after_bytes": 10})


def test_after_zero_bytes_means_after_the_headers() -> None:
    assert reset({"after_bytes": 0}).at == "headers"


# ---------------------------------------------------------------- apply (fake exchange)


async def test_reset_at_request_never_forwards() -> None:
    ex = FakeExchange()
    await run(reset({}), ex)
    assert ex.how_ended == "reset" and ex.upstream_calls == 0
    assert ex.events == [("reset", "at=request")]


async def test_reset_after_headers_flushes_then_resets_before_the_body() -> None:
    ex = FakeExchange()
    await run(reset({"at": "headers"}), ex)
    assert ex.sent_status == 200 and ex.sent_body == b""
    assert ex.flushes == 1 and ex.how_ended == "reset"


async def test_reset_after_bytes_cuts_the_body_exactly() -> None:
    ex = FakeExchange(upstream=(Reply(200, "OK", []), [b"abcd", b"efgh", b"ijkl"]))
    await run(reset({"after_bytes": 6}), ex)
    assert ex.sent_body == b"abcdef" and ex.how_ended == "reset"


async def test_body_shorter_than_after_bytes_ends_normally() -> None:
    ex = FakeExchange(upstream=(Reply(200, "OK", []), [b"abc"]))
    await run(reset({"after_bytes": 3}), ex)
    assert ex.sent_body == b"abc" and ex.how_ended == "eof" and ex.events == []


# ---------------------------------------------------------------- end to end


async def test_client_sees_econnreset_at_request(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(upstream.url)
    rt.engine.add_rule([reset({})])
    data, error = await raw_get(rt.proxy_url, "/bytes?n=100")
    assert data == b""
    assert isinstance(error, ConnectionResetError) and error.errno == errno.ECONNRESET
    assert upstream.hits == []


async def test_aiohttp_client_gets_a_connection_error_at_request(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(upstream.url)
    rt.engine.add_rule([reset({})])
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.ClientOSError) as info:
            async with s.get(rt.proxy_url + "/bytes") as r:
                await r.read()
    assert info.value.errno == errno.ECONNRESET


async def test_client_gets_the_headers_then_econnreset(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(upstream.url)
    rt.engine.add_rule([reset({"at": "headers"})])
    data, error = await raw_get(rt.proxy_url, "/bytes?n=5000")
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"\r\n\r\n")
    assert b"Content-Length: 5000\r\n" in data
    assert isinstance(error, ConnectionResetError)


async def test_client_gets_exactly_after_bytes_then_econnreset(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(upstream.url)
    rt.engine.add_rule([reset({"after_bytes": 100_000})])
    data, error = await raw_get(rt.proxy_url, "/bytes?n=1000000")
    _head, _, body = data.partition(b"\r\n\r\n")
    assert body == pattern(100_000)
    assert isinstance(error, ConnectionResetError)


async def test_aiohttp_client_sees_the_reset_mid_body(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(upstream.url)
    rt.engine.add_rule([reset({"after_bytes": 2048})])
    async with aiohttp.ClientSession() as s, s.get(rt.proxy_url + "/bytes?n=65536") as r:
        assert r.status == 200
        with pytest.raises(aiohttp.ClientPayloadError, match="Connection reset by peer"):
            await r.read()
