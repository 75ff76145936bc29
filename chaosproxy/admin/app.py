"""Admin application: the declared routes (`routes.py`) behind one set of middlewares.

Handlers raise `ApiError(status, message, details)`; `error_middleware` turns it (and anything
unexpected) into `{"error": {...}}` with a request id, so no stack trace ever reaches a client.
With a token configured, a route needs `Authorization: Bearer <token>` as its declared `Access`
says: every route but the probes and /metrics. The router is built from `routes.ROUTES` and
nothing else, for the single proxy (`make_admin_app`) and `run --workers N`'s relay alike.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from chaosproxy.admin import handlers
from chaosproxy.admin.declare import MUTATING, Access, Route
from chaosproxy.admin.errors import ApiError
from chaosproxy.admin.handlers import PLANE
from chaosproxy.admin.plane import AdminAccess, ControlPlane
from chaosproxy.admin.routes import ROUTES

log = logging.getLogger("chaosproxy.admin")


@dataclass(frozen=True)
class Front:
    """What the middlewares read: who may call, and where fresh request ids come from. The
    admin app takes them from its control plane; `run --workers N`'s relay has its own."""

    access: AdminAccess
    request_id: Callable[[], str]


FRONT = web.AppKey("front", Front)
TOKEN: web.AppKey[str] = web.AppKey("token", str)
DECLARED: web.AppKey[dict[tuple[str, str], Route]] = web.AppKey("declared routes", dict)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

__all__ = ["PLANE", "ApiError", "make_admin_app", "routes"]


REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every admin answer carries `X-Request-Id` (the client's own when it sent one)."""
    rid = request.headers.get("X-Request-Id") or request.app[FRONT].request_id()
    request[REQUEST_ID] = rid
    try:
        response = await handler(request)
    except web.HTTPException as e:  # redirects and the like, raised rather than returned
        e.headers["X-Request-Id"] = rid
        raise
    response.headers["X-Request-Id"] = rid
    return response


def bad_request_details(details: Any, message: str) -> list[Any]:
    """A 400's details are always a list of `{"field": ..., "problem": ...}` objects."""
    if details is None:  # e.g. aiohttp's own 400s
        return [{"field": "request", "problem": message}]
    if isinstance(details, dict):
        return [details]
    if isinstance(details, list):
        return details
    return [{"field": "request", "problem": str(details)}]


def _error_response(request: web.Request, status: int, message: str, details: Any) -> web.Response:
    rid = request.get(REQUEST_ID) or request.app[FRONT].request_id()
    if status == 400:
        details = bad_request_details(details, message)
    body: dict[str, Any] = {"code": status, "message": message, "requestId": rid}
    if details is not None:
        body["details"] = details
    headers = {"X-Request-Id": rid}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="chaosproxy"'
    return web.json_response({"error": body}, status=status, headers=headers)


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
        rid = request.get(REQUEST_ID, "")
        log.exception("admin API failure %s %s [%s]", request.method, request.path, rid)
        return _error_response(request, 500, "Internal Server Error", "see the proxy log")


_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def _loopback(host: str) -> bool:
    import ipaddress

    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@web.middleware
async def browser_guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A web page must not drive the admin API through the user's browser.

    - A mutating request that carries `Origin` (browsers always send it on POST, PUT, DELETE)
      must come from the admin API's own origin: a cross-site form or fetch is refused.
    - Without a token (a loopback listener), the `Host` must name a loopback address: a page
      whose domain was re-bound to 127.0.0.1 (DNS rebinding) sends its own name and is refused.
      The same holds for a `--workers` worker's private admin (`open_reads`), whose reads need
      no token: only the supervisor calls it, by its loopback address.
    """
    origin = request.headers.get("Origin")
    if origin is not None and request.method in MUTATING:
        import yarl

        try:
            o = yarl.URL(origin)
            same = (
                o.host is not None
                and f"{o.host}:{o.port}" == f"{request.url.host}:{request.url.port}"
            )
        except (ValueError, TypeError):
            same = False
        if not same:
            raise ApiError(
                403,
                "Forbidden",
                f"cross-origin request from {origin[:100]!r} refused: the admin API is not for "
                "web pages",
            )
    access = request.app[FRONT].access
    if (not request.app[TOKEN] or access.open_reads) and not access.insecure:
        host = request.url.host or ""
        if not _loopback(host) and host != access.host:
            who = (
                "a worker's private admin API answers"
                if access.open_reads
                else "without --admin-token the admin API answers"
            )
            raise ApiError(
                403,
                "Forbidden",
                f"Host {host[:100]!r} refused: {who} only requests addressed to a loopback name "
                "(DNS rebinding guard)",
            )
    return await handler(request)


# Paths open even with a token, whatever the method (a POST /healthz is a 405, not a 401).
OPEN_PATHS = frozenset(r.path for r in ROUTES if r.access is Access.OPEN)


def access_of(request: web.Request) -> Access:
    """The declared access of the route that answers; for a request no declaration answers
    (an unknown path, another method), open on an open path, else by its method."""
    resource = request.match_info.route.resource
    if resource is not None:
        method = "GET" if request.method == "HEAD" else request.method
        route = request.app[DECLARED].get((method, resource.canonical))
        if route is not None:
            return route.access
    if request.path in OPEN_PATHS:
        return Access.OPEN
    return Access.WRITE if request.method in MUTATING else Access.READ


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """With a token set, every route but the open ones needs it (compared in constant time):
    the reads show scenarios, rules and traffic, which are not for anyone who can reach the
    port. A worker's private admin (`AdminAccess.open_reads`) needs it for writes only."""
    token = request.app[TOKEN]
    access = access_of(request) if token else Access.OPEN
    reads_open = request.app[FRONT].access.open_reads
    if access is Access.WRITE or (access is Access.READ and not reads_open):
        given = request.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        # Header bytes that are not UTF-8 arrive as surrogate escapes: compared as the bytes
        # they were (never equal to the token), not a UnicodeEncodeError and a 500.
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            value.strip().encode("utf-8", "surrogateescape"), token.encode()
        ):
            raise ApiError(
                401,
                "Unauthorized",
                "this route needs 'Authorization: Bearer <token>' (the --admin-token)",
            )
    return await handler(request)


MAX_BODY = 1024 * 1024  # bytes of any admin request body (aiohttp answers 413 past it)


def route_defs(handler_for: Callable[[Route], Handler]) -> list[web.RouteDef]:
    """Every declared route, served by `handler_for(route)` (a GET answers HEAD too)."""
    return [
        web.get(r.path, handler_for(r))
        if r.method == "GET"
        else web.route(r.method, r.path, handler_for(r))
        for r in ROUTES
    ]


def single_handler(route: Route) -> Handler:
    """The single proxy's handler of a route: the function of `handlers.py` named as it."""
    handler: Handler | None = getattr(handlers, route.name, None)
    if handler is None:
        raise LookupError(f"{route.method} {route.path}: no handlers.{route.name}")
    return handler


def routes() -> list[web.RouteDef]:
    """The single proxy's router: the declared routes, each served by its handler."""
    return route_defs(single_handler)


def guarded_app(
    front: Front, token: str | None, handler_for: Callable[[Route], Handler]
) -> web.Application:
    """An admin app serving every declared route with `handler_for(route)`, behind the
    request-id, error, browser and token guards and the body cap; shared by the single
    proxy's app and the `--workers` relay."""
    app = web.Application(
        middlewares=[
            request_id_middleware,
            error_middleware,
            browser_guard_middleware,
            auth_middleware,
        ],
        client_max_size=MAX_BODY,
    )
    app[FRONT] = front
    app[TOKEN] = token or ""
    app[DECLARED] = {(r.method, r.path): r for r in ROUTES}
    app.add_routes(route_defs(handler_for))
    return app


def make_admin_app(plane: ControlPlane, token: str | None = None) -> web.Application:
    app = guarded_app(Front(plane.access, plane.request_id), token, single_handler)
    app[PLANE] = plane
    return app
