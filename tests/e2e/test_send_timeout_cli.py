"""`chaosproxy run --send-timeout`: the flag reaches the listener, a client that stops reading
is closed once it passed, the upstream pool is free again, and `/metrics` counts it."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from tests.proxy.test_hostile_third_round import big_app

StartUpstream = Callable[[web.Application], Awaitable[str]]
READY = re.compile(r"proxying http://(\S+):(\d+) -> \S+ \(admin (\S+)\)")


@pytest.fixture
async def proxy_process() -> AsyncIterator[Callable[..., Awaitable[tuple[str, int, str]]]]:
    procs: list[asyncio.subprocess.Process] = []

    async def spawn(*args: str) -> tuple[str, int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chaosproxy", "run",
            "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--grace", "1s", *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        procs.append(proc)
        assert proc.stderr is not None
        seen: list[str] = []
        async with asyncio.timeout(20):
            while line := (await proc.stderr.readline()).decode():
                seen.append(line)
                if m := READY.search(line):
                    return m.group(1), int(m.group(2)), m.group(3)
        raise AssertionError("the proxy exited early: " + "".join(seen))

    yield spawn
    for p in procs:
        if p.returncode is None:
            p.kill()
            await p.wait()


async def test_send_timeout_flag_closes_a_client_that_stopped_reading_and_frees_the_pool(
    start_upstream: StartUpstream, proxy_process: Callable[..., Awaitable[tuple[str, int, str]]]
) -> None:
    upstream = await start_upstream(big_app(64))
    host, port, admin = await proxy_process(
        "--upstream", upstream, "--pool-size", "1", "--send-timeout", "500ms",
        "--upstream-timeout", "5s",
    )  # fmt: skip
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    async with asyncio.timeout(10):
        await reader.readuntil(b"\r\n\r\n")  # the pool's one connection is streaming to it
    # ... and it reads no more. The next client waits for the pool until the send timeout
    # closes the first (with the 60s default it would get a 504 at --upstream-timeout).
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://{host}:{port}/after") as r:
            assert (r.status, await r.read()) == (200, b"ok")
        async with s.get(f"{admin}/metrics") as r:
            text = await r.text()
    assert 'chaosproxy_client_timeouts_total{kind="send"} 1.0' in text
    async with asyncio.timeout(10):  # closed by the proxy: what it had sent, then the end
        with contextlib.suppress(ConnectionError):
            while await reader.read(1 << 20):
                pass
    writer.close()
