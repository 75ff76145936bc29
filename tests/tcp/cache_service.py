"""A small system under test for the cache-cut experiment: an aiohttp service whose
`GET /api/items/{id}` reads a Redis cache (redis-py's asyncio client, pointed at chaosproxy's
TCP proxy in front of a real redis-server) and, on a miss, computes the item itself (the
"database") and caches it.

With `fallback=True` a Redis error or timeout is a miss: the service computes the answer and
keeps serving. With `fallback=False` it answers 503, as a service that cannot live without its
cache would. Every Redis call is bounded (socket and connect timeouts of `redis_timeout`, no
retries, an overall deadline), so a cut cache costs at most that long per request."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from aiohttp import web
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

REDIS_TIMEOUT = 0.2  # seconds: a cache slower than this is as good as down
CACHE_TTL = 30  # seconds an item stays cached
MAX_CONNECTIONS = 32  # the pool's bound: a cut never opens connections without limit


def compute(item: int) -> dict[str, object]:
    """The "database": the item's answer, computed (deterministic, so a cached and a computed
    answer are the same bytes)."""
    return {"id": item, "name": f"item-{item}", "price": (item * 37) % 1000 / 10}


@dataclass
class Counts:
    """What the service did, for the test to read: cache hits, misses it filled, Redis
    failures it absorbed (fallback) and the ones it turned into 503s."""

    hits: int = 0
    misses: int = 0
    fallbacks: int = 0
    unavailable: int = 0
    errors: list[str] = field(default_factory=list)

    def failed(self, e: BaseException) -> None:
        if len(self.errors) < 20:  # bounded: a long cut must not grow the list forever
            self.errors.append(type(e).__name__)


class CacheService:
    """The service; `start()` listens on 127.0.0.1 at a free port (`url`)."""

    def __init__(self, redis_port: int | None, *, fallback: bool) -> None:
        """`redis_port` None: Redis is reached once `use_redis` names its port (a proxy's port
        the kernel chose, known once that proxy has bound it)."""
        self.fallback = fallback
        self.counts = Counts()
        self.redis: aioredis.Redis | None = None
        if redis_port is not None:
            self.use_redis(redis_port)
        self.url = ""
        self._runner: web.AppRunner | None = None

    def use_redis(self, port: int) -> None:
        self.redis = aioredis.Redis(
            host="127.0.0.1",
            port=port,
            socket_timeout=REDIS_TIMEOUT,
            socket_connect_timeout=REDIS_TIMEOUT,
            retry=Retry(NoBackoff(), 0),  # one try: a retry would double the cost of a cut
            max_connections=MAX_CONNECTIONS,
            health_check_interval=0,
        )

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/api/items/{id:[0-9]{1,6}}", self.item)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self.redis is not None:
            await self.redis.aclose()

    async def item(self, request: web.Request) -> web.Response:
        item = int(request.match_info["id"])
        key = f"item:{item}"
        try:
            if self.redis is None:
                raise ConnectionError("no Redis port yet")
            async with asyncio.timeout(2 * REDIS_TIMEOUT + 0.1):  # get and set, at most
                cached = await self.redis.get(key)
                if cached is not None:
                    self.counts.hits += 1
                    return web.Response(body=cached, content_type="application/json")
                body = json.dumps(compute(item)).encode()
                await self.redis.set(key, body, ex=CACHE_TTL)
                self.counts.misses += 1
                return web.Response(body=body, content_type="application/json")
        except (RedisError, OSError, TimeoutError) as e:
            self.counts.failed(e)
            if not self.fallback:
                self.counts.unavailable += 1
                return web.json_response({"error": "cache unavailable"}, status=503)
            self.counts.fallbacks += 1
            return web.json_response(compute(item))
