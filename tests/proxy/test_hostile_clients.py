"""Hostile clients, family by family: what the client observes, what the upstream received (never
a smuggled second request), and that the proxy serves the next client normally afterwards.

The upstream here is a raw socket server that records every byte it receives and parses it with
its own parser, so a request the proxy should not have forwarded shows up in `requests` or in
`raw`. docs/reliability.md ("Hostile clients") is the table of these outcomes.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httptools
import pytest

from chaosproxy.common.events import RequestDone
from chaosproxy.faults import build
from chaosproxy.process.runtime import Runtime
from tests.conftest import StartProxy
from tests.proxy.rawhttp import _host_port, parse_head, reset

# ---------------------------------------------------------------- a recording upstream


@dataclass
class Seen:
    method: str
    target: str
    body: bytes


@dataclass
class Recorder:
    """Answers each complete request with `200` and its target as the body; records what it saw.

    `hold` keeps answers back until `release` is set; `arrived` is set for every request head."""

    raw: bytearray = field(default_factory=bytearray)
    requests: list[Seen] = field(default_factory=list)
    heads: int = 0
    hold: bool = False
    release: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    peer_closed: asyncio.Event = field(default_factory=asyncio.Event)
    big: int = 0  # answer with a body this large (a response that streams)
    close_each: bool = False  # close the connection after each answer (no idle pool)
    url: str = ""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        done: list[Seen] = []
        parts: dict[str, bytes] = {"url": b"", "body": b""}

        class P:
            def on_url(self, url: bytes) -> None:
                parts["url"] += url

            def on_headers_complete(self) -> None:
                rec.heads += 1
                rec.arrived.set()

            def on_body(self, body: bytes) -> None:
                parts["body"] += body

            def on_message_complete(self) -> None:
                done.append(
                    Seen(parser.get_method().decode(), parts["url"].decode(), parts["body"])
                )
                parts["url"] = parts["body"] = b""

        rec = self
        parser = httptools.HttpRequestParser(P())
        upgraded = False
        try:
            while not upgraded and (data := await reader.read(65536)):
                self.raw += data
                try:
                    parser.feed_data(data)
                except httptools.HttpParserUpgrade:
                    upgraded = True  # answered like any request (it does not switch)
                while done:
                    seen = done.pop(0)
                    self.requests.append(seen)
                    if self.hold:
                        await self.release.wait()
                    body = b"x" * self.big if self.big else seen.target.encode()
                    close = b"Connection: close\r\n" if self.close_each else b""
                    writer.write(
                        b"HTTP/1.1 200 OK\r\n%bContent-Length: %d\r\n\r\n" % (close, len(body))
                    )
                    writer.write(body)
                    await writer.drain()
                    self.answered.set()
                    if self.close_each:
                        return
        except (httptools.HttpParserError, ConnectionError):
            pass
        finally:
            self.peer_closed.set()
            writer.close()


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    rec = Recorder()
    server = await asyncio.start_server(rec.serve, "127.0.0.1", 0)
    rec.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    yield rec
    server.close()


# ---------------------------------------------------------------- a raw client


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


async def connect(rt: Runtime) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(*_host_port(rt.proxy_url))


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    head = await reader.readuntil(b"\r\n\r\n")
    status, headers = parse_head(head[:-4])
    h = {k.lower(): v for k, v in headers}
    return Answer(status, h, await reader.readexactly(int(h.get("content-length", "0"))))


async def trickle_until_answered(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, piece: bytes = b"v" * 8192
) -> tuple[Answer, int]:
    """Keep sending `piece` (of a head that never ends) until the proxy answers: the answer
    and the bytes sent. The pause between pieces is the client's pace, so each arrives in a
    read of its own; the loop waits on the answer, not on time."""
    answered = asyncio.ensure_future(read_answer(reader))
    sent = 0
    try:
        async with asyncio.timeout(10):
            while not answered.done():
                writer.write(piece)
                sent += len(piece)
                await writer.drain()
                await asyncio.sleep(0.001)
            return await answered, sent
    finally:
        answered.cancel()
        writer.close()


async def send(rt: Runtime, wire: bytes, n: int | None = None) -> list[Answer]:
    """Send `wire` on a fresh connection and read `n` answers; without `n`, read answers until
    the proxy closes the connection (a test that expects the close)."""
    reader, writer = await connect(rt)
    answers: list[Answer] = []
    try:
        writer.write(wire)
        async with asyncio.timeout(10):
            while n is None or len(answers) < n:
                try:
                    answers.append(await read_answer(reader))
                except asyncio.IncompleteReadError as e:
                    assert n is None and e.partial == b"", (n, e.partial)
                    break
    finally:
        writer.close()
    return answers


async def fetch_ok(rt: Runtime, path: str = "/after") -> None:
    """A well-formed request succeeds on a fresh connection."""
    answers = await send(rt, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 1)
    assert [(a.status, a.body) for a in answers] == [(200, path.encode())]


def open_connections(rt: Runtime) -> float:
    """The proxy's own count of open client connections (its metric)."""
    return rt.metrics.registry.get_sample_value("chaosproxy_client_connections") or 0.0


async def proxy_eof(rt: Runtime) -> None:
    """Until the proxy has read the client's EOF on one of its connections."""
    async with asyncio.timeout(10):
        while not any(c.eof for c in rt._proxy.connections):  # type: ignore[union-attr]
            await asyncio.sleep(0.01)


def error_of(a: Answer) -> dict[str, object]:
    err: dict[str, object] = json.loads(a.body)["error"]
    assert err["requestId"] == a.headers["x-request-id"]
    return err


# ---------------------------------------------------------------- framing and smuggling

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
GET = b"GET /a HTTP/1.1\r\nHost: x\r\n"
POST = b"POST /a HTTP/1.1\r\nHost: x\r\n"
CL = POST + b"Content-Length: "
TE = POST + b"Transfer-Encoding: "
CHUNKED = TE + b"chunked\r\n"
ABCD = b"4\r\nabcd\r\n0\r\n\r\n"  # a chunked body
# More body than the proxy buffers before it takes an upstream connection (256 KiB): a request
# whose body stops after this many bytes has gone upstream already, streaming.
PAST_BUFFER = 300_000

# name, request bytes (with a request hidden where another parser could find it), status
REFUSED = [
    ("CL+TE", CL + b"4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED, 400),
    ("TE+CL", CHUNKED + b"Content-Length: 40\r\n\r\n0\r\n\r\n" + SMUGGLED, 400),
    ("two Content-Lengths", CL + b"4\r\nContent-Length: 30\r\n\r\nabcd" + SMUGGLED, 400),
    ("Content-Length list", CL + b"4, 4\r\n\r\nabcd", 400),
    ("Content-Length +4", CL + b"+4\r\n\r\nabcd", 400),
    ("Content-Length overflow", CL + b"99999999999999999999999\r\n\r\n", 400),
    ("TE gzip, chunked", TE + b"gzip, chunked\r\n\r\n" + ABCD, 501),
    ("TE chunked, gzip", TE + b"chunked, gzip\r\n\r\n" + ABCD + SMUGGLED, 400),
    ("TE unknown coding", TE + b"foo\r\n\r\nabcd" + SMUGGLED, 400),
    ("two TE headers", CHUNKED + b"Transfer-Encoding: identity\r\n\r\n" + ABCD, 400),
    ("TE in HTTP/1.0", b"POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n" + ABCD, 400),
    ("invalid chunk size", CHUNKED + b"\r\nzz\r\nabcd\r\n0\r\n\r\n" + SMUGGLED, 400),
    ("chunk size overflow", CHUNKED + b"\r\nFFFFFFFFFFFFFFFFF1\r\nabcd\r\n" + SMUGGLED, 400),
    ("chunk data past its size", CHUNKED + b"\r\n4\r\nabcdXX0\r\n\r\n" + SMUGGLED, 400),
    ("chunks with bare LF", CHUNKED + b"\r\n4\nabcd\n0\n\n" + SMUGGLED, 400),
    ("obs-fold continuation", GET + b"X-A: one\r\n two\r\n\r\n", 400),
    ("obs-fold hiding TE", TE + b"identity\r\n chunked\r\nContent-Length: 4\r\n\r\nabcd", 400),
    ("bare LF line endings", b"GET /a HTTP/1.1\nHost: x\n\n", 400),
    ("NUL in a header name", GET + b"X-\x00A: b\r\n\r\n", 400),
    ("NUL in a header value", GET + b"X-A: b\x00c\r\n\r\n", 400),
    ("CTL in a header value", GET + b"X-A: b\x01c\r\n\r\n", 400),
    ("bare CR in a header value", GET + b"X-A: b\rc\r\n\r\n", 400),
    ("space before the colon", POST + b"Content-Length : 4\r\n\r\nabcd", 400),
    ("a header line starting with a space", b"GET /a HTTP/1.1\r\n Host: x\r\n\r\n", 400),
    ("two Host headers", GET + b"Host: y\r\n\r\n", 400),
    ("space in the target", b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("unknown method", b"FOO /a HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("a target naming another host", b"GET @127.0.0.1:22/x HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("CONNECT", b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    ("HTTP/2.0 request line", b"GET /a HTTP/2.0\r\nHost: x\r\n\r\n", 505),
]


@pytest.mark.parametrize(("wire", "status"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
async def test_ambiguous_framing_is_refused_and_nothing_reaches_the_upstream(
    recorder: Recorder, start_proxy: StartProxy, wire: bytes, status: int
) -> None:
    rt = await start_proxy(recorder.url)
    answers = await send(rt, wire)  # answered, then closed
    assert [a.status for a in answers] == [status]
    assert answers[0].headers["connection"] == "close" and error_of(answers[0])
    assert recorder.requests == [] and b"smuggled" not in recorder.raw
    await fetch_ok(rt)


async def test_a_broken_chunk_after_the_head_went_upstream_forwards_no_second_request(
    recorder: Recorder, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(recorder.url)
    reader, writer = await connect(rt)
    writer.write(CHUNKED + b"\r\n%x\r\n%b\r\n" % (PAST_BUFFER, b"x" * PAST_BUFFER))
    await recorder.arrived.wait()  # streaming: the head and the first chunk went upstream
    writer.write(b"zz\r\n" + SMUGGLED)
    answer = await read_answer(reader)
    assert (answer.status, answer.headers["connection"]) == (400, "close") and error_of(answer)
    assert await reader.read() == b""
    writer.close()
    async with asyncio.timeout(10):
        await recorder.peer_closed.wait()  # the upstream request was abandoned
    assert recorder.requests == [] and b"smuggled" not in recorder.raw
    await fetch_ok(rt)


# name, request bytes, the body the upstream must receive
ACCEPTED = [
    ("chunk extension, small", CHUNKED + b"\r\n4;a=b\r\nabcd\r\n0\r\n\r\n", b"abcd"),
    ("chunk extension, 200 KB", CHUNKED + b"\r\n4;" + b"x" * 200_000 + b"\r\n" + ABCD[3:], b"abcd"),
    ("chunked in capitals", TE + b"CHUNKED\r\n\r\n" + ABCD, b"abcd"),
    ("trailer fields", CHUNKED + b"\r\n4\r\nabcd\r\n0\r\nX-T: y\r\n\r\n", b"abcd"),
    ("a GET with Content-Length: 0", GET + b"Content-Length: 0\r\n\r\n", b""),
]


@pytest.mark.parametrize(("wire", "body"), [c[1:] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
async def test_legal_framing_reaches_the_upstream_once_as_one_request(
    recorder: Recorder, start_proxy: StartProxy, wire: bytes, body: bytes
) -> None:
    rt = await start_proxy(recorder.url)
    answers = await send(rt, wire, 1)
    assert [a.status for a in answers] == [200]
    assert [r.body for r in recorder.requests] == [body]
    assert b"xxxxxxxx" not in recorder.raw  # extensions never travel on


async def test_an_upgrade_never_carries_smuggled_bytes_upstream(
    recorder: Recorder, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(recorder.url)
    wire = b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n" + SMUGGLED
    answers = await send(rt, wire)  # the upstream did not switch: answered, then closed
    assert [a.status for a in answers] == [200]
    assert [r.target for r in recorder.requests] == ["/a"] and b"smuggled" not in recorder.raw


# ---------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    ("wire", "status"),
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 9000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(129)) + b"\r\n", 431),
        (
            b"GET / HTTP/1.1\r\n"
            + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 7000) for i in range(12)),
            431,
        ),
    ],
    ids=["request line 9 KB", "header line 9 KB", "129 headers", "head 84 KB"],
)
async def test_oversize_heads_are_refused(
    recorder: Recorder, start_proxy: StartProxy, wire: bytes, status: int
) -> None:
    rt = await start_proxy(recorder.url)
    answers = await send(rt, wire)
    assert [a.status for a in answers] == [status] and error_of(answers[0])
    assert recorder.requests == []
    await fetch_ok(rt)


async def test_a_head_just_under_the_limits_passes_even_in_small_pieces(
    recorder: Recorder, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(recorder.url)
    lines = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 1000) for i in range(60))  # 60 KB
    wire = GET + lines + b"\r\n"
    reader, writer = await connect(rt)
    for i in range(0, len(wire), 1024):
        writer.write(wire[i : i + 1024])
        await writer.drain()
        await asyncio.sleep(0.001)  # the client's pace: one piece per read
    async with asyncio.timeout(10):
        answer = await read_answer(reader)
    writer.close()
    assert (answer.status, [r.target for r in recorder.requests]) == (200, ["/a"])


async def test_a_header_that_never_ends_is_cut_at_the_head_limit(
    recorder: Recorder, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(recorder.url)
    reader, writer = await connect(rt)
    writer.write(b"GET / HTTP/1.1\r\nX-Never-Ends: ")
    answer, sent = await trickle_until_answered(reader, writer)
    assert answer.status == 431 and sent < 1024 * 1024
    await fetch_ok(rt)


# ---------------------------------------------------------------- slow clients


async def test_slowloris_a_head_trickled_byte_by_byte_gets_408_at_the_header_timeout(
    recorder: Recorder, start_proxy: StartProxy
) -> None:
    """Each byte comes well within the header timeout; the head as a whole does not."""
    rt = await start_proxy(recorder.url, header_timeout=0.5)
    reader, writer = await connect(rt)
    line = b"GET / HTTP/1.1\r\nX-Slow: " + b"v" * 10_000  # never ends
    sent = 0
    answered = asyncio.ensure_future(read_answer(reader))
    try:
        async with asyncio.timeout(30):
            while not answered.done():
                writer.write(line[sent : sent + 1])
                sent += 1
                await asyncio.sleep(0.05)  # the client's pace, not a synchronisation
            answer = await answered
    finally:
        writer.close()
    assert answer.status == 408 and "0.5s" in error_of(answer)["details"]  # type: ignore[operator]
    assert sent > 5  # it was trickling, and it was cut while still sending
    await fetch_ok(rt)


async def test_a_request_body_that_stops_gets_408_at_the_body_timeout(
    recorder: Recorder, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(recorder.url, body_timeout=0.3)
    done: list[RequestDone] = []
    rt.bus.subscribe(RequestDone, done.append)
    reader, writer = await connect(rt)
    writer.write(POST + b"Content-Length: %d\r\n\r\n" % (PAST_BUFFER + 10))
    writer.write(b"x" * PAST_BUFFER)  # past the buffer: it streams; ten bytes never come
    async with asyncio.timeout(10):
        answer = await read_answer(reader)
        assert await reader.read() == b""
        await recorder.peer_closed.wait()  # the upstream request was abandoned
    writer.close()
    assert answer.status == 408 and answer.headers["connection"] == "close"
    assert "no request body bytes arrived for 0.3s" in str(error_of(answer)["details"])
    assert recorder.requests == []  # the upstream never saw a complete request
    assert [(e.status, e.upstream_error) for e in done] == [(408, None)]
    await fetch_ok(rt)


async def test_a_trickled_body_lives_while_bytes_come_and_gets_408_once_they_stop(
    recorder: Recorder, start_proxy: StartProxy
) -> None:
    """Each byte restarts the body timeout; the 408 comes once they stop, also while a fault
    delays the request (nothing reads the body yet)."""
    rt = await start_proxy(recorder.url, body_timeout=0.3)
    rt.engine.add_rule([build("latency", {"delay": "1s"}, "fault")])
    reader, writer = await connect(rt)
    writer.write(POST + b"Content-Length: 100\r\n\r\n")
    for _ in range(5):
        writer.write(b"x")
        await asyncio.sleep(0.1)  # the client's pace: each byte within the body timeout
    async with asyncio.timeout(10):
        answer = await read_answer(reader)
    writer.close()
    assert answer.status == 408 and "0.3s" in str(error_of(answer)["details"])
    assert recorder.requests == []


async def test_the_body_timeout_waits_for_100_continue_and_for_a_slow_reader(
    recorder: Recorder, start_proxy: StartProxy
) -> None:
    """A client that waits for `100 Continue` is not silent: its body time starts with it."""
    rt = await start_proxy(recorder.url, body_timeout=0.2)
    rt.engine.add_rule([build("latency", {"delay": "600ms"}, "fault")])
    reader, writer = await connect(rt)
    writer.write(POST + b"Content-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    async with asyncio.timeout(10):
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"abcd")
        answer = await read_answer(reader)
    writer.close()
    assert (answer.status, [r.body for r in recorder.requests]) == (200, [b"abcd"])


# ---------------------------------------------------------------- pipelining


async def test_many_requests_in_one_write_are_answered_in_order(
    recorder: Recorder, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(recorder.url)
    paths = [f"/p{i}" for i in range(50)]
    wire = b"".join(f"GET {p} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for p in paths)
    answers = await send(rt, wire + POST + b"Content-Length: 3\r\n\r\nend", 51)
    assert [a.body.decode() for a in answers] == [*paths, "/a"]
    assert [r.target for r in recorder.requests] == [*paths, "/a"]


async def test_a_bad_request_in_a_pipeline_is_answered_in_its_turn_and_ends_it(
    recorder: Recorder, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(recorder.url)
    good = b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n"
    bad = b"GET /3 HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"
    answers = await send(rt, good + bad + b"GET /4 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert [(a.status, a.body[:2]) for a in answers] == [(200, b"/1"), (200, b"/2"), (400, b'{"')]
    assert [r.target for r in recorder.requests] == ["/1", "/2"]  # and then it closed


# ---------------------------------------------------------------- half-close


async def test_a_complete_request_then_shut_wr_is_answered_then_closed(
    recorder: Recorder, start_proxy: StartProxy
) -> None:
    recorder.hold = True  # the EOF arrives while the upstream works on it
    rt = await start_proxy(recorder.url)
    reader, writer = await connect(rt)
    writer.write(POST + b"Content-Length: 4\r\n\r\nabcd")
    await recorder.arrived.wait()
    writer.write_eof()  # SHUT_WR: no more requests, still listening
    await proxy_eof(rt)  # the EOF reached the proxy while the upstream works
    recorder.release.set()
    async with asyncio.timeout(10):
        answer = await read_answer(reader)
        assert await reader.read() == b""  # then the proxy closes
    writer.close()
    assert (answer.status, answer.body) == (200, b"/a")
    assert [(r.target, r.body) for r in recorder.requests] == [("/a", b"abcd")]


async def test_pipelined_requests_then_shut_wr_are_all_answered(
    recorder: Recorder, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(recorder.url)
    reader, writer = await connect(rt)
    writer.write(b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(5)))
    writer.write_eof()
    async with asyncio.timeout(10):
        answers = [await read_answer(reader) for _ in range(5)]
        assert await reader.read() == b""
    writer.close()
    assert [a.body for a in answers] == [b"/%d" % i for i in range(5)]


async def test_shut_wr_in_the_middle_of_a_body_abandons_the_request(
    recorder: Recorder, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(recorder.url)
    done = asyncio.Event()
    rt.bus.subscribe(RequestDone, lambda ev: done.set())
    reader, writer = await connect(rt)
    writer.write(POST + b"Content-Length: %d\r\n\r\n" % (PAST_BUFFER + 10))
    writer.write(b"x" * PAST_BUFFER)  # past the buffer: the head went upstream
    await recorder.arrived.wait()
    writer.write_eof()
    async with asyncio.timeout(10):
        assert await reader.read() == b""  # no answer: a client that vanished
        await recorder.peer_closed.wait()
        await done.wait()
    writer.close()
    assert recorder.requests == [] and rt.load.inflight == 0


async def test_shut_wr_while_a_fault_holds_the_request_ends_it_like_a_vanished_client(
    recorder: Recorder, start_proxy: StartProxy
) -> None:
    """Before the upstream, a half-close and a client that gave up look the same: the fault's
    wait ends and nothing goes upstream."""
    rt = await start_proxy(recorder.url)
    rt.engine.add_rule([build("hang", {}, "fault")])
    done: list[RequestDone] = []
    ended = asyncio.Event()
    rt.bus.subscribe(RequestDone, lambda ev: (done.append(ev), ended.set()))
    reader, writer = await connect(rt)
    writer.write(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    async with asyncio.timeout(10):
        while not rt.load.inflight:
            await asyncio.sleep(0.01)
        writer.write_eof()
        assert await reader.read() == b""
        await ended.wait()
    writer.close()
    assert [e.status for e in done] == [0] and recorder.heads == 0


# ---------------------------------------------------------------- vanishing clients


async def test_a_client_that_closes_while_the_upstream_works_leaves_it_to_finish(
    recorder: Recorder, start_proxy: StartProxy
) -> None:
    """A plain close is an EOF, which may be a half-close: the upstream already acted on the
    request, so its answer is written (and dropped by the client's kernel)."""
    recorder.hold = True
    rt = await start_proxy(recorder.url)
    done: list[RequestDone] = []
    ended = asyncio.Event()
    rt.bus.subscribe(RequestDone, lambda ev: (done.append(ev), ended.set()))
    _, writer = await connect(rt)
    writer.write(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    await recorder.arrived.wait()
    writer.close()
    await proxy_eof(rt)
    recorder.release.set()
    async with asyncio.timeout(10):
        await ended.wait()
    assert [r.target for r in recorder.requests] == ["/a"] and done[0].status == 200
    assert rt.load.inflight == 0
    await fetch_ok(rt)


@pytest.mark.parametrize("when", ["mid-headers", "mid-body", "waiting (reset)", "mid-response"])
async def test_a_vanishing_client_leaves_nothing_behind(
    recorder: Recorder, start_proxy: StartProxy, when: str
) -> None:
    """Gone for good (a reset, or an EOF before its request was complete): the work stops."""
    recorder.hold = when == "waiting (reset)"
    recorder.big = 8 * 1024 * 1024 if when == "mid-response" else 0
    rt = await start_proxy(recorder.url)
    reader, writer = await connect(rt)
    if when == "mid-headers":
        writer.write(b"GET /a HTTP/1.1\r\nHost: x\r\nX-Half")
        async with asyncio.timeout(10):
            while not open_connections(rt):
                await asyncio.sleep(0.01)
    elif when == "mid-body":
        writer.write(POST + b"Content-Length: %d\r\n\r\n" % (PAST_BUFFER + 10))
        writer.write(b"x" * PAST_BUFFER)  # past the buffer: the head went upstream
        await recorder.arrived.wait()
    elif when == "waiting (reset)":
        writer.write(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        await recorder.arrived.wait()
    else:
        writer.write(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.readexactly(64 * 1024)  # the response is streaming
    writer.close() if when.startswith("mid-h") or when == "mid-body" else reset(writer)
    async with asyncio.timeout(10):
        while rt.load.inflight or open_connections(rt):  # the upstream still holds it
            await asyncio.sleep(0.01)
    recorder.release.set()
    complete = [] if when in ("mid-headers", "mid-body") else ["/a"]
    assert [r.target for r in recorder.requests] == complete
    assert rt.metrics.registry.get_sample_value("chaosproxy_inflight_requests") == 0
    recorder.big = 0
    await fetch_ok(rt)


# ---------------------------------------------------------------- resources


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _attack_round(rt: Runtime) -> None:
    """One of every family above: refused framings, oversize heads, pipelines, half-closes,
    vanishing clients."""
    for _, wire, _ in REFUSED:
        await send(rt, wire)
    await send(rt, b"GET / HTTP/1.1\r\nX-Big: " + b"v" * 70_000 + b"\r\n\r\n")
    await send(rt, b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(20)), 20)
    for wire in (b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", POST + b"Content-Length: 9\r\n\r\nab"):
        reader, writer = await connect(rt)
        writer.write(wire)
        writer.write_eof()
        await reader.read()
        writer.close()
    for _ in range(20):
        _, writer = await connect(rt)
        writer.write(b"GET /a HTTP/1.1\r\nHost")
        await writer.drain()
        reset(writer)


async def test_after_every_family_tasks_descriptors_and_memory_return_to_baseline(
    recorder: Recorder, start_proxy: StartProxy
) -> None:
    recorder.close_each = True  # no idle upstream connections: descriptors settle exactly
    rt = await start_proxy(recorder.url, body_timeout=0.5, header_timeout=0.5)
    await _attack_round(rt)  # warm-up: lazily made objects, caches, the allocator's arenas

    async def settled(want: tuple[int, int] | None = None) -> tuple[int, int]:
        async with asyncio.timeout(20):
            while True:
                gc.collect()
                now = len(asyncio.all_tasks()), _fds()
                if not (rt.load.inflight or open_connections(rt)) and want in (None, now):
                    return now
                await asyncio.sleep(0.02)

    tasks, fds = await settled()
    rss = _rss()
    for _ in range(3):
        await _attack_round(rt)
    assert await settled((tasks, fds)) == (tasks, fds)
    assert _rss() - rss < 16 * 1024 * 1024  # three rounds did not grow the process
    await fetch_ok(rt)
