"""The runtime wires listeners together: admin health, readiness, graceful stop."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import StartProxy


async def accepts(url: str) -> bool:
    host, port = url.split("//")[1].rsplit(":", 1)
    try:
        _, writer = await asyncio.open_connection(host, int(port))
    except ConnectionError:  # refused, or reset by a listener closing mid-handshake
        return False
    writer.close()
    return True


@pytest.mark.parametrize(
    ("upstream_up", "route", "expected"),
    [
        (True, "/healthz", 200),
        (True, "/readyz", 200),
        (False, "/readyz", 503),  # ready means the upstream is reachable
        (False, "/healthz", 200),  # alive does not depend on the upstream
    ],
    ids=["healthz-up", "readyz-up", "readyz-upstream-down", "healthz-upstream-down"],
)
async def test_health_and_readiness(
    upstream_up: bool,
    route: str,
    expected: int,
    demo_upstream: str,
    refused_url: str,
    start_proxy: StartProxy,
) -> None:
    rt = await start_proxy(demo_upstream if upstream_up else refused_url)
    async with aiohttp.ClientSession() as s, s.get(rt.admin_url + route) as r:
        assert r.status == expected


async def test_stop_waits_for_the_in_flight_request(
    start_upstream: object, start_proxy: StartProxy
) -> None:
    arrived, release = asyncio.Event(), asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        arrived.set()
        await release.wait()
        return web.Response(text="done")

    app = web.Application()
    app.router.add_get("/wait", handler)
    up = await start_upstream(app)  # type: ignore[operator]
    rt = await start_proxy(up, grace=5.0)
    async with aiohttp.ClientSession() as s:
        inflight = asyncio.ensure_future(s.get(rt.proxy_url + "/wait"))
        await asyncio.wait_for(arrived.wait(), 5)
        stopping = asyncio.ensure_future(rt.stop())
        async with asyncio.timeout(5):  # stop() has begun once the listener is gone
            while await accepts(rt.proxy_url):
                await asyncio.sleep(0.01)
        release.set()
        r = await asyncio.wait_for(inflight, 5)
        assert (r.status, await r.text()) == (200, "done")
        await asyncio.wait_for(stopping, 5)
    assert rt.stopped.is_set()


def test_importing_the_runtime_does_not_import_locust_or_gevent() -> None:
    code = (
        "import sys, chaosproxy.process.runtime, chaosproxy.cli; "
        "print(sorted(m for m in ('locust', 'gevent') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert out.stdout.strip() == "[]"
