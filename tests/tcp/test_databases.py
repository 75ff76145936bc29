"""Real databases behind a TCP proxy, with their own Python drivers: Postgres (psycopg) and Redis
(redis-py) see the faults as a service would — latency on the direction asked, resets, a
partition that only the client's own timeout ends, a refused connection — when a rule or a
scenario's phase puts them in force. Times are checked from below only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from chaosproxy.common.clock import FakeClock
from chaosproxy.config.loader import load_scenario_text
from chaosproxy.tcp.rules import tcp_rule
from tests.tcp import databases
from tests.tcp.conftest import MakeRig, Rig

psycopg = pytest.importorskip("psycopg")
aioredis = pytest.importorskip("redis.asyncio")
redis_exceptions = pytest.importorskip("redis.exceptions")

pytestmark = pytest.mark.slow


@pytest.fixture
async def pg() -> AsyncIterator[databases.Server]:
    async with databases.postgres() as server:
        yield server


@pytest.fixture
async def rds() -> AsyncIterator[databases.Server]:
    async with databases.redis() as server:
        yield server


def add(rig: Rig, proxy: str, fault: str, params: dict[str, Any] | None = None) -> str:
    return rig.engine.add_compiled_rule(tcp_rule(proxy, fault, params)).id


def port_of(rig: Rig, name: str) -> int:
    address = rig.proxies.get(name).address
    assert address is not None
    return int(address.rsplit(":", 1)[1])


async def pg_connect(rig: Rig, **kw: Any) -> Any:
    return await psycopg.AsyncConnection.connect(
        host="127.0.0.1",
        port=port_of(rig, "pg"),
        user="postgres",
        dbname="postgres",
        autocommit=True,
        **kw,
    )


async def timed_query(conn: Any, sql: str = "SELECT 1") -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    cur = await conn.execute(sql)
    assert await cur.fetchone() == (1,)
    return loop.time() - start


# ---------------------------------------------------------------- Postgres


async def test_postgres_through_the_proxy_latency_each_way_and_a_reset(
    make_rig: MakeRig, pg: databases.Server
) -> None:
    rig = await make_rig()
    await rig.proxies.add("pg", "127.0.0.1:0", pg.address)
    conn = await pg_connect(rig)
    await timed_query(conn)  # byte for byte: the wire protocol works through the relay
    up = add(rig, "pg", "latency", {"latency": "150ms", "direction": "upstream"})
    assert await timed_query(conn) >= 0.15  # the open connection got it
    down = add(rig, "pg", "latency", {"latency": "150ms", "direction": "downstream"})
    assert await timed_query(conn) >= 0.30  # both ways now
    rig.engine.remove_rule(up)
    rig.engine.remove_rule(down)
    await timed_query(conn)
    add(rig, "pg", "reset")
    with pytest.raises(psycopg.OperationalError):
        await timed_query(conn)
    assert conn.closed
    with pytest.raises(psycopg.OperationalError):  # a new connection is reset too
        await pg_connect(rig)


async def test_postgres_refused_and_half_open_connections(
    make_rig: MakeRig, pg: databases.Server
) -> None:
    rig = await make_rig()
    await rig.proxies.add("pg", "127.0.0.1:0", pg.address)
    rule = add(rig, "pg", "refused")
    with pytest.raises(psycopg.OperationalError):
        await pg_connect(rig)
    rig.engine.remove_rule(rule)
    add(rig, "pg", "half_open")
    with pytest.raises(psycopg.OperationalError):  # only the driver's connect_timeout ends it
        await pg_connect(rig, connect_timeout=1)
    info = rig.proxies.get("pg")
    assert info.refused == 1 and info.accepted >= 2


async def test_a_postgres_outage_scenario_runs_on_schedule(
    make_rig: MakeRig, pg: databases.Server
) -> None:
    clock = FakeClock()
    rig = await make_rig(clock)
    await rig.proxies.add("pg", "127.0.0.1:0", pg.address)
    pool = [await pg_connect(rig) for _ in range(2)]  # a pool's long-lived connections
    rig.engine.start_scenario(
        load_scenario_text(
            """
            name: pg-failover
            phases:
              - {name: steady, duration: 30s}
              - name: slow
                duration: 30s
                rules:
                  - match: {tcp: pg}
                    fault: {latency: {latency: 120ms, direction: both}}
              - name: down
                duration: 30s
                rules:
                  - match: {tcp: pg}
                    fault: {refused: {}}
              - {name: back, duration: 30s}
            """
        )
    )
    for conn in pool:
        await timed_query(conn)
    clock.advance(30)
    rig.engine.tick()
    for conn in pool:
        assert await timed_query(conn) >= 0.24
    clock.advance(30)
    rig.engine.tick()  # `refused` on live connections: each is reset now
    for conn in pool:
        with pytest.raises(psycopg.OperationalError):
            await timed_query(conn)
    with pytest.raises(psycopg.OperationalError):
        await pg_connect(rig)
    clock.advance(30)
    rig.engine.tick()
    fresh = await pg_connect(rig)  # the service is back: a new connection works at once
    await timed_query(fresh)
    await fresh.close()
    faults = [(f.phase, f.fault) for f in rig.faults]
    assert faults.count(("slow", "latency")) == 2
    assert faults.count(("down", "refused")) == 3


# ---------------------------------------------------------------- Redis


async def test_redis_through_the_proxy_latency_timeout_and_refused(
    make_rig: MakeRig, rds: databases.Server
) -> None:
    rig = await make_rig()
    await rig.proxies.add("redis", "127.0.0.1:0", rds.address)
    client = aioredis.Redis(host="127.0.0.1", port=port_of(rig, "redis"), socket_timeout=1.0)
    assert await client.set("k", "v")
    assert await client.get("k") == b"v"
    loop = asyncio.get_running_loop()
    rule = add(rig, "redis", "latency", {"latency": "200ms"})
    start = loop.time()
    assert await client.ping()
    assert loop.time() - start >= 0.2
    rig.engine.remove_rule(rule)
    rule = add(rig, "redis", "timeout", {"timeout": 0})
    with pytest.raises(redis_exceptions.TimeoutError):  # the client's own timeout ends the wait
        await client.get("k")
    rig.engine.remove_rule(rule)
    await client.aclose()
    client = aioredis.Redis(host="127.0.0.1", port=port_of(rig, "redis"), socket_timeout=1.0)
    assert await client.get("k") == b"v"  # healed: a new connection works
    add(rig, "redis", "refused")
    await client.aclose()
    client = aioredis.Redis(host="127.0.0.1", port=port_of(rig, "redis"))
    with pytest.raises(redis_exceptions.ConnectionError):
        await client.get("k")
    await client.aclose()


async def test_redis_limit_data_cuts_a_large_reply(
    make_rig: MakeRig, rds: databases.Server
) -> None:
    rig = await make_rig()
    await rig.proxies.add("redis", "127.0.0.1:0", rds.address)
    client = aioredis.Redis(host="127.0.0.1", port=port_of(rig, "redis"))
    await client.set("big", b"x" * 100_000)
    add(rig, "redis", "limit_data", {"bytes": 1000})
    with pytest.raises(redis_exceptions.ConnectionError):
        await client.get("big")
    await client.aclose()
