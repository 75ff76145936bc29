"""The `malformed` fault: bytes an HTTP client cannot parse."""

from __future__ import annotations

import aiohttp
import pytest

from chaosproxy.common.errors import ConfigError
from chaosproxy.faults import build
from chaosproxy.faults.base import Reply
from chaosproxy.faults.malformed import BAD_CHUNK, GARBAGE_SIZE, MalformedFault
from tests.faults.conftest import StartProxy, Upstream
from tests.faults.fakes import FakeExchange, run
from tests.faults.test_reset import raw_get


def malformed(params: dict[str, object]) -> MalformedFault:
    fault = build("malformed", params, "fault")
    assert isinstance(fault, MalformedFault)
    return fault


def test_unknown_kind_lists_the_kinds() -> None:
    with pytest.raises(ConfigError, match=r"fault\.malformed\.kind: must be one of garbage"):
        malformed({"kind": "weird"})


async def test_garbage_is_seeded_random_bytes_then_close() -> None:
    a, b = FakeExchange(seed=3), FakeExchange(seed=3)
    await run(malformed({}), a)
    await run(malformed({}), b)
    assert len(a.raw) == GARBAGE_SIZE and a.raw == b.raw and a.how_ended == "close"
    assert a.upstream_calls == 0


async def test_bad_chunk_drops_content_length_and_appends_a_corrupt_chunk() -> None:
    reply = Reply(200, "OK", [("Content-Length", "6"), ("Content-Type", "text/plain")])
    ex = FakeExchange(upstream=(reply, [b"abc", b"def"]))
    await run(malformed({"kind": "bad_chunk"}), ex)
    assert ex.sent_headers == [("Content-Type", "text/plain")]
    assert ex.sent_body == b"abc" and ex.raw == BAD_CHUNK and ex.how_ended == "close"


async def test_client_fails_to_parse_garbage(upstream: Upstream, start_proxy: StartProxy) -> None:
    rt = await start_proxy(upstream.url)
    rt.engine.add_rule([malformed({"kind": "garbage"})])
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.ClientResponseError, match=r"Invalid|Bad|Expected"):
            await s.get(rt.proxy_url + "/bytes")


async def test_client_rejects_a_bad_status_line(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(upstream.url)
    rt.engine.add_rule([malformed({"kind": "bad_status_line"})])
    data, _ = await raw_get(rt.proxy_url, "/bytes")
    assert data.startswith(b"HTTP/1.1 OK 200")
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.ClientResponseError, match="status"):
            await s.get(rt.proxy_url + "/bytes")


async def test_bad_chunk_reaches_the_client_as_a_chunked_body_it_cannot_decode(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(upstream.url)
    rt.engine.add_rule([malformed({"kind": "bad_chunk"})])
    data, _ = await raw_get(rt.proxy_url, "/bytes?n=100")
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head and b"Content-Length" not in head
    assert body.startswith(b"64\r\n") and body.endswith(BAD_CHUNK)
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.ClientError, match="chunk size"):
            async with s.get(rt.proxy_url + "/bytes?n=100000") as r:
                await r.read()
