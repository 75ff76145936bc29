"""The Toxiproxy-compatible HTTP API (`chaosproxy run --toxiproxy-api`): Toxiproxy's routes,
status codes and JSON shapes, so its clients (toxiproxy-python, toxiproxy-go, the Node client,
Testcontainers' module) drive chaosproxy's TCP proxies unchanged.

Every answer carries a request id (`X-Toxiproxy-Request-Id`, Toxiproxy's header, and
`X-Request-Id`, chaosproxy's); every failure is `{"error": ..., "status": ...}` (plus the
request id), never a stack trace; bodies are bounded (MAX_BODY) and so is their nesting.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from chaosproxy.common.ids import RequestIds
from chaosproxy.toxiproxy import model
from chaosproxy.toxiproxy.errors import ToxiproxyError, bad_body
from chaosproxy.toxiproxy.state import Proxies

log = logging.getLogger("chaosproxy.toxiproxy")

MAX_BODY = 1024 * 1024  # bytes of one request body: /populate of MAX_POPULATE proxies fits
TOXIPROXY_VERSION = "2.12.0"  # the Toxiproxy API this one follows (docs/toxiproxy.md)

PROXIES = web.AppKey("proxies", Proxies)
IDS = web.AppKey("request ids", RequestIds)
REQUEST_ID: web.RequestKey[str] = web.RequestKey("toxiproxy request id", str)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data, separators=(",", ":")),
        status=status,
        content_type="application/json",
    )


def _error(request: web.Request, status: int, message: str, **more: Any) -> web.Response:
    body = {"error": message, "status": status, **more, "request_id": request[REQUEST_ID]}
    return _json(body, status)


@web.middleware
async def front(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request ids, the browser guard and the one error funnel."""
    rid = request.headers.get("X-Request-Id") or request.app[IDS].next()
    request[REQUEST_ID] = rid
    try:
        if request.headers.get("User-Agent", "").startswith("Mozilla/"):
            # Toxiproxy's guard: a web page must not drive the API through a browser.
            response: web.StreamResponse = _error(request, 403, "User agent not allowed")
        else:
            response = await handler(request)
    except ToxiproxyError as e:
        response = _error(request, e.status, e.message)
    except web.HTTPException as e:
        message = "404 page not found" if e.status == 404 else e.reason
        if e.status == 413:
            message = f"bad request body: larger than {MAX_BODY} bytes"
        response = _error(request, e.status, message)
    except Exception:
        log.exception(
            "toxiproxy API: %s %s failed (request id %s)", request.method, request.path, rid
        )
        response = _error(request, 500, f"internal error (request id {rid})")
    response.headers["X-Toxiproxy-Request-Id"] = rid
    response.headers["X-Request-Id"] = rid
    return response


async def body_of(request: web.Request) -> Any:
    """The request's JSON body; a bad one is Toxiproxy's `bad request body: ...` 400."""
    raw = await request.read()  # bounded by the app's client_max_size (413 past it)
    if not raw.strip():
        raise bad_body("empty (a JSON document was expected)")
    try:
        return json.loads(raw)
    except RecursionError:
        raise bad_body("nested too deeply") from None
    except UnicodeDecodeError:
        raise bad_body("not UTF-8") from None
    except ValueError as e:
        raise bad_body(str(e)) from None


def _proxies(request: web.Request) -> Proxies:
    return request.app[PROXIES]


async def version(request: web.Request) -> web.Response:
    from chaosproxy import __version__

    return _json({"version": TOXIPROXY_VERSION, "chaosproxy": __version__})


async def proxy_index(request: web.Request) -> web.Response:
    return _json(_proxies(request).all())


async def proxy_create(request: web.Request) -> web.Response:
    spec = model.new_proxy(await body_of(request))
    return _json(await _proxies(request).create(spec), 201)


async def populate(request: web.Request) -> web.Response:
    """Toxiproxy answers 201 with the proxies, or the error's status with the error and the
    proxies done before it (`null` when none, as Toxiproxy's Go encoder writes them)."""
    try:
        specs = model.populate(await body_of(request))
    except ToxiproxyError as e:
        return _error(request, e.status, e.message, proxies=None)
    done, error = await _proxies(request).populate(specs)
    if error is not None:
        return _error(request, error.status, error.message, proxies=done or None)
    return _json({"proxies": done or None}, 201)


async def proxy_show(request: web.Request) -> web.Response:
    proxies = _proxies(request)
    return _json(proxies.show(proxies.info(request.match_info["proxy"])))


async def proxy_update(request: web.Request) -> web.Response:
    proxies = _proxies(request)
    name = request.match_info["proxy"]
    proxies.info(name)  # 404 before the body is read, as Toxiproxy
    return _json(await proxies.update(name, await body_of(request)))


async def proxy_delete(request: web.Request) -> web.Response:
    await _proxies(request).delete(request.match_info["proxy"])
    return web.Response(status=204)


async def reset(request: web.Request) -> web.Response:
    await _proxies(request).reset()
    return web.Response(status=204)


async def toxic_index(request: web.Request) -> web.Response:
    toxics = _proxies(request).toxics(request.match_info["proxy"])
    return _json([t.to_json() for t in toxics])


async def toxic_create(request: web.Request) -> web.Response:
    """200, not 201: Toxiproxy's answer here."""
    proxies = _proxies(request)
    name = request.match_info["proxy"]
    proxies.info(name)
    toxic = await proxies.add_toxic(name, await body_of(request))
    return _json(toxic.to_json())


async def toxic_show(request: web.Request) -> web.Response:
    m = request.match_info
    return _json(_proxies(request).toxic(m["proxy"], m["toxic"]).to_json())


async def toxic_update(request: web.Request) -> web.Response:
    m = request.match_info
    proxies = _proxies(request)
    proxies.toxic(m["proxy"], m["toxic"])
    return _json(
        (await proxies.update_toxic(m["proxy"], m["toxic"], await body_of(request))).to_json()
    )


async def toxic_delete(request: web.Request) -> web.Response:
    m = request.match_info
    await _proxies(request).remove_toxic(m["proxy"], m["toxic"])
    return web.Response(status=204)


def make_toxiproxy_app(proxies: Proxies, ids: RequestIds | None = None) -> web.Application:
    app = web.Application(middlewares=[front], client_max_size=MAX_BODY)
    app[PROXIES] = proxies
    app[IDS] = ids or RequestIds()
    r = app.router
    r.add_post("/reset", reset)
    r.add_get("/proxies", proxy_index, allow_head=False)
    r.add_post("/proxies", proxy_create)
    r.add_post("/populate", populate)
    r.add_get("/proxies/{proxy}", proxy_show, allow_head=False)
    r.add_post("/proxies/{proxy}", proxy_update)
    r.add_patch("/proxies/{proxy}", proxy_update)
    r.add_delete("/proxies/{proxy}", proxy_delete)
    r.add_get("/proxies/{proxy}/toxics", toxic_index, allow_head=False)
    r.add_post("/proxies/{proxy}/toxics", toxic_create)
    r.add_get("/proxies/{proxy}/toxics/{toxic}", toxic_show, allow_head=False)
    r.add_post("/proxies/{proxy}/toxics/{toxic}", toxic_update)
    r.add_patch("/proxies/{proxy}/toxics/{toxic}", toxic_update)
    r.add_delete("/proxies/{proxy}/toxics/{toxic}", toxic_delete)
    r.add_get("/version", version, allow_head=False)
    return app
