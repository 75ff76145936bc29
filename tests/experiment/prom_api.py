"""A stand-in Prometheus HTTP API for the tests of `prom_client` and `prom_series`: an app that
gives one answer to every query, one that answers each query with its own document, and the
PromQL the real-Prometheus tests ask."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

Serve = Callable[[web.Application], Awaitable[str]]


REQUESTS = "sum(rate(chaosproxy_requests_total[5s]))"


ERRORS = 'sum(rate(chaosproxy_requests_total{code=~"5..|0"}[5s]))'


# `or vector(0)`: until a 5xx series exists, the numerator has no data and so would the ratio.
ERROR_RATIO = f"({ERRORS} or vector(0)) / sum(rate(chaosproxy_requests_total[5s]))"


BARE_ERROR_RATIO = f"{ERRORS} / sum(rate(chaosproxy_requests_total[5s]))"


def api(
    answer: dict[str, Any], status: int = 200, seen: list[dict[str, str]] | None = None
) -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        if seen is not None:
            seen.append(dict(await request.post()))
        return web.json_response(answer, status=status)

    app = web.Application()
    app.router.add_route("*", "/api/v1/query_range", handler)
    return app


def by_query(
    answers: dict[str, dict[str, Any]], seen: list[dict[str, str]] | None = None
) -> web.Application:
    """A stand-in API answering each query with its own document (unknown: an error)."""

    async def handler(request: web.Request) -> web.Response:
        form = dict(await request.post())
        if seen is not None:
            seen.append({k: str(v) for k, v in form.items()})
        answer = answers.get(str(form.get("query")))
        if answer is None:
            return web.json_response(
                {"status": "error", "errorType": "bad_data", "error": "unknown query"}, status=400
            )
        return web.json_response(answer)

    app = web.Application()
    app.router.add_route("*", "/api/v1/query_range", handler)
    return app


def matrix(*series: list[list[Any]]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {"resultType": "matrix", "result": [{"metric": {}, "values": v} for v in series]},
    }
