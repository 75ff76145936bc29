"""A small JSON service to put chaosproxy in front of: used by the demo and the tests."""

from __future__ import annotations

import asyncio
import hashlib
import json

from aiohttp import web

ITEMS = [{"id": i, "name": f"item-{i}", "price": round(9.99 + i, 2)} for i in range(1, 21)]


async def list_items(request: web.Request) -> web.Response:
    return web.json_response({"items": ITEMS, "count": len(ITEMS)})


async def get_item(request: web.Request) -> web.Response:
    try:
        item_id = int(request.match_info["id"])
    except ValueError:
        raise web.HTTPBadRequest(
            text='{"error": "id must be a number"}', content_type="application/json"
        ) from None
    for item in ITEMS:
        if item["id"] == item_id:
            return web.json_response(item)
    raise web.HTTPNotFound(
        text=json.dumps({"error": f"no item {item_id}"}), content_type="application/json"
    )


async def slow(request: web.Request) -> web.Response:
    """`/api/slow?delay=0.5`: answers after the delay (seconds, at most 30)."""
    try:
        delay = min(float(request.query.get("delay", "1")), 30.0)
    except ValueError:
        delay = 1.0
    await asyncio.sleep(delay)
    return web.json_response({"slept": delay})


async def echo(request: web.Request) -> web.Response:
    """Streams the upload through sha256 without keeping it, and reports size and digest."""
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.content.iter_any():
        digest.update(chunk)
        size += len(chunk)
    return web.json_response({"bytes": size, "sha256": digest.hexdigest()})


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def static(request: web.Request) -> web.Response:
    return web.Response(text="console.log('demo app');\n", content_type="application/javascript")


# What `GET /` lists: a visitor's first request finds the rest.
ROUTES = {
    "GET /api/items": "the 20 items, as JSON",
    "GET /api/items/{id}": "one item (1..20); 404 JSON for another id",
    "GET /api/slow?delay=SECONDS": "answers after the delay (at most 30 s)",
    "POST /api/echo": "the upload's size and sha256",
    "GET /static/app.js": "a small JavaScript file",
    "GET /healthz": '{"status": "ok"}',
}


async def index(request: web.Request) -> web.Response:
    return web.json_response({"service": "chaosproxy demo service", "routes": ROUTES})


def make_app() -> web.Application:
    app = web.Application()
    app.add_routes(
        [
            web.get("/", index),
            web.get("/api/items", list_items),
            web.get("/api/items/{id}", get_item),
            web.get("/api/slow", slow),
            web.post("/api/echo", echo),
            web.get("/static/app.js", static),
            web.get("/healthz", health),
        ]
    )
    return app
