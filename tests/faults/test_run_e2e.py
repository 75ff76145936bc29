"""All twelve faults end to end through `chaosproxy run --scenario`, one route each."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.faults.conftest import Upstream
from tests.faults.test_reset import raw_get

READY = re.compile(r"proxying (\S+) -> \S+ \(admin (\S+)\)")

SCENARIO = """\
name: every-fault
phases:
  - name: all
    duration: 10m
    rules:
      - {name: error, match: {path: /error/**}, fault: {error: {status: 418}}}
      - {name: latency, match: {path: /latency/**}, fault: {latency: {delay: 300ms}}}
      - {name: reset, match: {path: /reset/**}, fault: {reset: {}}}
      - name: hang
        match: {path: /hang/**}
        fault: {hang: {duration: 100ms, then: error, status: 504}}
      - {name: throttle, match: {path: /throttle/**}, fault: {throttle: {rate: 64KiB/s}}}
      - {name: truncate, match: {path: /truncate/**}, fault: {truncate: {bytes: 10}}}
      - {name: malformed, match: {path: /malformed/**}, fault: {malformed: {kind: garbage}}}
      - name: pool
        match: {path: /pool/**}
        fault: {pool_exhaustion: {size: 1, hold: 1s, queue_timeout: 0}}
      - {name: rate, match: {path: /rate/**}, fault: {rate_limit: {rps: 0.1, burst: 1}}}
      - {name: stale, match: {path: /flip}, fault: {stale_error: {ttl: 1m}}}
      - {name: down, match: {path: /down/**}, fault: {upstream_down: {}}}
      - {name: slicer, match: {path: /slicer/**}, fault: {slicer: {size: 4, delay: 100ms}}}
"""


@pytest.fixture
async def proxy(upstream: Upstream, tmp_path: Path) -> AsyncIterator[str]:
    scenario = tmp_path / "every-fault.yaml"
    scenario.write_text(SCENARIO)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chaosproxy",
        "run",
        "--upstream",
        upstream.url,
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--scenario",
        str(scenario),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    async with asyncio.timeout(20):
        while not (m := READY.search(lines[-1] if lines else "")):
            raw = await proc.stderr.readline()
            assert raw, "proxy exited early: " + "\n".join(lines)
            lines.append(raw.decode())
    drain = asyncio.create_task(proc.stderr.read())  # keep the log pipe from filling
    yield m.group(1)
    proc.kill()
    await proc.wait()
    await drain


async def get(s: aiohttp.ClientSession, url: str) -> tuple[int, bytes]:
    async with s.get(url) as r:
        return r.status, await r.read()


async def test_every_fault_acts_through_the_cli(proxy: str, upstream: Upstream) -> None:
    async with aiohttp.ClientSession() as s:
        assert (await get(s, proxy + "/bytes?n=5"))[0] == 200  # no rule: untouched

        assert (await get(s, proxy + "/error/x"))[0] == 418

        t0 = time.monotonic()
        assert (await get(s, proxy + "/latency/x"))[0] == 404  # the upstream's own answer
        assert time.monotonic() - t0 >= 0.3

        data, error = await raw_get(proxy, "/reset/x")
        assert data == b"" and isinstance(error, ConnectionResetError)

        assert (await get(s, proxy + "/hang/x"))[0] == 504

        status, body = await get(s, proxy + "/throttle/x")  # the upstream answers 404 text
        assert status == 404 and body.startswith(b"404")

        with pytest.raises(aiohttp.ClientPayloadError):
            await get(s, proxy + "/truncate/x")

        with pytest.raises(aiohttp.ClientResponseError):
            await get(s, proxy + "/malformed/x")

        first, second = await asyncio.gather(get(s, proxy + "/pool/x"), get(s, proxy + "/pool/x"))
        assert sorted([first[0], second[0]]) == [404, 500]

        assert [(await get(s, proxy + "/rate/x"))[0] for _ in range(2)] == [404, 429]

        upstream.status = 503
        assert await get(s, proxy + "/flip") == (503, b"origin 503")
        upstream.status = 200
        assert await get(s, proxy + "/flip") == (503, b"origin 503")
        assert upstream.hits.count("/flip") == 1

        status, body = await get(s, proxy + "/down/x")
        assert status == 502 and b"cannot connect to the upstream" in body

        t0 = time.monotonic()
        status, body = await get(s, proxy + "/slicer/x")  # 404 text, 4 bytes a piece
        assert status == 404 and body.startswith(b"404")
        pauses = (len(body) + 3) // 4 - 1  # a pause before every piece but the first
        assert time.monotonic() - t0 >= 0.1 * pauses
