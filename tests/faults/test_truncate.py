"""The `truncate` fault: the real Content-Length, then only `bytes` of the body, then FIN."""

from __future__ import annotations

import aiohttp
import pytest

from chaosproxy.faults import build
from chaosproxy.faults.base import Reply
from chaosproxy.faults.truncate import TruncateFault
from tests.faults.conftest import StartProxy, Upstream, pattern
from tests.faults.fakes import FakeExchange, run
from tests.faults.test_reset import raw_get


def truncate(params: dict[str, object]) -> TruncateFault:
    fault = build("truncate", params, "fault")
    assert isinstance(fault, TruncateFault)
    return fault


def test_bytes_accepts_sizes() -> None:
    assert truncate({"bytes": "1KiB"}).keep == 1024


async def test_body_is_cut_and_the_connection_closed() -> None:
    ex = FakeExchange(upstream=(Reply(200, "OK", []), [b"abcd", b"efgh"]))
    await run(truncate({"bytes": 5}), ex)
    assert ex.sent_body == b"abcde" and ex.how_ended == "close"
    assert ex.events == [("truncate", "bytes=5")]


async def test_shorter_body_is_not_touched() -> None:
    ex = FakeExchange(upstream=(Reply(200, "OK", []), [b"abcd"]))
    await run(truncate({"bytes": 4}), ex)
    assert ex.sent_body == b"abcd" and ex.how_ended == "eof" and ex.events == []


async def test_zero_bytes_closes_right_after_the_headers() -> None:
    ex = FakeExchange()
    await run(truncate({}), ex)
    assert ex.sent_status == 200 and ex.sent_body == b"" and ex.how_ended == "close"


async def test_client_gets_the_real_content_length_and_fewer_bytes(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(upstream.url)
    rt.engine.add_rule([truncate({"bytes": 1000})])
    data, error = await raw_get(rt.proxy_url, "/bytes?n=50000")
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Content-Length: 50000\r\n" in head
    assert body == pattern(1000) and error is None  # a clean FIN, not a reset


async def test_aiohttp_client_reports_an_incomplete_payload(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(upstream.url)
    rt.engine.add_rule([truncate({"bytes": 10})])
    async with aiohttp.ClientSession() as s, s.get(rt.proxy_url + "/bytes?n=500") as r:
        assert r.status == 200
        with pytest.raises(aiohttp.ClientPayloadError, match="received 10 of 500 bytes"):
            await r.read()
