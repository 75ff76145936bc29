"""Shared fixtures: a real upstream server and a real chaosproxy in front of it, on port 0."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import yarl
from aiohttp import web
from aiohttp.test_utils import TestServer

from chaosproxy.common.clock import SYSTEM_CLOCK, Clock
from chaosproxy.process.runtime import Runtime, Settings

StartProxy = Callable[..., Awaitable[Runtime]]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow suites (real runs of a minute or so) go out first: started last, one of them
    alone would keep one test process busy after the others ran dry, and the suite would take
    as long as that tail. The order is deterministic, as pytest-xdist needs."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
async def start_upstream() -> AsyncIterator[Callable[[web.Application], Awaitable[str]]]:
    """Start a real aiohttp app on 127.0.0.1:0; returns its base URL."""
    servers: list[TestServer] = []

    async def start(app: web.Application) -> str:
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return f"http://127.0.0.1:{server.port}"

    yield start
    for s in servers:
        await s.close()


@pytest.fixture
async def start_proxy() -> AsyncIterator[StartProxy]:
    """Start a real chaosproxy Runtime (proxy + admin on port 0) in front of `upstream`."""
    runtimes: list[Runtime] = []

    async def start(upstream: str, clock: Clock = SYSTEM_CLOCK, **overrides: Any) -> Runtime:
        settings = Settings(
            upstream=yarl.URL(upstream),
            listen_host="127.0.0.1",
            listen_port=0,
            admin_host="127.0.0.1",
            admin_port=0,
            grace=overrides.pop("grace", 1.0),
            **overrides,
        )
        rt = Runtime(settings, clock)
        await rt.start()
        runtimes.append(rt)
        return rt

    yield start
    for rt in runtimes:
        await rt.stop()


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A loopback URL that refuses connections for the whole test: the port stays bound (no
    listen), so nothing else in the run can take it, and a connect gets an immediate RST."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
async def demo_upstream(start_upstream: Callable[[web.Application], Awaitable[str]]) -> str:
    from chaosproxy.demo.service import make_app

    return await start_upstream(make_app())
