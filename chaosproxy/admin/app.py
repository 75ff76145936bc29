"""Admin application: every route in one table; every error rendered as JSON by one middleware."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from chaosproxy.runtime import Runtime

log = logging.getLogger("chaosproxy.admin")

RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime", object)  # type: ignore[arg-type]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """An admin API error: carries its HTTP status; rendered as JSON by the error middleware."""

    def __init__(self, status: int, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details


def _error_response(request: web.Request, status: int, message: str, details: Any) -> web.Response:
    rt = request.app[RUNTIME]
    rid = request.headers.get("X-Request-Id") or rt.core.ids.next()
    body: dict[str, Any] = {"code": status, "message": message, "requestId": rid}
    if details is not None:
        body["details"] = details
    return web.json_response({"error": body}, status=status, headers={"X-Request-Id": rid})


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as e:
        return _error_response(request, e.status, e.message, e.details)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return _error_response(request, e.status, e.reason, None)
    except Exception:
        rid = request.headers.get("X-Request-Id", "")
        log.exception("admin API failure %s %s [%s]", request.method, request.path, rid)
        return _error_response(request, 500, "Internal Server Error", "see the proxy log")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    ok = await rt.upstream.reachable()
    body = {
        "status": "ready" if ok else "upstream unreachable",
        "upstream": str(rt.upstream.config.url),
    }
    return web.json_response(body, status=200 if ok else 503)


def routes() -> list[web.RouteDef]:
    """The whole admin API, in one place."""
    return [
        web.get("/healthz", healthz),
        web.get("/readyz", readyz),
    ]


def make_admin_app(runtime: Runtime) -> web.Application:
    app = web.Application(middlewares=[error_middleware])
    app[RUNTIME] = runtime
    app.add_routes(routes())
    return app
