"""Pass-through fidelity: what a client receives through the proxy is what the service sent."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import zlib
from collections.abc import Awaitable, Callable

import aiohttp
import yarl
from aiohttp import web

from tests.conftest import StartProxy
from tests.proxy.rawhttp import raw_request, read_head

StartUpstream = Callable[[web.Application], Awaitable[str]]


BLOB = bytes(range(256)) * 1024  # 256 KiB, incompressible enough to need several chunks


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def app_with(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


async def echo_request(request: web.Request) -> web.Response:
    """What the upstream saw: method, raw target, headers in order, body digest."""
    body = await request.read()
    seen = {
        "method": request.method,
        "target": request.raw_path,
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.raw_headers],
        "sha256": sha(body),
        "length": len(body),
    }
    return web.json_response(seen)


def seen_headers(seen: dict[str, object], name: str) -> list[str]:
    pairs = seen["headers"]
    assert isinstance(pairs, list)
    return [v for k, v in pairs if k.lower() == name.lower()]


async def upstream_sees(
    start_upstream: StartUpstream,
    start_proxy: StartProxy,
    headers: dict[str, str],
    **proxy_options: object,
) -> tuple[dict[str, object], str]:
    """GET / through a proxy (with `proxy_options`) in front of an echoing upstream: what the
    upstream saw, and the upstream's URL."""
    up = await start_upstream(app_with(echo_request))
    rt = await start_proxy(up, **proxy_options)
    async with aiohttp.ClientSession() as s, s.get(rt.proxy_url + "/", headers=headers) as r:
        seen = await r.json()
    return seen, up


async def get_both(
    upstream: str, proxy: str, path: str, method: str = "GET"
) -> tuple[aiohttp.ClientResponse, bytes, aiohttp.ClientResponse, bytes]:
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        async with s.request(method, upstream + path) as d:
            direct = await d.read()
        async with s.request(method, proxy + path) as p:
            proxied = await p.read()
    return d, direct, p, proxied


# ---------------------------------------------------------------- bodies and framing


async def test_gzip_body_arrives_byte_identical_and_still_encoded(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    payload = gzip.compress(b'{"hello": "world"}' * 1000)

    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            body=payload, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
        )

    up = await start_upstream(app_with(handler))
    rt = await start_proxy(up)
    _, direct, p, proxied = await get_both(up, rt.proxy_url, "/data")
    assert p.headers["Content-Encoding"] == "gzip"
    assert sha(proxied) == sha(direct) == sha(payload)


async def test_br_body_arrives_byte_identical_and_still_encoded(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    payload = zlib.compress(BLOB)  # opaque bytes: the proxy must not try to decode them

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=payload, headers={"Content-Encoding": "br"})

    up = await start_upstream(app_with(handler))
    rt = await start_proxy(up)
    async with (
        aiohttp.ClientSession(auto_decompress=False) as s,
        s.get(rt.proxy_url + "/x", headers={"Accept-Encoding": "br"}) as r,
    ):
        body = await r.read()
    assert r.headers["Content-Encoding"] == "br"
    assert sha(body) == sha(payload)


async def test_chunked_response_streams_through_with_identical_body(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(0, len(BLOB), 10_000):
            await resp.write(BLOB[i : i + 10_000])
        await resp.write_eof()
        return resp

    up = await start_upstream(app_with(handler))
    rt = await start_proxy(up)
    _, _, p, proxied = await get_both(up, rt.proxy_url, "/stream")
    assert p.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in p.headers
    assert sha(proxied) == sha(BLOB)


async def test_content_length_response_keeps_its_length(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=BLOB)

    up = await start_upstream(app_with(handler))
    rt = await start_proxy(up)
    _, _, p, proxied = await get_both(up, rt.proxy_url, "/blob")
    assert p.headers["Content-Length"] == str(len(BLOB))
    assert "Transfer-Encoding" not in p.headers
    assert sha(proxied) == sha(BLOB)


async def test_request_body_arrives_upstream_byte_identical(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    up = await start_upstream(app_with(echo_request))
    rt = await start_proxy(up)
    async with aiohttp.ClientSession() as s, s.post(rt.proxy_url + "/u", data=BLOB) as r:
        seen = await r.json()
    assert seen["sha256"] == sha(BLOB)
    assert seen_headers(seen, "Content-Length") == [str(len(BLOB))]


# ---------------------------------------------------------------- headers


async def test_several_set_cookie_headers_all_arrive(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    async def handler(request: web.Request) -> web.Response:
        resp = web.Response(text="ok")
        for c in ("a=1; Path=/", "b=2; HttpOnly", "c=3, with comma; Secure"):
            resp.headers.add("Set-Cookie", c)
        return resp

    up = await start_upstream(app_with(handler))
    rt = await start_proxy(up)
    async with aiohttp.ClientSession() as s, s.get(rt.proxy_url + "/") as r:
        cookies = r.headers.getall("Set-Cookie")
    assert cookies == ["a=1; Path=/", "b=2; HttpOnly", "c=3, with comma; Secure"]


async def test_response_header_order_is_kept(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    names = ["X-Zeta", "X-Alpha", "X-Mid", "X-Alpha", "X-Beta"]

    async def handler(request: web.Request) -> web.Response:
        resp = web.Response(text="ok")
        for i, n in enumerate(names):
            resp.headers.add(n, str(i))
        return resp

    up = await start_upstream(app_with(handler))
    rt = await start_proxy(up)
    resp = await raw_request(
        rt.proxy_url, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    got = [(k, v) for k, v in resp.headers if k.startswith("X-") and k != "X-Request-Id"]
    assert got == [(n, str(i)) for i, n in enumerate(names)]


async def test_request_header_order_and_repeats_are_kept(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    up = await start_upstream(app_with(echo_request))
    rt = await start_proxy(up, forwarded_headers=False)
    resp = await raw_request(
        rt.proxy_url,
        b"GET / HTTP/1.1\r\nHost: x\r\nX-B: 1\r\nX-A: 2\r\nX-B: 3\r\nConnection: close\r\n\r\n",
    )
    seen = json.loads(resp.body)
    custom = [(k, v) for k, v in seen["headers"] if k in ("X-A", "X-B")]
    assert custom == [("X-B", "1"), ("X-A", "2"), ("X-B", "3")]


# ---------------------------------------------------------------- body-less responses


async def test_head_has_no_body_and_keeps_content_length(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=BLOB)

    up = await start_upstream(app_with(handler))
    rt = await start_proxy(up)
    req = b"HEAD /h HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    direct = await raw_request(up, req)
    proxied = await raw_request(rt.proxy_url, req)
    assert proxied.status == 200
    assert proxied.body == b""
    assert proxied.header("Content-Length") == direct.header("Content-Length") == str(len(BLOB))


async def test_204_has_no_body(start_upstream: StartUpstream, start_proxy: StartProxy) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=204)

    up = await start_upstream(app_with(handler))
    rt = await start_proxy(up)
    resp = await raw_request(
        rt.proxy_url, b"DELETE /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert resp.status == 204
    assert resp.body == b""
    assert resp.header("Transfer-Encoding") is None


async def test_304_has_no_body_and_keeps_etag(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=304, headers={"ETag": '"v1"'})

    up = await start_upstream(app_with(handler))
    rt = await start_proxy(up)
    resp = await raw_request(
        rt.proxy_url,
        b'GET /x HTTP/1.1\r\nHost: x\r\nIf-None-Match: "v1"\r\nConnection: close\r\n\r\n',
    )
    assert resp.status == 304
    assert resp.body == b""
    assert resp.header("ETag") == '"v1"'


async def test_expect_100_continue_gets_100_then_the_final_response(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    up = await start_upstream(app_with(echo_request))
    rt = await start_proxy(up)
    host, port = rt.proxy_url.split("//")[1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        async with asyncio.timeout(10):
            writer.write(
                b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
            )
            status, _ = await read_head(reader)
            assert status == 100
            writer.write(b"hello")
            status, _ = await read_head(reader)
            body = await reader.read()
    finally:
        writer.close()
    assert status == 200
    assert json.loads(body)["sha256"] == sha(b"hello")


# ---------------------------------------------------------------- targets


async def assert_target_passes_verbatim(
    start_upstream: StartUpstream, start_proxy: StartProxy, target: str
) -> None:
    up = await start_upstream(app_with(echo_request))
    rt = await start_proxy(up)
    resp = await raw_request(
        rt.proxy_url,
        f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
    )
    assert resp.status == 200
    assert json.loads(resp.body)["target"] == target


async def test_query_encoded_slash_passes_verbatim(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    await assert_target_passes_verbatim(start_upstream, start_proxy, "/a%2Fb?path=x%2Fy")


async def test_query_space_as_percent_20_and_plus_stay_distinct(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    await assert_target_passes_verbatim(start_upstream, start_proxy, "/s?q=a%20b&r=c+d")


async def test_query_repeated_keys_keep_their_order(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    await assert_target_passes_verbatim(start_upstream, start_proxy, "/r?k=2&k=1&j=&k=3")


async def test_query_raw_semicolons_pass_verbatim(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    await assert_target_passes_verbatim(start_upstream, start_proxy, "/m;v=1?a=1;b=2")


async def test_query_percent_encoded_unicode_passes_verbatim(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    await assert_target_passes_verbatim(
        start_upstream, start_proxy, "/%C3%A9t%C3%A9?q=%E2%9C%93&lower=%c3%a9"
    )


async def test_redirect_is_passed_back_not_followed(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    async def handler(request: web.Request) -> web.Response:
        if request.path == "/old":
            return web.Response(status=302, headers={"Location": "/new"})
        return web.Response(text="followed")

    up = await start_upstream(app_with(handler))
    rt = await start_proxy(up)
    async with (
        aiohttp.ClientSession() as s,
        s.get(rt.proxy_url + "/old", allow_redirects=False) as r,
    ):
        body = await r.read()
    assert r.status == 302
    assert r.headers["Location"] == "/new"
    assert b"followed" not in body


# ---------------------------------------------------------------- hop-by-hop


async def test_hop_by_hop_request_headers_are_not_forwarded(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    up = await start_upstream(app_with(echo_request))
    rt = await start_proxy(up)
    resp = await raw_request(
        rt.proxy_url,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close, X-Private\r\nX-Private: secret\r\n"
        b"Keep-Alive: timeout=5\r\nProxy-Authorization: Basic eA==\r\nProxy-Foo: 1\r\n"
        b"TE: trailers\r\nTrailer: X-Sum\r\nUpgrade: h2c\r\nX-Kept: yes\r\n\r\n",
    )
    seen = json.loads(resp.body)
    names = {k.lower() for k, _ in seen["headers"]}
    dropped = {"x-private", "keep-alive", "proxy-authorization", "proxy-foo", "te", "trailer"}
    assert not names & (dropped | {"upgrade"})
    assert seen_headers(seen, "Connection") in ([], ["keep-alive"])
    assert seen_headers(seen, "X-Kept") == ["yes"]


async def test_hop_by_hop_response_headers_are_not_forwarded(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            text="ok",
            headers={
                "Connection": "X-Private",
                "X-Private": "secret",
                "Keep-Alive": "timeout=99",
                "Proxy-Authenticate": "Basic",
                "Trailer": "X-Sum",
                "Upgrade": "h2c",
                "X-Kept": "yes",
            },
        )

    up = await start_upstream(app_with(handler))
    rt = await start_proxy(up)
    resp = await raw_request(
        rt.proxy_url, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    names = {k.lower() for k, _ in resp.headers}
    assert not names & {"x-private", "keep-alive", "proxy-authenticate", "trailer", "upgrade"}
    assert resp.header("X-Kept") == "yes"
    assert resp.body == b"ok"


# ---------------------------------------------------------------- forwarding headers


async def test_forwarded_headers_are_added(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    seen, _ = await upstream_sees(start_upstream, start_proxy, {"Host": "shop.test"})
    assert seen_headers(seen, "X-Forwarded-For") == ["127.0.0.1"]
    assert seen_headers(seen, "X-Forwarded-Proto") == ["http"]
    assert seen_headers(seen, "X-Forwarded-Host") == ["shop.test"]


async def test_existing_x_forwarded_for_is_appended_to(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    seen, _ = await upstream_sees(start_upstream, start_proxy, {"X-Forwarded-For": "203.0.113.7"})
    assert seen_headers(seen, "X-Forwarded-For") == ["203.0.113.7, 127.0.0.1"]


async def test_forwarded_headers_can_be_switched_off(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    seen, _ = await upstream_sees(
        start_upstream, start_proxy, {"X-Forwarded-For": "203.0.113.7"}, forwarded_headers=False
    )
    assert seen_headers(seen, "X-Forwarded-For") == ["203.0.113.7"]
    assert seen_headers(seen, "X-Forwarded-Proto") == []
    assert seen_headers(seen, "X-Forwarded-Host") == []


async def test_host_is_preserved_by_default(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    seen, _ = await upstream_sees(start_upstream, start_proxy, {"Host": "shop.test:8443"})
    assert seen_headers(seen, "Host") == ["shop.test:8443"]


async def test_rewrite_host_sends_the_upstreams_host(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    seen, up = await upstream_sees(
        start_upstream, start_proxy, {"Host": "shop.test"}, rewrite_host=True
    )
    assert seen_headers(seen, "Host") == [yarl.URL(up).raw_authority]


# ---------------------------------------------------------------- request ids


async def test_client_request_id_is_echoed_and_forwarded(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    up = await start_upstream(app_with(echo_request))
    rt = await start_proxy(up)
    async with (
        aiohttp.ClientSession() as s,
        s.get(rt.proxy_url + "/", headers={"X-Request-Id": "abc-123"}) as r,
    ):
        seen = await r.json()
    assert r.headers.getall("X-Request-Id") == ["abc-123"]
    assert seen_headers(seen, "X-Request-Id") == ["abc-123"]


async def test_request_id_is_generated_returned_and_forwarded(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    up = await start_upstream(app_with(echo_request))
    rt = await start_proxy(up)
    async with aiohttp.ClientSession() as s:
        async with s.get(rt.proxy_url + "/") as r1:
            seen = await r1.json()
        async with s.get(rt.proxy_url + "/") as r2:
            await r2.read()
    rid = r1.headers["X-Request-Id"]
    assert rid and rid != r2.headers["X-Request-Id"]
    assert seen_headers(seen, "X-Request-Id") == [rid]


async def test_upstream_request_id_wins_on_the_response(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="ok", headers={"X-Request-Id": request.headers["X-Request-Id"]})

    up = await start_upstream(app_with(handler))
    rt = await start_proxy(up)
    async with (
        aiohttp.ClientSession() as s,
        s.get(rt.proxy_url + "/", headers={"X-Request-Id": "from-client"}) as r,
    ):
        await r.read()
    assert r.headers.getall("X-Request-Id") == ["from-client"]
