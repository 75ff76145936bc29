"""`upload_stall`: parameters, and its HTTP/1.1 form (the request held, its body left unread:
TCP backpressure) with a real client and upstream. On HTTP/2 (the window kept shut) with
grpcio: tests/proxy/h2/test_upload_stall.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import ClientSession, web

from chaosproxy.common.errors import ConfigError
from chaosproxy.common.events import FaultInjected, RequestDone
from chaosproxy.faults import build
from chaosproxy.faults.upload_stall import UploadStallFault
from tests.faults.conftest import StartProxy


def stall(params: dict[str, object]) -> UploadStallFault:
    f = build("upload_stall", params, "fault")
    assert isinstance(f, UploadStallFault)
    return f


def test_params() -> None:
    assert (stall({}).duration, stall({}).after_bytes) == (None, 0)
    f = stall({"duration": "2s", "after_bytes": "1MiB"})
    assert (f.duration, f.after_bytes) == (2.0, 1024 * 1024)


@pytest.mark.parametrize(
    ("params", "key"), [({"duration": "soon"}, "duration"), ({"after_bytes": -1}, "after_bytes")]
)
def test_bad_params_are_located(params: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        stall(params)
    assert f"fault.upload_stall.{key}" in str(err.value)


async def test_http11_upload_is_held_then_forwarded_whole(
    start_upstream: Callable[[web.Application], Awaitable[str]], start_proxy: StartProxy
) -> None:
    """A 1 MiB POST: the upstream gets it whole, no sooner than the stall."""
    got: list[tuple[int, float]] = []

    async def sink(request: web.Request) -> web.Response:
        body = await request.read()
        got.append((len(body), time.monotonic()))
        return web.Response(text=str(len(body)))

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_post("/up", sink)
    rt = await start_proxy(await start_upstream(app))
    rt.engine.add_rule([build("upload_stall", {"duration": "500ms"}, "f")])
    t0 = time.monotonic()
    async with ClientSession() as s, s.post(f"{rt.proxy_url}/up", data=b"u" * 2**20) as r:
        assert (r.status, await r.text()) == (200, str(2**20))
    [(size, at)] = got
    assert size == 2**20 and at - t0 >= 0.5


async def test_http11_without_duration_holds_until_the_client_leaves(
    start_upstream: Callable[[web.Application], Awaitable[str]], start_proxy: StartProxy
) -> None:
    calls: list[str] = []

    async def sink(request: web.Request) -> web.Response:
        calls.append(request.path)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/up", sink)
    rt = await start_proxy(await start_upstream(app))
    rt.engine.add_rule([build("upload_stall", {}, "f")])
    acted, ended = asyncio.Event(), asyncio.Event()
    rt.bus.subscribe(FaultInjected, lambda _: acted.set())
    rt.bus.subscribe(RequestDone, lambda _: ended.set())
    async with ClientSession() as s:
        post = asyncio.ensure_future(s.post(f"{rt.proxy_url}/up", data=b"u" * 1000))
        await acted.wait()
        post.cancel()
    await ended.wait()  # the client left: the held request ended without going upstream
    assert calls == []
