"""Hostile upstreams: each way a service can break HTTP/1.1, what a client of the proxy sees,
and that the proxy keeps serving afterwards with its tasks, file descriptors and memory back
where they were. The outcomes are the table "Broken upstreams" in docs/reliability.md.

The proxy runs in this process with a real listener (tasks can be counted); the upstream is a raw
asyncio server that misbehaves by request path; clients are raw sockets (the exact bytes count).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from tests.cli import test_run_cli
from tests.cli.test_run_cli import LOCAL, SpawnProxy
from tests.conftest import StartProxy
from tests.proxy.rawhttp import RawResponse, raw_request

spawn_proxy = test_run_cli.spawn_proxy  # the real `chaosproxy run` subprocess, as a fixture here

Act = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]

UPSTREAM_TIMEOUT = 2.0  # --upstream-timeout for these proxies: the silent upstream's 504
SMUGGLED = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"
HUGE_HEAD = 20 * 1024 * 1024


def _ok(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


# Each behaviour answers one request; True keeps the connection for the next one.


async def ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    writer.write(_ok(b"fine"))
    return True


async def close_mid_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: te")
    return False


async def reset_mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
    await writer.drain()
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()  # RST
    return False


async def close_mid_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
    return False


async def length_too_long(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"y" * 40)
    return False  # FIN after 40 of the 100 bytes promised


async def length_too_short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    # Five bytes promised, then a whole second response nobody asked for, in the same write:
    # reused, the connection would answer the next request with it.
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" + SMUGGLED)
    return True


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    writer.write(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
    await reader.read()  # until the proxy closes
    return False


async def switch_unasked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    writer.write(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    )
    await reader.read()
    return False


async def interim(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    writer.write(
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nLink: </style.css>; rel=preload\r\nContent-Length: 5\r\n\r\nfinal"
    )
    return True


async def huge_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """20 MB of header lines (1 KiB each), written as fast as the proxy reads them."""
    writer.write(b"HTTP/1.1 200 OK\r\n")
    line = b"X-Filler: " + b"a" * 1012 + b"\r\n"
    block = line * 64
    for _ in range(HUGE_HEAD // len(block)):
        writer.write(block)
        await writer.drain()  # ConnectionError once the proxy closes: the handler ends
    writer.write(b"Content-Length: 0\r\n\r\n")
    await reader.read()
    return False


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    await reader.read()  # never answers; ends when the proxy gives up and closes
    return False


async def half_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    writer.write(_ok(b"fine"))
    writer.write_eof()  # FIN: nothing more will come, but the socket stays open for reading
    await reader.read()
    return False


BEHAVIOURS: dict[str, Act] = {
    "/ok": ok,
    "/close-mid-head": close_mid_head,
    "/reset-mid-body": reset_mid_body,
    "/close-mid-chunked": close_mid_chunked,
    "/length-too-long": length_too_long,
    "/length-too-short": length_too_short,
    "/garbage": garbage,
    "/switch-unasked": switch_unasked,
    "/interim": interim,
    "/huge-head": huge_head,
    "/silent": silent,
    "/half-close": half_close,
}


async def serve_hostile(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            act = BEHAVIOURS[head.split(b" ", 2)[1].decode()]
            keep = await act(reader, writer)
            await writer.drain()
            if not keep:
                return
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


@dataclass(frozen=True)
class Usage:
    tasks: int
    fds: int
    rss: int


def usage() -> Usage:
    with open("/proc/self/status") as f:
        rss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
    return Usage(len(asyncio.all_tasks()), len(os.listdir("/proc/self/fd")), rss)


@dataclass
class Hostile:
    proxy_url: str

    async def get(self, path: str) -> RawResponse:
        request = f"GET {path} HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n\r\n".encode()
        return await raw_request(self.proxy_url, request, timeout=30)

    async def settled(self, base: Usage) -> Usage:
        """Usage once tasks and fds are back to `base` (or the deadline: then as it is)."""
        now = usage()
        async with asyncio.timeout(10):
            while now.tasks > base.tasks or now.fds > base.fds:
                await asyncio.sleep(0.02)
                now = usage()
        return now


@pytest.fixture
async def hostile(start_proxy: StartProxy) -> AsyncIterator[Hostile]:
    server = await asyncio.start_server(serve_hostile, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    proxy = await start_proxy(f"http://127.0.0.1:{port}", upstream_timeout=UPSTREAM_TIMEOUT)
    h = Hostile(proxy.proxy_url)
    for _ in range(3):  # warm: imports done, one idle upstream connection in the pool
        assert (await h.get("/ok")).body == b"fine"
    yield h
    server.close()


def error_of(r: RawResponse) -> dict[str, object]:
    """The proxy's JSON error, checked to carry this response's request id."""
    err = json.loads(r.body)["error"]
    assert isinstance(err, dict) and err["requestId"] == r.header("X-Request-Id")
    return err


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.exc_info or r.exc_text or "Traceback" in r.getMessage()
    ]


CASES = [
    "close-mid-head",
    "reset-mid-body",
    "close-mid-chunked",
    "length-too-long",
    "length-too-short",
    "garbage",
    "switch-unasked",
    "interim",
    "huge-head",
    "silent",
    "half-close",
]


def check_outcome(case: str, r: RawResponse) -> None:
    """What the client sees, case by case (the table in docs/reliability.md)."""
    if case in ("close-mid-head", "garbage", "switch-unasked", "huge-head"):
        assert r.status == 502
        error_of(r)
    elif case == "silent":
        assert r.status == 504
        error_of(r)
    elif case == "reset-mid-body":
        # The head went out: the proxy cannot take it back, so it cuts the connection short of
        # the length it announced.
        assert (r.status, r.header("Content-Length"), r.body) == (200, "1000", b"x" * 10)
    elif case == "length-too-long":
        assert (r.status, r.header("Content-Length"), r.body) == (200, "100", b"y" * 40)
    elif case == "close-mid-chunked":
        # Chunked to the client too, and closed without the last chunk: visibly incomplete.
        assert (r.status, r.header("Transfer-Encoding")) == (200, "chunked")
        assert r.body == b"5\r\nfirst\r\n"
    elif case == "length-too-short":
        assert (r.status, r.body) == (200, b"hello")
    elif case == "interim":
        # The interim responses are dropped: the client sees only the final one.
        assert (r.status, r.body) == (200, b"final")
        assert r.header("Link") == "</style.css>; rel=preload"
    elif case == "half-close":
        assert (r.status, r.body) == (200, b"fine")
    else:
        raise AssertionError(case)


@pytest.mark.parametrize("case", CASES)
async def test_client_sees_the_documented_outcome_and_the_proxy_recovers(
    case: str, hostile: Hostile, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    base = usage()
    check_outcome(case, await hostile.get(f"/{case}"))
    for _ in range(3):  # the next requests are served, never with bytes of the broken one
        assert (await hostile.get("/ok")).body == b"fine"
    after = await hostile.settled(base)
    assert (after.tasks, after.fds) == (base.tasks, base.fds)
    assert after.rss - base.rss < 32 * 1024 * 1024
    assert no_tracebacks(caplog) == []


async def test_a_huge_upstream_head_is_logged_once(
    hostile: Hostile, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    r = await hostile.get("/huge-head")
    assert r.status == 502
    rid = r.header("X-Request-Id")
    assert rid is not None
    lines = [rec for rec in caplog.records if rid in rec.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING


async def test_bytes_after_a_response_never_answer_the_next_request(
    start_proxy: StartProxy,
) -> None:
    """Content-Length shorter than what follows, the rest arriving after the response: those
    bytes must never be read as the answer to the next request on that connection: the upstream
    client closes the connection when they arrive."""
    answered = asyncio.Event()  # the client has its response
    late = asyncio.Event()  # the unasked bytes are on the wire (in the proxy's socket buffer)
    closed = asyncio.Event()  # the proxy closed the connection that spoke unasked

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if head.startswith(b"GET /late "):
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
                    await answered.wait()
                    writer.write(SMUGGLED)
                    await writer.drain()
                    late.set()
                else:
                    writer.write(_ok(b"fine"))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            closed.set()
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        proxy = await start_proxy(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
        h = Hostile(proxy.proxy_url)
        assert (await h.get("/late")).body == b"hello"
        answered.set()
        async with asyncio.timeout(10):
            await late.wait()
            await closed.wait()
        assert [(await h.get("/ok")).body for _ in range(2)] == [b"fine", b"fine"]
        async with asyncio.timeout(10):
            await closed.wait()
    finally:
        server.close()


def proc_usage(pid: int) -> Usage:
    """A subprocess's fds and RSS, from /proc (its tasks are not visible from here: 0)."""
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
    return Usage(0, len(os.listdir(f"/proc/{pid}/fd")), rss)


async def test_a_20_mb_upstream_head_is_a_502_and_the_proxy_does_not_grow(
    spawn_proxy: SpawnProxy,
) -> None:
    server = await asyncio.start_server(serve_hostile, "127.0.0.1", 0)
    try:
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        p = await spawn_proxy("--upstream", url, *LOCAL)
        h = Hostile(p.proxy_url)
        for _ in range(3):
            assert (await h.get("/ok")).body == b"fine"
        before = proc_usage(p.proc.pid)
        r = await h.get("/huge-head")
        assert r.status == 502 and "head" in str(error_of(r)["details"])
        for _ in range(3):
            assert (await h.get("/ok")).body == b"fine"
        after = proc_usage(p.proc.pid)
        async with asyncio.timeout(10):
            while after.fds > before.fds:
                await asyncio.sleep(0.02)
                after = proc_usage(p.proc.pid)
        assert after.fds == before.fds  # the connection that sent it was closed
        assert after.rss - before.rss < 64 * 1024 * 1024  # vs 20 MB offered
    finally:
        server.close()
