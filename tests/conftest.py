"""Shared fixtures: a real upstream server and a real chaosproxy in front of it, on port 0."""

from __future__ import annotations

import os
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


# The longest real runs (a minute or more each, measured): started first of all.
LONGEST = (
    "tests/cli/test_demo.py::test_demo_passes_with_failover_and_fails_without",
    "tests/experiment/test_evidence_e2e.py::",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow suites (real runs of half a minute or more, mostly waiting on real time) are
    spread over the test processes and go out first in each: pytest-xdist's work stealing hands
    each process one contiguous share of this order and later moves tests from the *end* of a
    busy share, so slow tests gathered at the front would all sit in the first process and
    run one after another. Each share here starts with its round-robin part of the slow tests,
    the longest first. The order is deterministic, as pytest-xdist needs (every process
    collects the same)."""
    slow = [i for i in items if i.get_closest_marker("slow") is not None]
    fast = [i for i in items if i.get_closest_marker("slow") is None]
    slow.sort(key=lambda i: not any(i.nodeid.startswith(n) for n in LONGEST))  # stable
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers <= 1:
        items[:] = slow + fast
        return
    ordered: list[pytest.Item] = []
    remaining = len(items)
    for k in range(workers):  # the share sizes, as the scheduler cuts them
        size = remaining // (workers - k)
        remaining -= size
        share = slow[k::workers][:size]
        ordered += share
        ordered += fast[: size - len(share)]
        del fast[: size - len(share)]
    ordered += fast
    items[:] = ordered


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
