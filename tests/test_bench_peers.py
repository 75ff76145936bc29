"""The benchmark's peers really proxy: a probe that answered errors would make its numbers lie.

`bench/` holds scripts, not tests, but the yardstick and the two ceiling probes are measured
against chaosproxy: each must carry a request to the upstream and its answer back unchanged.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from chaosproxy.experiment.processes import free_port

BENCH = Path(__file__).resolve().parent.parent / "bench"
PEERS = ["yardstick_proxy.py", "probe_aiohttp_pool.py", "probe_httptools.py"]
# The httptools probe forwards request heads only: what the benchmark sends.
WITH_BODIES = {"yardstick_proxy.py", "probe_aiohttp_pool.py"}


@pytest.mark.parametrize("script", PEERS)
async def test_peer_carries_requests_both_ways(
    script: str, start_upstream: Callable[[web.Application], Awaitable[str]]
) -> None:
    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(body=body or b"small", headers={"X-Seen": request.path_qs})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    upstream = await start_upstream(app)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(BENCH / script),
            "--upstream",
            upstream,
            "--listen",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=str(BENCH),
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # each peer prints one line once it listens
        timeout = aiohttp.ClientTimeout(total=60)  # a hang fails the test instead of stalling it
        async with aiohttp.ClientSession(timeout=timeout) as s:
            for _ in range(3):  # keep-alive: the same connection carries the next one
                async with s.get(f"http://127.0.0.1:{port}/small?x=1") as r:
                    assert (r.status, await r.read(), r.headers["X-Seen"]) == (
                        200,
                        b"small",
                        "/small?x=1",
                    )
            if script not in WITH_BODIES:
                return
            async with s.post(f"http://127.0.0.1:{port}/echo", data=b"a" * 70_000) as r:
                assert (r.status, await r.read()) == (200, b"a" * 70_000)
    finally:
        proc.terminate()
        proc.wait(10)
