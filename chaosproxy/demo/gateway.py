"""The demo's system under test: a client-facing gateway that calls a primary and, when the
primary fails (5xx, reset, timeout), fails over to a replica.

chaosproxy sits in front of the primary only. With `failover=False` the primary's failures
reach the clients; with a circuit breaker, the gateway stops calling a primary that failed N
times in a row for `breaker_open` seconds (failing fast, or going to the replica), then tries
it again. Three systems, three different recoveries: what the experiment tests are built on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import aiohttp
from aiohttp import web

# Headers a well-behaved service passes on to its dependencies (tracing-style propagation).
PROPAGATE = ("User-Agent", "X-Chaos-Run", "X-Chaos-User", "X-Request-Id", "Content-Type")


@dataclass
class GatewayConfig:
    primary: str
    replica: str | None = None
    failover: bool = True
    timeout: float = 1.0  # per call to the primary
    breaker_threshold: int = 0  # consecutive primary failures that open the breaker; 0: none
    breaker_open: float = 5.0  # seconds the breaker stays open before one trial call


class Breaker:
    def __init__(self, threshold: int, open_for: float) -> None:
        self.threshold = threshold
        self.open_for = open_for
        self.failures = 0
        self.opened_at: float | None = None

    def allows(self) -> bool:
        if self.opened_at is None:
            return True
        return time.monotonic() - self.opened_at >= self.open_for  # half-open: one trial

    def record(self, ok: bool) -> None:
        if ok:
            self.failures, self.opened_at = 0, None
            return
        self.failures += 1
        if self.threshold and (self.failures >= self.threshold or self.opened_at is not None):
            self.opened_at = time.monotonic()


KEY: web.AppKey[GatewayConfig] = web.AppKey("config", GatewayConfig)
SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("session", aiohttp.ClientSession)
BREAKER: web.AppKey[Breaker] = web.AppKey("breaker", Breaker)


async def _call(
    session: aiohttp.ClientSession, base: str, request: web.Request, body: bytes, timeout: float
) -> tuple[int, bytes, str]:
    headers = {h: request.headers[h] for h in PROPAGATE if h in request.headers}
    async with session.request(
        request.method,
        base + request.path_qs,
        headers=headers,
        data=body or None,
        timeout=aiohttp.ClientTimeout(total=timeout),
    ) as r:
        return r.status, await r.read(), r.headers.get("Content-Type", "application/json")


async def forward(request: web.Request) -> web.Response:
    cfg = request.app[KEY]
    session = request.app[SESSION]
    breaker = request.app[BREAKER]
    body = await request.read()
    answer: tuple[int, bytes, str] | None = None
    served = "primary"
    if breaker.allows():
        try:
            answer = await _call(session, cfg.primary, request, body, cfg.timeout)
        except (aiohttp.ClientError, TimeoutError):
            answer = None
        breaker.record(answer is not None and answer[0] < 500)
    else:
        served = "breaker"
    if (answer is None or answer[0] >= 500) and cfg.failover and cfg.replica:
        try:
            answer = await _call(session, cfg.replica, request, body, 2.0)
            served = "replica"
        except (aiohttp.ClientError, TimeoutError):
            answer = None
    if answer is None:
        status = 503 if served == "breaker" else 502
        reason = "circuit open" if served == "breaker" else "the primary did not answer"
        return web.json_response({"error": reason}, status=status, headers={"X-Served-By": served})
    status, payload, ctype = answer
    return web.Response(
        status=status, body=payload, headers={"Content-Type": ctype, "X-Served-By": served}
    )


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def make_gateway(cfg: GatewayConfig) -> web.Application:
    app = web.Application()
    app[KEY] = cfg
    app[BREAKER] = Breaker(cfg.breaker_threshold, cfg.breaker_open)

    async def session_ctx(app: web.Application):  # type: ignore[no-untyped-def]
        app[SESSION] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=200), auto_decompress=False
        )
        yield
        await app[SESSION].close()

    app.cleanup_ctx.append(session_ctx)
    app.add_routes([web.get("/healthz", health), web.route("*", "/{tail:.*}", forward)])
    return app
