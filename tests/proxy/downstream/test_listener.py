"""The proxy's own HTTP/1.1 listener: the response head as the upstream sent it, pipelining,
100-continue, limits and timeouts on what clients send, and disconnects that stop the work."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from chaosproxy.common.events import FaultInjected, RequestDone
from chaosproxy.faults import build
from tests.conftest import StartProxy
from tests.proxy.rawhttp import _host_port, raw_request, read_head, reset

StartUpstream = Callable[[web.Application], Awaitable[str]]


@dataclass
class RawUpstream:
    """A raw-socket upstream: answers every request with `response`, byte for byte; records
    each request head and whether its connection was closed by the other side."""

    response: bytes
    heads: list[bytes] = field(default_factory=list)
    hold: bool = False  # never answer: wait for the peer to close instead
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    peer_closed: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                self.arrived.set()
                if self.hold:
                    await reader.read()  # returns b"" once the proxy closes its side
                    self.peer_closed.set()
                    return
                writer.write(self.response)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            self.peer_closed.set()
        finally:
            writer.close()


@pytest.fixture
async def raw_upstream() -> AsyncIterator[Callable[..., Awaitable[RawUpstream]]]:
    servers: list[asyncio.Server] = []

    async def start(response: bytes = b"", hold: bool = False) -> RawUpstream:
        up = RawUpstream(response, hold=hold)
        server = await asyncio.start_server(up.serve, "127.0.0.1", 0)
        servers.append(server)
        up.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        return up

    yield start
    for s in servers:
        s.close()


async def exchange(url: str, request: bytes) -> bytes:
    """Send `request` on a fresh connection; everything the proxy sends until it closes."""
    host, port = _host_port(url)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        async with asyncio.timeout(10):
            writer.write(request)
            await writer.drain()
            return await reader.read()
    finally:
        writer.close()


def head_lines(raw: bytes) -> list[str]:
    head, _, _ = raw.partition(b"\r\n\r\n")
    return head.decode("latin-1").split("\r\n")


# ---------------------------------------------------------------- the response head


async def test_no_header_is_added_to_a_bare_upstream_response(
    raw_upstream: Callable[..., Awaitable[RawUpstream]], start_proxy: StartProxy
) -> None:
    up = await raw_upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    rt = await start_proxy(up.url)
    raw = await exchange(rt.proxy_url, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    lines = head_lines(raw)
    rid = [line for line in lines if line.startswith("X-Request-Id: ")]
    assert len(rid) == 1
    assert [line for line in lines if line not in rid] == ["HTTP/1.1 200 OK", "Content-Length: 2"]
    assert raw.endswith(b"\r\n\r\nok")


async def test_reason_phrase_header_case_order_and_repeats_are_kept(
    raw_upstream: Callable[..., Awaitable[RawUpstream]], start_proxy: StartProxy
) -> None:
    sent = [
        "HTTP/1.1 299 Quite Fine Thanks",
        "x-lower: 1",
        "X-UPPER: 2",
        "Set-Cookie: a=1",
        "x-MiXeD: 3",
        "Set-Cookie: b=2",
        "Content-Length: 2",
    ]
    up = await raw_upstream(("\r\n".join(sent) + "\r\n\r\nok").encode())
    rt = await start_proxy(up.url)
    raw = await exchange(rt.proxy_url, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    lines = [line for line in head_lines(raw) if not line.startswith("X-Request-Id: ")]
    assert lines == sent


async def test_a_proxy_made_error_carries_no_date_or_server(
    start_proxy: StartProxy, refused_url: str
) -> None:
    rt = await start_proxy(refused_url)
    resp = await raw_request(
        rt.proxy_url, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert resp.status == 502
    names = {k.lower() for k, _ in resp.headers}
    assert names == {"content-type", "content-length", "x-request-id"}


# ---------------------------------------------------------------- connections


def path_app() -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(text=f"{request.path}:{len(body)}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


async def read_responses(reader: asyncio.StreamReader, n: int) -> list[tuple[int, bytes]]:
    out = []
    for _ in range(n):
        status, headers = await read_head(reader)
        length = int(dict((k.lower(), v) for k, v in headers)["content-length"])
        out.append((status, await reader.readexactly(length)))
    return out


async def test_pipelined_requests_are_answered_in_order(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(await start_upstream(path_app()))
    host, port = _host_port(rt.proxy_url)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        async with asyncio.timeout(10):
            writer.write(
                b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n"
                b"POST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                b"POST /third HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\n0\r\n\r\n"
                b"GET /fourth HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            got = await read_responses(reader, 4)
    finally:
        writer.close()
    assert got == [(200, b"/first:0"), (200, b"/second:5"), (200, b"/third:3"), (200, b"/fourth:0")]


async def test_keep_alive_connection_serves_requests_one_after_another(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(await start_upstream(path_app()))
    host, port = _host_port(rt.proxy_url)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        async with asyncio.timeout(10):
            for i in range(3):
                writer.write(f"GET /n{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                assert await read_responses(reader, 1) == [(200, f"/n{i}:0".encode())]
    finally:
        writer.close()


async def test_chunked_request_body_reaches_the_upstream_whole(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(await start_upstream(path_app()))
    raw = await exchange(
        rt.proxy_url,
        b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"4\r\nabcd\r\n6\r\nefghij\r\n0\r\n\r\n",
    )
    assert raw.endswith(b"\r\n\r\n/c:10")


async def test_expect_100_continue_is_not_answered_when_a_fault_answers_first(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(await start_upstream(path_app()))
    rt.engine.add_rule([build("error", {"status": 503}, "fault")])
    raw = await exchange(
        rt.proxy_url,
        b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    # No 100: the body was never wanted. The connection closes after the answer, since the
    # client may still send the body it announced.
    assert head_lines(raw)[0] == "HTTP/1.1 503 Service Unavailable"
    assert b"100 Continue" not in raw


async def test_http_1_0_client_gets_a_close_delimited_body_when_no_length_is_known(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(b"part1,")
        await resp.write(b"part2")
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/", handler)
    rt = await start_proxy(await start_upstream(app))
    raw = await exchange(rt.proxy_url, b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"chunked" not in head.lower()
    assert body == b"part1,part2"


# ---------------------------------------------------------------- limits and timeouts


async def test_a_head_that_never_completes_gets_408_and_the_connection_closes(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(await start_upstream(path_app()), header_timeout=0.2)
    raw = await exchange(rt.proxy_url, b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: still typi")
    lines = head_lines(raw)
    assert lines[0] == "HTTP/1.1 408 Request Timeout"
    rid = next(line.split(": ", 1)[1] for line in lines if line.startswith("X-Request-Id: "))
    err = json.loads(raw.partition(b"\r\n\r\n")[2])["error"]
    assert (err["code"], err["requestId"]) == (408, rid)


async def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(await start_upstream(path_app()), header_timeout=0.2)
    assert await exchange(rt.proxy_url, b"") == b""


async def test_an_idle_keep_alive_connection_is_closed(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(await start_upstream(path_app()), idle_timeout=0.2)
    raw = await exchange(rt.proxy_url, b"GET /once HTTP/1.1\r\nHost: x\r\n\r\n")
    assert raw.endswith(b"\r\n\r\n/once:0")  # answered, then closed by the proxy when idle


async def test_requests_within_the_limits_pass(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(await start_upstream(path_app()))
    target = "/" + "a" * 8000
    headers = "".join(f"X-H{i}: {'v' * 400}\r\n" for i in range(100))
    raw = await exchange(
        rt.proxy_url,
        f"GET {target} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n".encode(),
    )
    assert head_lines(raw)[0] == "HTTP/1.1 200 OK"


# ---------------------------------------------------------------- disconnects


async def test_a_client_that_resets_cancels_its_upstream_request(
    raw_upstream: Callable[..., Awaitable[RawUpstream]], start_proxy: StartProxy
) -> None:
    """A reset is a client that is gone (a plain close, an EOF, may be a half-close: the
    request is then answered, see test_hostile_clients.py)."""
    up = await raw_upstream(hold=True)
    rt = await start_proxy(up.url)
    done = asyncio.Event()
    rt.bus.subscribe(RequestDone, lambda ev: done.set())
    host, port = _host_port(rt.proxy_url)
    _, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n")
    await up.arrived.wait()
    reset(writer)
    async with asyncio.timeout(10):
        await up.peer_closed.wait()  # the proxy gave the upstream request up
        await done.wait()
    assert rt.load.inflight == 0


async def test_a_client_that_disconnects_cancels_a_fault_delay(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(await start_upstream(path_app()))
    rt.engine.add_rule([build("latency", {"delay": "1h"}, "fault")])
    done: list[RequestDone] = []
    ended, delaying = asyncio.Event(), asyncio.Event()
    rt.bus.subscribe(RequestDone, lambda ev: (done.append(ev), ended.set()))
    rt.bus.subscribe(FaultInjected, lambda ev: delaying.set())
    host, port = _host_port(rt.proxy_url)
    _, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    await delaying.wait()
    writer.close()
    async with asyncio.timeout(10):
        await ended.wait()
    assert [ev.status for ev in done] == [0]
    assert rt.load.inflight == 0


async def test_http_1_0_keep_alive_is_honoured_and_announced(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(await start_upstream(path_app()))
    host, port = _host_port(rt.proxy_url)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        async with asyncio.timeout(10):
            for i in range(2):
                writer.write(f"GET /k{i} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".encode())
                status, headers = await read_head(reader)
                length = int(dict((k.lower(), v) for k, v in headers)["content-length"])
                assert (status, await reader.readexactly(length)) == (200, f"/k{i}:0".encode())
                assert ("Connection", "keep-alive") in headers
    finally:
        writer.close()


def _broken_relay(*args: object) -> bool:
    """The proxy core's `relay` with a bug; it runs inside the parser's callback."""
    raise RuntimeError("boom")


async def test_a_bug_of_ours_in_a_parser_callback_is_a_logged_500_not_the_clients_400(
    raw_upstream: Callable[..., Awaitable[RawUpstream]],
    start_proxy: StartProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # httptools wraps whatever a callback raises as a parser error; only a RequestError is the
    # client's fault. Anything else is ours: said as an internal error, its traceback logged
    # (never sent), and the next connection is served.
    up = await raw_upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    rt = await start_proxy(up.url)
    listener = rt._proxy
    assert listener is not None
    relay = listener.relay_request
    listener.relay_request = _broken_relay
    raw = await exchange(rt.proxy_url, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 500 ") and b"boom" not in raw and b"Traceback" not in raw
    logged = [r for r in caplog.records if r.getMessage() == "internal error reading a request"]
    assert logged and logged[0].exc_info is not None and "boom" in str(logged[0].exc_info[1])
    listener.relay_request = relay
    again = await exchange(rt.proxy_url, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert again.startswith(b"HTTP/1.1 200 OK") and again.endswith(b"\r\n\r\nok")
