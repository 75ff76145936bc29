"""The cap on open client connections (--max-connections): past it a new connection gets a JSON
503 with `Connection: close` at once, those already open keep being served, and a closed one
makes room again. With the cap derived from the open-file limit and the header timeout, idle
connections piling up cannot make the kernel refuse real clients."""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web

from chaosproxy.process.runtime import Runtime
from chaosproxy.proxy.downstream import limits
from tests.conftest import StartProxy
from tests.proxy.rawhttp import _host_port, parse_head, raw_request

GET = b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture
async def upstream(start_upstream) -> str:  # type: ignore[no-untyped-def]
    async def ping(request: web.Request) -> web.Response:
        return web.Response(text="pong")

    app = web.Application()
    app.router.add_get("/ping", ping)
    url: str = await start_upstream(app)
    return url


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status, headers = parse_head(head[:-4])
    h = {k.lower(): v for k, v in headers}
    return status, h, await reader.readexactly(int(h["content-length"]))


async def served(url: str) -> Conn:
    """A keep-alive connection that got one answer (the proxy holds it open now)."""
    reader, writer = await asyncio.open_connection(*_host_port(url))
    writer.write(GET)
    status, _, body = await read_answer(reader)
    assert (status, body) == (200, b"pong")
    return reader, writer


def gauge(rt: Runtime, name: str) -> float:
    return rt.metrics.registry.get_sample_value(name) or 0.0


async def test_past_the_cap_a_new_connection_gets_503_and_the_open_ones_are_served(
    upstream: str, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(upstream, max_connections=4)
    conns = [await served(rt.proxy_url) for _ in range(4)]
    assert gauge(rt, "chaosproxy_client_connections") == 4

    # The fifth: answered at once, before or after it sent its request, then closed.
    for wire in (GET, b""):
        reader, writer = await asyncio.open_connection(*_host_port(rt.proxy_url))
        writer.write(wire)
        async with asyncio.timeout(10):
            status, headers, body = await read_answer(reader)
            assert await reader.read() == b""
        writer.close()
        err = json.loads(body)["error"]
        assert (status, headers["connection"], headers["retry-after"]) == (503, "close", "1")
        assert err["requestId"] == headers["x-request-id"] and "--max-connections" in err["details"]
    assert gauge(rt, "chaosproxy_client_connections_refused_total") == 2

    reader, writer = conns[0]  # an open connection is served as before
    writer.write(GET)
    assert (await read_answer(reader))[0] == 200

    conns[1][1].close()  # one closes: room for a new one
    async with asyncio.timeout(10):
        while gauge(rt, "chaosproxy_client_connections") > 3:
            await asyncio.sleep(0.01)
    conns[1] = await served(rt.proxy_url)
    for _, w in conns:
        w.close()


async def read_all(reader: asyncio.StreamReader) -> bytes:
    """Everything until the proxy closes; a reset reads as nothing."""
    try:
        return await reader.read()
    except ConnectionResetError:
        return b""


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_refused_clients_that_never_close_hold_at_most_64_descriptors(
    upstream: str, start_proxy: StartProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused connection waits for its client to read the 503 and close; while 64 such
    wait, the one waiting longest is closed for the next, so a flood of connections past the
    cap gets its 503s and cannot eat the descriptors the proxy keeps in reserve."""
    monkeypatch.setattr(limits, "_REFUSAL_LINGER", 3600.0)  # none gives up by itself here
    rt = await start_proxy(upstream, max_connections=1)
    keep = await served(rt.proxy_url)
    before = _fds()
    flood = [await asyncio.open_connection(*_host_port(rt.proxy_url)) for _ in range(100)]
    async with asyncio.timeout(10):
        answers = [await read_all(reader) for reader, _ in flood]
    assert all(a.startswith(b"HTTP/1.1 503 ") for a in answers)
    assert gauge(rt, "chaosproxy_client_connections_refused_total") == 100
    assert _fds() - before == 100 + 64  # the clients' 100, and the proxy's last 64 refusals
    for _, w in flood:
        w.close()
    reader, writer = keep
    writer.write(GET)
    assert (await read_answer(reader))[0] == 200
    writer.close()


def test_the_default_cap_leaves_the_pool_and_a_reserve_under_the_open_file_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, 4096))
    assert limits.default_max_connections(pool_size=256) == 1024 - 256 - limits.FD_RESERVE
    assert limits.fd_budget_warning(640, 256) is None
    warning = limits.fd_budget_warning(5000, 256)
    assert warning is not None and "open-file limit (1024" in warning
    monkeypatch.setattr(resource, "getrlimit", lambda _: (resource.RLIM_INFINITY,) * 2)
    assert limits.default_max_connections(256) == (1 << 20) - 256 - limits.FD_RESERVE


# ---------------------------------------------------------------- the descriptor-limit attack

READY = re.compile(r"proxying (\S+) -> \S+ \(admin (\S+)\)")
NOFILE = 256  # the proxy process's open-file limit in this test


def _low_nofile() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


@dataclass
class SmallProxy:
    proc: asyncio.subprocess.Process
    proxy_url: str
    admin_url: str
    lines: list[str]

    async def stop(self) -> list[str]:
        """Terminate it; every line it logged."""
        self.proc.terminate()
        _, rest = await self.proc.communicate()
        return self.lines + rest.decode().splitlines()


@pytest.fixture
async def small_proxy(upstream: str) -> AsyncIterator[SmallProxy]:
    """`chaosproxy run` with `ulimit -n 256`, --pool-size 8, a 1 s header timeout and the
    default cap (256 - 8 - 128 = 120)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chaosproxy", "run", "--upstream", upstream,
        "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--pool-size", "8",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "CHAOSPROXY_HEADER_TIMEOUT": "1s"},  # flags read the environment
        preexec_fn=_low_nofile,
    )  # fmt: skip
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(20):
            while not (m := READY.search(lines[-1] if lines else "")):
                raw = await proc.stderr.readline()
                assert raw, "the proxy exited: " + "\n".join(lines)
                lines.append(raw.decode().rstrip("\n"))
        yield SmallProxy(proc, m.group(1), m.group(2), lines)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.slow
async def test_idle_connections_past_the_descriptor_limit_never_lock_out_real_clients(
    small_proxy: SmallProxy,
) -> None:
    """The attack: 400 connections that send nothing, more than the proxy may open.
    Past the cap newcomers get a clear 503 at once (never a wait in the kernel's backlog or a
    reset); the header timeout closes the idle ones; real clients are served again."""
    url = small_proxy.proxy_url
    close = GET[:-2] + b"Connection: close\r\n\r\n"
    idle = [await asyncio.open_connection(*_host_port(url)) for _ in range(400)]
    res = await raw_request(url, close)  # a real client, while they sit there
    assert res.status in (200, 503)
    if res.status == 503:
        assert "120 client connections" in json.loads(res.body)["error"]["details"]
    async with asyncio.timeout(30):
        closed = [await read_all(reader) for reader, _ in idle]  # the proxy closed every one
        while (await raw_request(url, close)).status != 200:  # and serves real clients again
            await asyncio.sleep(0.05)
    assert all(c == b"" or c.startswith(b"HTTP/1.1 503 ") for c in closed)
    assert sum(c.startswith(b"HTTP/1.1 503 ") for c in closed) >= 400 - 120
    for _, w in idle:
        w.close()
    metrics = await raw_request(
        small_proxy.admin_url,
        b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    refused = re.search(rb"^chaosproxy_client_connections_refused_total (\S+)$", metrics.body, re.M)
    assert refused is not None and float(refused.group(1)) >= 400 - 120
    lines = await small_proxy.stop()
    assert not [line for line in lines if "Too many open files" in line or "Traceback" in line]
