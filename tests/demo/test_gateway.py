"""The demo's gateway, the system the demo experiments judge: with failover it serves the
replica's answer when the primary fails, without it the primary's failure reaches the client,
and its breaker stops calling a primary that keeps failing. Real servers on loopback."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from chaosproxy.demo.gateway import GatewayConfig, make_gateway

StartUpstream = Callable[[web.Application], Awaitable[str]]


def backend(name: str, status: int, seen: list[web.Request]) -> web.Application:
    """A service answering every path with `status` and its own name, keeping what it got."""

    async def answer(request: web.Request) -> web.Response:
        seen.append(request)
        body = await request.read()
        return web.json_response(
            {"by": name, "path": request.path_qs, "body": body.decode()}, status=status
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


async def ask(url: str, method: str = "GET", **kw: object) -> tuple[int, str, dict[str, object]]:
    async with aiohttp.ClientSession() as s, s.request(method, url, **kw) as r:  # type: ignore[arg-type]
        return r.status, r.headers["X-Served-By"], await r.json()


async def test_a_healthy_primary_answers_and_only_the_propagated_headers_reach_it(
    start_upstream: StartUpstream,
) -> None:
    seen: list[web.Request] = []
    primary = await start_upstream(backend("primary", 200, seen))
    gw = await start_upstream(make_gateway(GatewayConfig(primary=primary)))
    status, served, body = await ask(
        gw + "/api/items?x=1",
        "POST",
        data=b"hello",
        headers={"X-Chaos-Run": "exp-1", "X-Secret": "no", "Content-Type": "text/plain"},
    )
    assert (status, served) == (200, "primary")
    assert body == {"by": "primary", "path": "/api/items?x=1", "body": "hello"}
    [request] = seen
    assert request.headers["X-Chaos-Run"] == "exp-1"
    assert "X-Secret" not in request.headers


async def test_a_failing_primary_fails_over_to_the_replica(start_upstream: StartUpstream) -> None:
    primary = await start_upstream(backend("primary", 503, []))
    replica = await start_upstream(backend("replica", 200, []))
    gw = await start_upstream(make_gateway(GatewayConfig(primary=primary, replica=replica)))
    status, served, body = await ask(gw + "/api/items")
    assert (status, served, body["by"]) == (200, "replica", "replica")


async def test_a_primary_that_refuses_connections_fails_over_too(
    start_upstream: StartUpstream, refused_url: str
) -> None:
    replica = await start_upstream(backend("replica", 200, []))
    gw = await start_upstream(make_gateway(GatewayConfig(primary=refused_url, replica=replica)))
    status, served, _ = await ask(gw + "/api/items")
    assert (status, served) == (200, "replica")


async def test_without_failover_the_primarys_failure_reaches_the_client(
    start_upstream: StartUpstream, refused_url: str
) -> None:
    primary = await start_upstream(backend("primary", 500, []))
    replica = await start_upstream(backend("replica", 200, []))
    gw = await start_upstream(
        make_gateway(GatewayConfig(primary=primary, replica=replica, failover=False))
    )
    status, served, body = await ask(gw + "/api/items")
    assert (status, served, body["by"]) == (500, "primary", "primary")
    down = await start_upstream(make_gateway(GatewayConfig(primary=refused_url)))
    status, served, body = await ask(down + "/api/items")
    assert (status, served) == (502, "primary")
    assert body == {"error": "the primary did not answer"}


async def test_an_open_breaker_stops_calling_the_primary(start_upstream: StartUpstream) -> None:
    seen: list[web.Request] = []
    primary = await start_upstream(backend("primary", 500, seen))
    cfg = GatewayConfig(primary=primary, failover=False, breaker_threshold=2, breaker_open=3600)
    gw = await start_upstream(make_gateway(cfg))
    answers = [await ask(gw + "/api/items") for _ in range(4)]
    assert [(s, by) for s, by, _ in answers] == [
        (500, "primary"),
        (500, "primary"),
        (503, "breaker"),
        (503, "breaker"),
    ]
    assert answers[-1][2] == {"error": "circuit open"}
    assert len(seen) == 2  # the open breaker failed fast, the primary saw no more calls


async def test_with_an_open_breaker_and_failover_the_replica_answers(
    start_upstream: StartUpstream,
) -> None:
    seen: list[web.Request] = []
    primary = await start_upstream(backend("primary", 502, seen))
    replica = await start_upstream(backend("replica", 200, []))
    cfg = GatewayConfig(primary=primary, replica=replica, breaker_threshold=1, breaker_open=3600)
    gw = await start_upstream(make_gateway(cfg))
    first = await ask(gw + "/api/items")
    second = await ask(gw + "/api/items")
    assert [(s, by) for s, by, _ in (first, second)] == [(200, "replica"), (200, "replica")]
    assert len(seen) == 1
