"""Hostile input, third round: framing headers named by `Connection` (smuggling both
ways), head limits that counted body bytes, clients that never read, slow uploads, and the
small wire cases beside them. docs/reliability.md ("Third round") is the table of outcomes.

The upstream here is a raw socket server that parses what it receives with its own parser and
records it, so a request the proxy should not have sent (or sent unframed) shows up in
`requests`; canned answers let it misbehave per target.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httptools
import pytest
from aiohttp import web

from chaosproxy.process.runtime import Runtime
from chaosproxy.proxy.downstream.request import RequestHead
from tests.conftest import StartProxy
from tests.proxy.test_hostile_clients import (
    ABCD,
    TE,
    connect,
    error_of,
    read_answer,
    send,
    trickle_until_answered,
)

StartUpstream = Callable[[web.Application], Awaitable[str]]

# ---------------------------------------------------------------- a recording upstream


@dataclass
class Seen:
    method: str
    target: str
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> list[bytes]:
        return [v for k, v in self.headers if k.lower() == name]


@dataclass
class Upstream:
    """Answers each complete request with its canned answer, or `200` and its target as the
    body; records every request it parsed (`requests`) and every head it saw (`heads`)."""

    canned: dict[str, bytes] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    heads: int = 0
    url: str = ""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        done: list[Seen] = []
        cur: dict[str, bytes] = {"url": b"", "body": b""}
        headers: list[tuple[bytes, bytes]] = []
        up = self

        class P:
            def on_url(self, url: bytes) -> None:
                cur["url"] += url

            def on_header(self, name: bytes, value: bytes) -> None:
                headers.append((name, value))

            def on_headers_complete(self) -> None:
                up.heads += 1

            def on_body(self, body: bytes) -> None:
                cur["body"] += body

            def on_message_complete(self) -> None:
                method = parser.get_method().decode()
                done.append(Seen(method, cur["url"].decode(), headers.copy(), cur["body"]))
                cur["url"] = cur["body"] = b""
                headers.clear()

        parser = httptools.HttpRequestParser(P())
        try:
            while data := await reader.read(65536):
                parser.feed_data(data)
                while done:
                    seen = done.pop(0)
                    self.requests.append(seen)
                    answer = self.canned.get(seen.target)
                    if answer is None:
                        body = seen.target.encode()
                        answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (
                            len(body),
                            body,
                        )
                    writer.write(answer)
                    await writer.drain()
        except (httptools.HttpParserError, httptools.HttpParserUpgrade, ConnectionError):
            pass
        finally:
            writer.close()

    def seen(self) -> list[tuple[str, str, bytes]]:
        return [(r.method, r.target, r.body) for r in self.requests]


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    up = Upstream()
    server = await asyncio.start_server(up.serve, "127.0.0.1", 0)
    up.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    yield up
    server.close()


def responses(stream: bytes) -> list[tuple[int, bytes]]:
    """The complete responses in `stream`, framed as a client frames them (a response without
    a length ends with the stream, so it is never complete here)."""
    out: list[tuple[int, bytes]] = []
    body = bytearray()

    class P:
        def on_body(self, data: bytes) -> None:
            body.extend(data)

        def on_message_complete(self) -> None:
            out.append((parser.get_status_code(), bytes(body)))
            body.clear()

    parser = httptools.HttpResponseParser(P())
    parser.feed_data(stream)
    return out


async def until(cond: Callable[[], bool]) -> None:
    """Until the proxy reached the state `cond` reads (a poll, never a guess of a duration)."""
    async with asyncio.timeout(10):
        while not cond():
            await asyncio.sleep(0.005)


def timeouts(rt: Runtime, kind: str) -> float | None:
    return rt.metrics.registry.get_sample_value("chaosproxy_client_timeouts_total", {"kind": kind})


# ---------------------------------------------------------------- 1. smuggling, request side

SMUGGLE = b"GET /smuggled HTTP/1.1\r\nX-Swallow: "  # the next request becomes its header


@pytest.mark.parametrize(
    "connection", [b"Content-Length", b"close, content-length", b"keep-alive, CONTENT-LENGTH"]
)
async def test_a_body_framed_by_a_connection_listed_content_length_stays_framed(
    upstream: Upstream, start_proxy: StartProxy, connection: bytes
) -> None:
    """The body went upstream without its Content-Length (dropped as listed) and the upstream
    read it as the start of another request; on a pool of one, the next client's request (with
    its cookie) completed it and that client got the smuggled request's answer."""
    rt = await start_proxy(upstream.url, pool_size=1)
    close = b"Connection: close\r\n" if b"close" in connection else b""
    wire = b"POST /a HTTP/1.1\r\nHost: x\r\nConnection: %b\r\n%bContent-Length: %d\r\n\r\n%b" % (
        connection,
        close,
        len(SMUGGLE),
        SMUGGLE,
    )
    [first] = await send(rt, wire, 1)
    [second] = await send(rt, b"GET /b HTTP/1.1\r\nHost: x\r\nCookie: victim=secret\r\n\r\n", 1)
    assert (first.status, first.body) == (200, b"/a")
    assert (second.status, second.body) == (200, b"/b")  # its own answer
    assert upstream.seen() == [("POST", "/a", SMUGGLE), ("GET", "/b", b"")]
    assert upstream.requests[0].header(b"content-length") == [b"%d" % len(SMUGGLE)]


async def test_a_chunked_body_with_a_connection_listed_transfer_encoding_stays_framed(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(upstream.url, pool_size=1)
    chunk = b"%x\r\n%b\r\n0\r\n\r\n" % (len(SMUGGLE), SMUGGLE)
    wire = TE + b"chunked\r\nConnection: Transfer-Encoding\r\n\r\n" + chunk
    [first] = await send(rt, wire, 1)
    [second] = await send(rt, b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n", 1)
    assert [(a.status, a.body) for a in (first, second)] == [(200, b"/a"), (200, b"/b")]
    assert upstream.seen() == [("POST", "/a", SMUGGLE), ("GET", "/b", b"")]


# ---------------------------------------------------------------- 2. smuggling, response side


@pytest.mark.parametrize("through", ["as received", "a body filter"])
async def test_a_response_framed_by_a_connection_listed_content_length_stays_framed(
    upstream: Upstream, start_proxy: StartProxy, through: str
) -> None:
    """Without its Content-Length the answer was close-delimited on a keep-alive connection:
    the next response became part of its body."""
    upstream.canned["/listed"] = (
        b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\nhello"
    )
    rt = await start_proxy(upstream.url)
    if through == "a body filter":  # the decoded path: a Reply, its headers as a list
        from chaosproxy.faults import build

        slicer = build("slicer", {"size": "1KiB", "delay": "0s"}, "fault")
        rt.engine.add_rule([slicer], match=lambda req: req.path == "/listed")
    reader, writer = await connect(rt)
    writer.write(b"GET /listed HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
    writer.write_eof()  # both answered, then the proxy closes
    async with asyncio.timeout(10):
        stream = await reader.read(-1)
    writer.close()
    assert responses(stream) == [(200, b"hello"), (200, b"/b")]


# ---------------------------------------------------------------- X-Request-Id and Connection


async def test_connection_listing_x_request_id_never_strips_the_request_id(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    upstream.canned["/up"] = (
        b"HTTP/1.1 200 OK\r\nConnection: X-Request-Id\r\nX-Request-Id: up-1\r\n"
        b"Content-Length: 2\r\n\r\nok"
    )
    rt = await start_proxy(upstream.url)
    wire = b"GET /a HTTP/1.1\r\nHost: x\r\nX-Request-Id: mine\r\nConnection: X-Request-Id\r\n\r\n"
    [a] = await send(rt, wire, 1)
    [b] = await send(rt, b"GET /up HTTP/1.1\r\nHost: x\r\nConnection: x-request-id\r\n\r\n", 1)
    assert a.headers["x-request-id"] == "mine"
    assert upstream.requests[0].header(b"x-request-id") == [b"mine"]  # the id it journals
    assert b.headers["x-request-id"] == "up-1"  # the upstream's own, not dropped


# ---------------------------------------------------------------- 3. head limits count heads


async def _in_head(rt: Runtime) -> None:
    await until(lambda: any(c._in_head for c in rt._proxy.connections))  # type: ignore[union-attr]


async def test_body_bytes_in_the_read_that_ends_a_head_never_count_toward_its_limit(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    """A head split across reads, its end arriving with 1 MB of body: the body bytes of that
    read used to count as head bytes (431)."""
    rt = await start_proxy(upstream.url)
    body = b"u" * 1_000_000
    head = b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
    reader, writer = await connect(rt)
    writer.write(head[:20])
    await _in_head(rt)  # the proxy read a head's first bytes
    writer.write(head[20:] + body)
    async with asyncio.timeout(10):
        answer = await read_answer(reader)
    writer.close()
    assert (answer.status, upstream.seen()) == (200, [("POST", "/up", body)])


async def test_pipelined_requests_with_4_kb_cookies_never_add_up_to_a_431(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(upstream.url)
    cookie = b"Cookie: s=" + b"c" * 4096 + b"\r\n"
    wire = b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n%b\r\n" % (i, cookie) for i in range(30))
    reader, writer = await connect(rt)
    writer.write(wire[:20])
    await _in_head(rt)
    writer.write(wire[20:])  # ~125 KB: read while a head is unfinished
    async with asyncio.timeout(10):
        answers = [await read_answer(reader) for _ in range(30)]
    writer.close()
    assert [(a.status, a.body) for a in answers] == [(200, b"/%d" % i) for i in range(30)]


async def test_a_header_line_that_never_ends_is_still_cut_split_across_reads(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(upstream.url)
    reader, writer = await connect(rt)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Never-Ends: ")
    await _in_head(rt)
    answer, sent = await trickle_until_answered(reader, writer)
    assert answer.status == 431 and error_of(answer) and sent < 1024 * 1024
    assert upstream.heads == 0


# ---------------------------------------------------------------- 4. clients that never read


def big_app(mib: int) -> web.Application:
    """`/big` streams `mib` MiB; anything else answers `ok`."""
    chunk = b"x" * (1 << 20)

    async def big(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_length = mib << 20
        await resp.prepare(request)
        with contextlib.suppress(ConnectionError):
            for _ in range(mib):
                await resp.write(chunk)
        return resp

    async def small(request: web.Request) -> web.Response:
        return web.Response(body=b"ok")

    app = web.Application()
    app.router.add_get("/big", big)
    app.router.add_get("/{tail:.*}", small)
    return app


async def test_clients_that_never_read_are_closed_at_the_send_timeout_and_free_the_pool(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    """A pool of two, two clients asking for 64 MiB and reading nothing: without a send timeout
    they held both upstream connections for as long as they stayed, and every other request
    waited for the pool (504)."""
    rt = await start_proxy(
        await start_upstream(big_app(64)), pool_size=2, send_timeout=0.5, upstream_timeout=5
    )
    stuck = [await connect(rt) for _ in range(2)]
    for _, writer in stuck:
        writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    proxy = rt._proxy
    assert proxy is not None
    await until(lambda: sum(c.write_paused for c in proxy.connections) == 2)
    [answer] = await send(rt, b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n", 1)
    assert (answer.status, answer.body) == (200, b"ok")
    # The first client cut frees a connection for `/after`; the second is cut at its own
    # timeout, which on a busy machine may come just after that answer (seen with a second
    # copy of the suite beside this one): both are counted, once each.
    await until(lambda: proxy.timeouts["send"] >= 2)
    assert proxy.timeouts["send"] == 2 and timeouts(rt, "send") == 2
    for reader, writer in stuck:  # closed by the proxy: what it had sent, then the end
        async with asyncio.timeout(10):
            with contextlib.suppress(ConnectionError):
                while await reader.read(1 << 20):
                    pass
        writer.close()
    await until(lambda: rt.load.inflight == 0)


async def test_a_client_that_reads_slowly_is_never_cut_by_the_send_timeout(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    """The send timeout bounds a silence (no byte taken), not the whole transfer: here the
    transfer takes several times the timeout. The timeout leaves room for a busy machine
    (a second copy of the suite beside this one) to stall this process for a while."""
    rt = await start_proxy(await start_upstream(big_app(8)), send_timeout=1.5)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)  # no kernel slack
    sock.setblocking(False)
    host, port = rt.proxy_url.split("://")[1].split(":")
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    got = 0
    paused = False
    async with asyncio.timeout(60):
        await reader.readuntil(b"\r\n\r\n")
        while got < 8 << 20:
            data = await reader.read(64 * 1024)
            assert data, "the proxy closed a client that was reading"
            got += len(data)
            paused = paused or any(c.write_paused for c in rt._proxy.connections)  # type: ignore[union-attr]
            await asyncio.sleep(0.04)  # the client's pace: ~1.6 MB/s, 5 s for the whole
    writer.close()
    assert got == 8 << 20 and paused and timeouts(rt, "send") == 0


# ---------------------------------------------------------------- slow uploads


async def test_a_slow_upload_never_holds_an_upstream_connection(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    """A body trickling in used to hold a pool connection from its head on (until
    --upstream-timeout): on a pool of one, every other request waited for it (504)."""
    rt = await start_proxy(upstream.url, pool_size=1, upstream_timeout=3)
    reader, writer = await connect(rt)
    writer.write(
        b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n"
    )
    async with asyncio.timeout(10):  # the proxy wants the body: it is at its forwarding step
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"a")  # ... and the rest trickles
    [other] = await send(rt, b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n", 1)
    assert (other.status, other.body) == (200, b"/b")
    writer.write(b"bcdefghij")
    async with asyncio.timeout(10):
        answer = await read_answer(reader)
    writer.close()
    assert (answer.status, answer.body) == (200, b"/slow")
    assert upstream.seen() == [("GET", "/b", b""), ("POST", "/slow", b"abcdefghij")]


async def test_an_upload_that_stalls_is_answered_408_counted_and_never_reaches_the_upstream(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(upstream.url, body_timeout=0.3)
    [answer] = await send(rt, b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
    assert answer.status == 408 and "0.3s" in str(error_of(answer)["details"])
    assert upstream.heads == 0  # nothing was forwarded, no pool connection was taken
    assert timeouts(rt, "body") == 1


# ---------------------------------------------------------------- the small cases

TWO_LINES = [
    ("gzip then chunked", TE + b"gzip\r\nTransfer-Encoding: chunked\r\n\r\n" + ABCD, 501),
    ("chunked twice", TE + b"chunked\r\nTransfer-Encoding: chunked\r\n\r\n" + ABCD, 400),
    ("one line: gzip, chunked", TE + b"gzip, chunked\r\n\r\n" + ABCD, 501),
]


@pytest.mark.parametrize(
    ("wire", "status"), [c[1:] for c in TWO_LINES], ids=[c[0] for c in TWO_LINES]
)
async def test_transfer_codings_on_two_lines_are_read_as_one_list(
    upstream: Upstream, start_proxy: StartProxy, wire: bytes, status: int
) -> None:
    """`gzip` then `chunked` on two lines used to be forwarded as plain chunked: a 200 with the
    coding silently lost."""
    rt = await start_proxy(upstream.url)
    answers = await send(rt, wire)
    assert [a.status for a in answers] == [status] and error_of(answers[0])
    assert upstream.heads == 0


@pytest.mark.parametrize("status", [b"099", b"042", b"000"])
async def test_an_upstream_status_below_100_is_a_502_at_once(
    upstream: Upstream, start_proxy: StartProxy, status: bytes
) -> None:
    """It used to wait for a final response after it, as after a 1xx: a 504 at the timeout."""
    upstream.canned["/odd"] = b"HTTP/1.1 %b Odd\r\nContent-Length: 0\r\n\r\n" % status
    rt = await start_proxy(upstream.url, upstream_timeout=2)
    [answer] = await send(rt, b"GET /odd HTTP/1.1\r\nHost: x\r\n\r\n", 1)
    assert answer.status == 502 and error_of(answer)
    [after] = await send(rt, b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n", 1)
    assert (after.status, after.body) == (200, b"/b")


TARGETS = [
    ("http://h?x=1", "/?x=1"),
    ("http://h?x=/y", "/?x=/y"),
    ("HTTP://h:8080", "/"),
    ("http://u@h/p?q=1", "/p?q=1"),
    ("https://h/a/b", "/a/b"),
]


@pytest.mark.parametrize(("target", "forwarded"), TARGETS)
async def test_an_absolute_form_target_keeps_its_path_and_query(
    upstream: Upstream, start_proxy: StartProxy, target: str, forwarded: str
) -> None:
    rt = await start_proxy(upstream.url)
    [answer] = await send(rt, b"GET %b HTTP/1.1\r\nHost: x\r\n\r\n" % target.encode(), 1)
    assert answer.status == 200 and [r.target for r in upstream.requests] == [forwarded]
    head = RequestHead("GET", target, "1.1", [], "", 0.0)
    assert head.raw_path == forwarded.partition("?")[0]  # what rules match on


@pytest.mark.parametrize(
    "wire",
    [
        b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"GET http://h/a HTTP/1.1\r\nConnection: close\r\n\r\n",
    ],
    ids=["origin-form", "absolute-form"],
)
async def test_an_http_1_1_request_without_host_is_refused(
    upstream: Upstream, start_proxy: StartProxy, wire: bytes
) -> None:
    rt = await start_proxy(upstream.url)
    answers = await send(rt, wire)
    assert [a.status for a in answers] == [400] and "Host" in str(error_of(answers[0])["details"])
    assert upstream.heads == 0
    [old] = await send(rt, b"GET /old HTTP/1.0\r\n\r\n")  # HTTP/1.0 has no Host to send
    assert (old.status, old.body) == (200, b"/old")


@pytest.mark.parametrize(
    "body",
    [b"Content-Length: 4\r\n\r\nabcd", b"Transfer-Encoding: chunked\r\n\r\n" + ABCD],
    ids=["content-length", "chunked"],
)
async def test_an_upgrade_request_with_a_body_is_refused_before_the_upstream(
    upstream: Upstream, start_proxy: StartProxy, body: bytes
) -> None:
    """The parser switches protocols right after the head: the head went upstream alone and
    the upstream waited for a body that never came (504), or answered without it."""
    rt = await start_proxy(upstream.url)
    wire = b"POST /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n" + body
    answers = await send(rt, wire)
    assert [(a.status, a.headers["connection"]) for a in answers] == [(400, "close")]
    assert "upgrade" in str(error_of(answers[0])["details"])
    assert upstream.heads == 0
