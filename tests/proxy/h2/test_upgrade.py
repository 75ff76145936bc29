"""`Upgrade: h2c` on the plain listener: `curl --http2` and `nghttp -u` get HTTP/2 through the
proxy, the upgrading request answered as stream 1 with the same status, headers and body as the
same upstream gives directly; faults and events apply to it; what is not a valid h2c upgrade is
answered over HTTP/1.1 (or refused, with a body) as docs/http2.md says; WebSocket still relays.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import shutil
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from chaosproxy.common.events import FaultInjected, RequestDone
from chaosproxy.faults import build
from chaosproxy.proxy.downstream.request import RequestHead
from chaosproxy.proxy.h2.upgrade import stream_headers
from tests.conftest import StartProxy
from tests.proxy.downstream.test_websocket import ws_app
from tests.proxy.h2.conftest import Seen
from tests.proxy.h2.test_curl import comparable, curl, nghttpd  # noqa: F401 (a fixture)
from tests.proxy.h2.test_tls_alpn import cert_files

StartUpstream = Callable[[web.Application], Awaitable[str]]
# HTTP2-Settings as curl sends it (MAX_CONCURRENT_STREAMS 100, INITIAL_WINDOW_SIZE, ENABLE_PUSH 0)
SETTINGS = b"AAMAAABkAAQCAAAAAAIAAAAA"
UPGRADE = b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (make tools)")


async def curl_upgrade(*args: str) -> tuple[str, int, list[tuple[str, str]], bytes]:
    """`curl --http2` on an http:// URL (an h2c upgrade): the HTTP version of the answer, and
    the status and headers of its last head (after the 101), and the body."""
    proc = await asyncio.create_subprocess_exec(
        "curl",
        "-sS",
        "--noproxy",
        "*",
        "--http2",
        "-D",
        "/dev/stderr",
        "-o",
        "-",
        "-w",
        "\n%{http_version}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, head = await proc.communicate()
    assert proc.returncode == 0, head.decode(errors="replace")
    body, _, version = out.rpartition(b"\n")
    blocks = [b for b in head.decode("latin-1").split("\r\n\r\n") if b.strip()]
    lines = blocks[-1].split("\r\n")
    assert blocks[0].startswith("HTTP/1.1 101"), blocks[0]
    headers = [
        (k.strip().lower(), v.strip())
        for k, _, v in (line.partition(":") for line in lines[1:] if line)
    ]
    return version.decode(), int(lines[0].split()[1]), headers, body


_RECV = re.compile(r"recv \(stream_id=(\d+)\) ([^:]\S*|:\w+): (.*)")


async def nghttp(*args: str) -> tuple[int, list[tuple[str, str]], bytes, str]:
    """nghttp -v: status and response headers of the request's stream (as its frame log
    shows them), the output, and the log."""
    proc = await asyncio.create_subprocess_exec(
        "nghttp",
        "-v",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err
    # -v writes the frame log and the body to stdout: the body is what is not a log line
    text = out.decode("latin-1")
    found = [(m[1], m[2], m[3]) for m in _RECV.finditer(text)]
    sid = next(s for s, k, _ in found if k == ":status")  # the request's stream (1 after -u)
    headers = [(k, v) for s, k, v in found if s == sid]
    status = int(dict(headers)[":status"])
    return status, [h for h in headers if not h[0].startswith(":")], out, text


async def raw_exchange(port: int, request: bytes) -> bytes:
    """Send `request` on a fresh connection and read until the proxy closes it."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(request)
    await w.drain()
    data = await r.read()
    w.close()
    return data


@pytest.fixture
async def h1_upstream(start_upstream: StartUpstream) -> tuple[str, list[dict[str, str]]]:
    """An HTTP/1.1 upstream: `/blob` 3 MiB, `/echo` the sha256 of the body, `/seen` what it
    was sent; and the headers of every request it got."""
    blob = os.urandom(3 * 1024 * 1024 + 17)
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(dict(request.headers))
        if request.path == "/blob":
            return web.Response(body=blob, headers={"X-Up": "yes", "Cache-Control": "no-store"})
        data = await request.read()
        return web.Response(
            text=f"{request.method} {request.path} {hashlib.sha256(data).hexdigest()}"
        )

    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", handler)
    return await start_upstream(app), seen


@pytest.mark.parametrize("path", ["/hello.txt", "/big.bin", "/missing"])
async def test_curl_http2_upgrade_same_answer_as_direct(
    nghttpd: tuple[str, Path],  # noqa: F811
    start_proxy: StartProxy,
    path: str,
) -> None:
    """nghttpd itself does not upgrade: its answer over HTTP/2 with prior knowledge is the
    reference, the same HTTP/2 answer the upgraded stream 1 must carry."""
    url, _ = nghttpd
    rt = await start_proxy(url, upstream_h2=True)
    direct = await curl("--http2-prior-knowledge", url + path)
    version, status, headers, body = await curl_upgrade(rt.proxy_url + path)
    assert version == "2"
    assert status == direct[0]
    assert comparable(headers) == comparable(direct[1])
    assert hashlib.sha256(body).digest() == hashlib.sha256(direct[2]).digest()
    assert any(k == "x-request-id" for k, _ in headers)


async def test_curl_http2_upgrade_to_an_http1_upstream(
    h1_upstream: tuple[str, list[dict[str, str]]], start_proxy: StartProxy
) -> None:
    url, seen = h1_upstream
    rt = await start_proxy(url)
    done = Seen()
    rt.bus.subscribe(RequestDone, done.add)
    direct = await curl("--http1.1", url + "/blob")
    version, status, headers, body = await curl_upgrade(rt.proxy_url + "/blob")
    assert (version, status) == ("2", direct[0])
    assert body == direct[2]
    hop = {"connection", "keep-alive", "transfer-encoding"}
    assert comparable(headers) == [h for h in comparable(direct[1]) if h[0] not in hop]
    # the upstream got a plain request: the upgrade was the proxy's hop only
    assert not {"Upgrade", "HTTP2-Settings"} & set(seen[-1])
    await done.until(1)
    assert done[0].protocol == "h2" and done[0].status == 200


async def test_upgrade_with_a_body_reads_it_whole_first(
    h1_upstream: tuple[str, list[dict[str, str]]], start_proxy: StartProxy, tmp_path: Path
) -> None:
    url, _ = h1_upstream
    rt = await start_proxy(url)
    data = os.urandom(200 * 1024)  # under the 256 KiB bound
    (tmp_path / "up.bin").write_bytes(data)
    version, status, _, body = await curl_upgrade(
        "--data-binary", f"@{tmp_path / 'up.bin'}", rt.proxy_url + "/echo"
    )
    assert (version, status) == ("2", 200)
    assert body == f"POST /echo {hashlib.sha256(data).hexdigest()}".encode()


async def test_second_request_rides_the_upgraded_connection(
    h1_upstream: tuple[str, list[dict[str, str]]], start_proxy: StartProxy
) -> None:
    url, _ = h1_upstream
    rt = await start_proxy(url)
    done = Seen()
    rt.bus.subscribe(RequestDone, done.add)
    proc = await asyncio.create_subprocess_exec(
        "curl",
        "-sS",
        "--noproxy",
        "*",
        "--http2",
        "-w",
        "|%{http_version} %{num_connects}\n",
        rt.proxy_url + "/one",
        rt.proxy_url + "/two",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err
    lines = out.decode().splitlines()
    assert lines[0].startswith("GET /one ") and lines[0].endswith("|2 1")
    assert lines[1].startswith("GET /two ") and lines[1].endswith("|2 0")  # no new connection
    await done.until(2)
    assert [d.protocol for d in done] == ["h2", "h2"]


async def test_a_fault_rule_applies_to_the_upgraded_stream(
    h1_upstream: tuple[str, list[dict[str, str]]], start_proxy: StartProxy
) -> None:
    url, seen = h1_upstream
    rt = await start_proxy(url)
    injected = Seen()
    rt.bus.subscribe(FaultInjected, injected.add)
    rt.engine.add_rule([build("error", {"status": 503}, "f")], match=lambda v: v.path == "/x")
    version, status, headers, body = await curl_upgrade(rt.proxy_url + "/x")
    assert (version, status) == ("2", 503)
    assert ("content-type", "application/json") in headers
    assert b"503" in body
    await injected.until(1)
    assert not seen  # never went upstream
    # the rule picks its request only: another path on an upgraded connection passes
    version, status, _, _ = await curl_upgrade(rt.proxy_url + "/y")
    assert (version, status) == ("2", 200)


async def test_nghttp_upgrade_same_answer_as_direct(
    nghttpd: tuple[str, Path],  # noqa: F811
    start_proxy: StartProxy,
) -> None:
    need("nghttp")
    url, root = nghttpd
    rt = await start_proxy(url, upstream_h2=True)
    d_status, d_headers, _, _ = await nghttp(url + "/hello.txt")
    p_status, p_headers, _, log = await nghttp("-u", rt.proxy_url + "/hello.txt")
    assert "HTTP Upgrade response" in log and "HTTP/1.1 101" in log
    assert p_status == d_status == 200
    assert comparable(p_headers) == comparable(d_headers)
    # bodies: nghttp -u without -v writes the body alone
    proc = await asyncio.create_subprocess_exec(
        "nghttp",
        "-u",
        rt.proxy_url + "/big.bin",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err
    assert out == (root / "big.bin").read_bytes()


def settings_header(*pairs: tuple[int, int]) -> bytes:
    payload = b"".join(struct.pack(">HI", k, v) for k, v in pairs)
    return base64.urlsafe_b64encode(payload).rstrip(b"=")


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(b"", id="missing"),
        pytest.param(b"HTTP2-Settings: !!!!AAAA\r\n", id="not-base64url"),
        pytest.param(b"HTTP2-Settings: AAMAAABkAA\r\n", id="not-whole-settings"),
        pytest.param(b"HTTP2-Settings: AAMAAABk\r\nHTTP2-Settings: AAMAAABk\r\n", id="twice"),
        pytest.param(b"HTTP2-Settings: " + settings_header((2, 2)) + b"\r\n", id="push-2"),
        pytest.param(b"HTTP2-Settings: " + settings_header((4, 2**31)) + b"\r\n", id="window"),
        pytest.param(b"HTTP2-Settings: " + settings_header((5, 100)) + b"\r\n", id="frame-size"),
    ],
)
async def test_malformed_settings_answered_over_http1(
    h1_upstream: tuple[str, list[dict[str, str]]], start_proxy: StartProxy, extra: bytes
) -> None:
    """No upgrade (RFC 7540 §3.2.1): the request is answered over HTTP/1.1, as if it had not
    asked, and the connection closes after the answer."""
    url, seen = h1_upstream
    rt = await start_proxy(url)
    req = b"GET /plain HTTP/1.1\r\nHost: x\r\n" + UPGRADE + extra + b"\r\n"
    answer = await raw_exchange(rt.proxy_port, req)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), answer[:200]  # and closed after it (EOF read)
    assert body.startswith(b"GET /plain ")
    assert not {"Upgrade", "HTTP2-Settings", "Connection"} & set(seen[-1])


async def test_h2c_upgrade_without_http2_settings_in_connection_is_not_taken(
    h1_upstream: tuple[str, list[dict[str, str]]], start_proxy: StartProxy
) -> None:
    url, _ = h1_upstream
    rt = await start_proxy(url)
    req = (
        b"GET /p HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
        b"HTTP2-Settings: " + SETTINGS + b"\r\n\r\n"
    )
    assert (await raw_exchange(rt.proxy_port, req)).startswith(b"HTTP/1.1 200 ")


async def test_chunked_or_large_upgrade_body_is_refused(
    h1_upstream: tuple[str, list[dict[str, str]]], start_proxy: StartProxy
) -> None:
    url, seen = h1_upstream
    rt = await start_proxy(url)
    base = b"POST /e HTTP/1.1\r\nHost: x\r\n" + UPGRADE + b"HTTP2-Settings: " + SETTINGS + b"\r\n"
    chunked = base + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    large = base + b"Content-Length: %d\r\n\r\n" % (256 * 1024 + 1)
    for req in (chunked, large):
        answer = await raw_exchange(rt.proxy_port, req)
        assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
        assert b'"requestId"' in answer
    assert not seen


async def test_h2c_over_tls_is_ignored(
    h1_upstream: tuple[str, list[dict[str, str]]], start_proxy: StartProxy, tmp_path: Path
) -> None:
    """RFC 7540 §3.3: h2c is for cleartext only; over TLS the token is ignored."""
    url, seen = h1_upstream
    _, files = cert_files(tmp_path)
    rt = await start_proxy(url, tls_cert=files["cert"], tls_key=files["key"])
    proc = await asyncio.create_subprocess_exec(
        "curl",
        "-sS",
        "--noproxy",
        "*",
        "--http1.1",
        "--cacert",
        files["ca"],
        "-H",
        "Connection: Upgrade, HTTP2-Settings",
        "-H",
        "Upgrade: h2c",
        "-H",
        f"HTTP2-Settings: {SETTINGS.decode()}",
        "-w",
        "|%{http_version} %{http_code}",
        rt.proxy_url + "/tls",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err
    assert out.decode().startswith("GET /tls ") and out.decode().endswith("|1.1 200")
    assert "Upgrade" not in seen[-1]


async def test_websocket_upgrade_still_relays(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(await start_upstream(ws_app()))
    async with aiohttp.ClientSession() as s, s.ws_connect(rt.proxy_url + "/ws") as ws:
        assert await ws.receive_str(timeout=5) == "hello from upstream"
        await ws.send_str("up")
        assert await ws.receive_str(timeout=5) == "echo:up"


async def test_other_connections_unaffected_by_a_client_gone_mid_body(
    h1_upstream: tuple[str, list[dict[str, str]]], start_proxy: StartProxy
) -> None:
    """A client that asks to upgrade with a body and leaves before sending it: the proxy
    counts the request out and serves the next client."""
    url, _ = h1_upstream
    rt = await start_proxy(url)
    r, w = await asyncio.open_connection("127.0.0.1", rt.proxy_port)
    w.write(
        b"POST /e HTTP/1.1\r\nHost: x\r\n"
        + UPGRADE
        + b"HTTP2-Settings: "
        + SETTINGS
        + b"\r\nContent-Length: 100\r\n\r\nonly part"
    )
    await w.drain()
    w.close()
    assert await r.read() == b""
    version, status, _, _ = await curl_upgrade(rt.proxy_url + "/after")
    assert (version, status) == ("2", 200)
    assert rt.core.load.inflight == 0  # the abandoned request left the count


def test_stream_one_headers_from_the_http1_head() -> None:
    """Pseudo-headers from the request line and Host (an absolute-form target's authority
    first), names lower-case, what HTTP/2 forbids left out but `te: trailers`."""
    raw = [
        (b"Host", b"ignored.example"),
        (b"Connection", b"Upgrade, HTTP2-Settings, X-Hop"),
        (b"Upgrade", b"h2c"),
        (b"HTTP2-Settings", SETTINGS),
        (b"X-Hop", b"1"),
        (b"TE", b"trailers"),
        (b"Keep-Alive", b"timeout=5"),
        (b"X-Kept", b"Value As Sent"),
    ]
    head = RequestHead("GET", "http://svc.example:8080?q=1", "1.1", raw, "127.0.0.1", 0.0)
    assert stream_headers(head) == [
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":authority", b"svc.example:8080"),
        (b":path", b"/?q=1"),
        (b"te", b"trailers"),
        (b"x-kept", b"Value As Sent"),
    ]
