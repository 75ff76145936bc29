"""Requests nothing touches, relayed by callbacks (relay.py): the same bytes as the awaiting
path, the same accounting, and every failure answered as there. The first request on a fresh
proxy opens the upstream connection (the awaiting path); the ones after it reuse it (relayed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from chaosproxy.common.events import RequestDone
from chaosproxy.faults import build
from tests.conftest import StartProxy
from tests.proxy.rawhttp import _host_port, reset

OK = b"HTTP/1.1 200 Fine\r\nServer: up\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nhello"


@dataclass
class Upstream:
    """A raw-socket upstream whose every answer the test chooses: `answers` is called with the
    request head and the connection's number and returns the bytes to send (None: close the
    connection without answering; b"": send nothing and hold it)."""

    answers: Callable[[bytes, int], bytes | None]
    heads: list[tuple[int, bytes]] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    close_after: set[int] = field(default_factory=set)  # request counts answered, then closed
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    url: str = ""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number = len(self.writers)
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                async with self.arrived:
                    self.heads.append((number, head))
                    self.arrived.notify_all()
                answer = self.answers(head, number)
                if answer is None:
                    return
                if answer:
                    writer.write(answer)
                    await writer.drain()
                if len(self.heads) in self.close_after:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def until_heads(self, n: int) -> None:
        async with self.arrived:
            await self.arrived.wait_for(lambda: len(self.heads) >= n)


StartUp = Callable[[Callable[[bytes, int], bytes | None]], Awaitable[Upstream]]


@pytest.fixture
async def upstream() -> AsyncIterator[StartUp]:
    servers: list[asyncio.Server] = []

    async def start(answers: Callable[[bytes, int], bytes | None]) -> Upstream:
        up = Upstream(answers)
        server = await asyncio.start_server(up.serve, "127.0.0.1", 0)
        servers.append(server)
        up.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        return up

    yield start
    for s in servers:
        s.close()


class Client:
    """One keep-alive client connection that reads whole answers (Content-Length or chunked)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, url: str) -> Client:
        host, port = _host_port(url)
        return cls(*await asyncio.open_connection(host, port))

    async def get(self, path: str = "/", method: str = "GET", extra: str = "") -> bytes:
        self.writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
        return await self.answer()

    async def answer(self) -> bytes:
        """One whole answer, head and body, as bytes."""
        async with asyncio.timeout(10):
            head = await self.reader.readuntil(b"\r\n\r\n")
            low = head.lower()
            if b"content-length:" in low:
                n = int(low.split(b"content-length:")[1].split(b"\r\n")[0])
                return head + await self.reader.readexactly(n)
            body = b""
            while True:
                size_line = await self.reader.readuntil(b"\r\n")
                body += size_line
                n = int(size_line.strip(), 16)
                body += await self.reader.readexactly(n + 2)
                if n == 0:
                    return head + body

    def close(self) -> None:
        self.writer.close()


def without_id(answer: bytes) -> bytes:
    """The answer with its X-Request-Id line's value blanked (each request has its own)."""
    lines = answer.split(b"\r\n")
    return b"\r\n".join(
        line.split(b":")[0] + b": -" if line.lower().startswith(b"x-request-id:") else line
        for line in lines
    )


def dechunk(chunks: bytes) -> bytes:
    body = b""
    while True:
        size, _, chunks = chunks.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            assert chunks == b"\r\n"
            return body
        body, chunks = body + chunks[:n], chunks[n + 2 :]


async def test_a_relayed_answer_has_the_bytes_of_an_awaited_one(
    start_proxy: StartProxy, upstream: StartUp
) -> None:
    up = await upstream(lambda head, n: OK)
    rt = await start_proxy(up.url)
    client = await Client.open(rt.proxy_url)
    first = await client.get("/a")  # opens the upstream connection: the awaiting path
    second = await client.get("/a")  # reuses it: relayed
    client.close()
    assert without_id(first) == without_id(second)
    assert second.startswith(b"HTTP/1.1 200 Fine\r\nServer: up\r\nContent-Length: 5\r\n")
    assert b"Connection: keep-alive" not in second and second.endswith(b"\r\n\r\nhello")
    assert [n for n, _ in up.heads] == [0, 0]  # one upstream connection, reused


async def test_a_relayed_answer_without_length_is_chunked_for_the_client(
    start_proxy: StartProxy, upstream: StartUp
) -> None:
    # The upstream frames its body with chunks (its own coding is hop-by-hop): the client gets
    # the proxy's chunks, and the same bytes relayed or awaited.
    body = b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
    up = await upstream(lambda head, n: b"HTTP/1.1 200 OK\r\nX-A: 1\r\n" + body)
    rt = await start_proxy(up.url)
    client = await Client.open(rt.proxy_url)
    first, second = await client.get(), await client.get()
    client.close()
    assert without_id(first) == without_id(second)
    head, _, chunks = second.partition(b"\r\n\r\n")
    assert head.endswith(b"\r\nTransfer-Encoding: chunked") and dechunk(chunks) == b"abcdefg"


async def test_relayed_requests_are_counted_as_awaited_ones(
    start_proxy: StartProxy, upstream: StartUp
) -> None:
    up = await upstream(lambda head, n: OK)
    rt = await start_proxy(up.url)
    done: list[RequestDone] = []
    rt.bus.subscribe(RequestDone, done.append)
    client = await Client.open(rt.proxy_url)
    answers = [await client.get(f"/n{i}") for i in range(3)]
    client.close()
    assert len(done) == 3 and {d.status for d in done} == {200}
    assert all(d.upstream_duration is not None and d.upstream_error is None for d in done)
    assert all(not d.injected and d.client == "127.0.0.1" for d in done)
    assert rt.core.load.inflight == 0
    # the id the upstream got is the one the client got
    ids = [a.split(b"X-Request-Id: ")[1].split(b"\r\n")[0] for a in answers]
    sent = [h.split(b"X-Request-Id: ")[1].split(b"\r\n")[0] for _, h in up.heads]
    assert ids == sent and len(set(ids)) == 3


async def test_a_rule_added_applies_to_the_next_request_on_a_relayed_connection(
    start_proxy: StartProxy, upstream: StartUp
) -> None:
    up = await upstream(lambda head, n: OK)
    rt = await start_proxy(up.url)
    client = await Client.open(rt.proxy_url)
    await client.get()
    assert (await client.get()).startswith(b"HTTP/1.1 200")  # relayed
    rule = rt.engine.add_rule([build("error", {"status": 503}, "f")])
    assert (await client.get()).startswith(b"HTTP/1.1 503")
    rt.engine.remove_rule(rule.id)
    assert (await client.get()).startswith(b"HTTP/1.1 200")
    client.close()
    assert len(up.heads) == 3  # the faulted one never went upstream


async def test_a_stale_connection_under_a_relayed_get_is_sent_again_on_a_fresh_one(
    start_proxy: StartProxy, upstream: StartUp
) -> None:
    # The upstream closes its first connection right after reading the second request on it,
    # without a byte of answer: a keep-alive connection it had closed meanwhile.
    up = await upstream(lambda head, n: None if (n, len(up.heads)) == (0, 2) else OK)
    rt = await start_proxy(up.url)
    client = await Client.open(rt.proxy_url)
    await client.get("/one")
    again = await client.get("/two")
    client.close()
    assert again.startswith(b"HTTP/1.1 200 Fine") and again.endswith(b"hello")
    assert [(n, h.split(b" ")[1]) for n, h in up.heads] == [
        (0, b"/one"),
        (0, b"/two"),
        (1, b"/two"),
    ]


async def test_a_stale_connection_under_a_relayed_post_is_a_502(
    start_proxy: StartProxy, upstream: StartUp
) -> None:
    # A POST (without a body) the upstream may have read is never sent twice.
    up = await upstream(lambda head, n: None if len(up.heads) == 2 else OK)
    rt = await start_proxy(up.url)
    done: list[RequestDone] = []
    rt.bus.subscribe(RequestDone, done.append)
    client = await Client.open(rt.proxy_url)
    await client.get()
    answer = await client.get(method="POST")
    assert answer.startswith(b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\n")
    assert b'"requestId"' in answer and b"X-Request-Id: " in answer
    assert (await client.get()).startswith(b"HTTP/1.1 200")  # the connection carries on
    client.close()
    assert [d.status for d in done] == [200, 502, 200]
    assert done[1].upstream_error == "reset"


async def test_a_relayed_request_the_upstream_never_answers_gets_a_504(
    start_proxy: StartProxy, upstream: StartUp
) -> None:
    up = await upstream(lambda head, n: b"" if len(up.heads) == 2 else OK)
    rt = await start_proxy(up.url, upstream_timeout=0.3)
    done: list[RequestDone] = []
    rt.bus.subscribe(RequestDone, done.append)
    client = await Client.open(rt.proxy_url)
    await client.get()
    answer = await client.get()
    client.close()
    assert answer.startswith(b"HTTP/1.1 504 Gateway Timeout\r\n")
    assert done[1].status == 504 and done[1].upstream_error == "timeout"


async def test_a_relayed_body_cut_short_closes_the_client_connection(
    start_proxy: StartProxy, upstream: StartUp
) -> None:
    short = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
    up = await upstream(lambda head, n: OK if len(up.heads) == 1 else short)
    up.close_after.add(2)  # the upstream goes away mid-body
    rt = await start_proxy(up.url)
    done: list[RequestDone] = []
    ended = asyncio.Event()
    rt.bus.subscribe(RequestDone, lambda ev: (done.append(ev), ended.set()))
    client = await Client.open(rt.proxy_url)
    await client.get()
    ended.clear()
    client.writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    async with asyncio.timeout(10):
        rest = await client.reader.read()  # the proxy closes: the client sees the truncation
        await ended.wait()
    client.close()
    assert rest.endswith(b"\r\n\r\nabc")
    assert done[-1].status == 200 and done[-1].upstream_error == "reset"


async def test_a_client_gone_mid_relay_abandons_the_upstream_connection(
    start_proxy: StartProxy, upstream: StartUp
) -> None:
    up = await upstream(lambda head, n: OK if len(up.heads) == 1 else b"")
    rt = await start_proxy(up.url)
    ended = asyncio.Event()
    done: list[RequestDone] = []
    rt.bus.subscribe(RequestDone, lambda ev: (done.append(ev), ended.set()))
    client = await Client.open(rt.proxy_url)
    await client.get()
    ended.clear()
    client.writer.write(b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n")
    await up.until_heads(2)
    reset(client.writer)  # gone, not half-closed (a half-close waits for the answer)
    async with asyncio.timeout(10):
        await ended.wait()
    assert done[-1].status == 0 and rt.core.load.inflight == 0
    # The held upstream connection is closed, not handed to the next request.
    client = await Client.open(rt.proxy_url)
    up.answers = lambda head, n: OK
    assert (await client.get()).startswith(b"HTTP/1.1 200")
    client.close()
    assert up.heads[-1][0] == 1


async def test_pipelined_requests_behind_a_relayed_one_are_answered_in_order(
    start_proxy: StartProxy, upstream: StartUp
) -> None:
    up = await upstream(lambda head, n: OK[:-5] + head.split(b" ")[1][-5:].rjust(5, b"_"))
    rt = await start_proxy(up.url)
    client = await Client.open(rt.proxy_url)
    await client.get()
    client.writer.write(b"".join(b"GET /p%04d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(5)))
    answers = [await client.answer() for _ in range(5)]
    client.close()
    assert [a[-5:] for a in answers] == [b"p%04d" % i for i in range(5)]


async def test_a_relayed_http10_request_gets_an_http10_framing(
    start_proxy: StartProxy, upstream: StartUp
) -> None:
    up = await upstream(lambda head, n: OK)
    rt = await start_proxy(up.url)
    client = await Client.open(rt.proxy_url)
    await client.get()
    client.writer.write(b"GET / HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
    answer = await client.answer()
    client.close()
    assert b"\r\nConnection: keep-alive\r\n\r\nhello" in answer


async def test_a_large_relayed_body_arrives_whole(
    start_proxy: StartProxy, upstream: StartUp
) -> None:
    body = bytes(range(256)) * 8192  # 2 MiB: more than the client's write buffer holds
    big = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    up = await upstream(lambda head, n: big)
    rt = await start_proxy(up.url)
    client = await Client.open(rt.proxy_url)
    await client.get()
    second = await client.get()
    client.close()
    assert second.endswith(body)


async def test_a_relayed_body_that_stalls_past_the_read_timeout_is_cut(
    start_proxy: StartProxy, upstream: StartUp
) -> None:
    up = await upstream(
        lambda head, n: (
            OK if len(up.heads) == 1 else b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"
        )
    )
    rt = await start_proxy(up.url, read_timeout=0.3)
    done: list[RequestDone] = []
    ended = asyncio.Event()
    rt.bus.subscribe(RequestDone, lambda ev: (done.append(ev), ended.set()))
    client = await Client.open(rt.proxy_url)
    await client.get()
    ended.clear()
    client.writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    async with asyncio.timeout(10):
        rest = await client.reader.read()
        await ended.wait()
    client.close()
    assert rest.endswith(b"\r\n\r\nabc") and done[-1].upstream_error == "timeout"


async def test_a_delay_then_a_relay_keeps_the_fault_s_accounting(
    start_proxy: StartProxy, upstream: StartUp
) -> None:
    # A latency fault registers no hook: after its delay the answer is relayed by callbacks.
    up = await upstream(lambda head, n: OK)
    rt = await start_proxy(up.url, mark_injected=True)
    done: list[RequestDone] = []
    rt.bus.subscribe(RequestDone, done.append)
    client = await Client.open(rt.proxy_url)
    await client.get()
    rt.engine.add_rule([build("latency", {"delay": "20ms"}, "f")])
    answer = await client.get()
    client.close()
    assert answer.startswith(b"HTTP/1.1 200 Fine\r\n") and answer.endswith(b"hello")
    assert b"\r\nX-Chaos-Injected: latency; " in answer
    assert done[-1].injected and done[-1].status == 200 and done[-1].duration >= 0.02
    assert done[-1].upstream_duration is not None and rt.core.load.inflight == 0


async def test_a_client_that_takes_no_bytes_of_a_relayed_answer_is_cut_at_the_send_timeout(
    start_proxy: StartProxy, upstream: StartUp
) -> None:
    body = b"x" * (16 * 1024 * 1024)  # far more than the socket buffers on the way hold
    big = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    up = await upstream(lambda head, n: OK if len(up.heads) == 1 else big)
    rt = await start_proxy(up.url, send_timeout=0.3)
    done: list[RequestDone] = []
    ended = asyncio.Event()
    rt.bus.subscribe(RequestDone, lambda ev: (done.append(ev), ended.set()))
    client = await Client.open(rt.proxy_url)
    await client.get()
    ended.clear()
    client.writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")  # and never reads the answer
    async with asyncio.timeout(20):
        await ended.wait()
    client.close()
    assert done[-1].status == 200 and rt.core.load.inflight == 0
    assert rt._proxy is not None and rt._proxy.timeouts["send"] == 1


async def test_a_client_gone_while_a_delayed_request_is_relayed_ends_it_once(
    start_proxy: StartProxy, upstream: StartUp, caplog: pytest.LogCaptureFixture
) -> None:
    # After a delay the answer is relayed; the client vanishes while the upstream holds it.
    up = await upstream(lambda head, n: OK if len(up.heads) == 1 else b"")
    rt = await start_proxy(up.url)
    done: list[RequestDone] = []
    ended = asyncio.Event()
    rt.bus.subscribe(RequestDone, lambda ev: (done.append(ev), ended.set()))
    client = await Client.open(rt.proxy_url)
    await client.get()
    rt.engine.add_rule([build("latency", {"delay": "10ms"}, "f")])
    ended.clear()
    client.writer.write(b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n")
    await up.until_heads(2)
    reset(client.writer)
    async with asyncio.timeout(10):
        await ended.wait()
    assert len(done) == 2 and done[-1].status == 0 and done[-1].injected
    assert rt.core.load.inflight == 0
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    # the proxy keeps serving, on a fresh upstream connection
    up.answers = lambda head, n: OK
    client = await Client.open(rt.proxy_url)
    assert (await client.get()).startswith(b"HTTP/1.1 200")
    client.close()


async def test_a_graceful_stop_waits_for_a_relayed_request(
    start_proxy: StartProxy, upstream: StartUp
) -> None:
    up = await upstream(lambda head, n: OK if len(up.heads) == 1 else b"")
    rt = await start_proxy(up.url, grace=10.0)
    client = await Client.open(rt.proxy_url)
    await client.get()
    client.writer.write(b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n")
    await up.until_heads(2)
    stopping = asyncio.create_task(rt.stop())
    # The upstream answers after the stop's first step (callbacks run in the order they were
    # scheduled): the listener is closing and waits for the relayed request.
    asyncio.get_running_loop().call_soon(up.writers[0].write, OK)
    answer = await client.answer()
    async with asyncio.timeout(10):
        await stopping
    client.close()
    assert answer.startswith(b"HTTP/1.1 200 Fine") and answer.endswith(b"hello")
