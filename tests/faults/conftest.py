"""An upstream for fault tests: bodies of a chosen size, chosen statuses, slow answers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from tests.conftest import StartProxy


def pattern(n: int) -> bytes:
    """A body of n bytes whose content shows where a cut happened."""
    return (bytes(range(256)) * (n // 256 + 1))[:n]


@dataclass
class Upstream:
    url: str
    hits: list[str] = field(default_factory=list)
    status: int = 200  # what /flip answers; tests change it


@pytest.fixture
async def upstream(
    start_upstream: Callable[[web.Application], Awaitable[str]],
) -> Upstream:
    state = Upstream("")

    async def sized(request: web.Request) -> web.StreamResponse:
        state.hits.append(request.path_qs)
        n = int(request.query.get("n", "1024"))
        return web.Response(body=pattern(n), content_type="application/octet-stream")

    async def status(request: web.Request) -> web.Response:
        state.hits.append(request.path_qs)
        code = int(request.match_info["code"])
        return web.Response(status=code, text=f"upstream says {code}")

    async def flip(request: web.Request) -> web.Response:
        state.hits.append(request.path_qs)
        return web.Response(status=state.status, text=f"origin {state.status}")

    async def slow(request: web.Request) -> web.Response:
        state.hits.append(request.path_qs)
        await asyncio.sleep(float(request.query.get("delay", "0.2")))
        return web.Response(text="slow")

    app = web.Application()
    app.router.add_get("/bytes", sized)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/flip", flip)
    app.router.add_get("/slow", slow)
    state.url = await start_upstream(app)
    return state


__all__ = ["StartProxy", "Upstream", "pattern"]
