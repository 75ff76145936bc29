"""The demo service as a visitor meets it: `/` lists the routes, and each listed route answers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from chaosproxy.demo.service import make_app

StartUpstream = Callable[[web.Application], Awaitable[str]]


async def test_root_is_a_json_index_of_the_routes(start_upstream: StartUpstream) -> None:
    url = await start_upstream(make_app())
    async with aiohttp.ClientSession() as s, s.get(url + "/") as r:
        body = await r.json()
    assert r.status == 200
    assert set(body["routes"]) == {
        "GET /api/items",
        "GET /api/items/{id}",
        "GET /api/slow?delay=SECONDS",
        "POST /api/echo",
        "GET /static/app.js",
        "GET /healthz",
    }


async def test_every_route_the_index_lists_answers(start_upstream: StartUpstream) -> None:
    url = await start_upstream(make_app())
    async with aiohttp.ClientSession() as s:
        async with s.get(url + "/") as r:
            routes = (await r.json())["routes"]
        for route in routes:
            method, path = route.split(" ", 1)
            path = path.replace("{id}", "3").replace("SECONDS", "0")
            async with s.request(method, url + path, data=b"x" if method == "POST" else None) as r:
                assert r.status == 200, route
