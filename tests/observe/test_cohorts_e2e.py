"""Cohorts through real proxies: two proxies (and two runs of one seed) fault the same clients,
the measured share of 1,200 clients matches the configured one, only members are faulted, and
the per-second cohort rows, the per-client book and the Prometheus counters say so."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from chaosproxy.common.cohort import cohort_of
from chaosproxy.common.events import RequestDone
from chaosproxy.config.loader import load_scenario_text
from chaosproxy.process.runtime import Runtime
from tests.conftest import StartProxy

SCENARIO = """
name: cohorts
phases:
  - name: broken
    duration: 1h
    rules:
      - name: hurt
        match: {path: "/api/**", cohort: {share: 0.25, by: header X-Chaos-User}}
        fault: {error: {status: 503}}
"""
SEED = 42
SHARE = 0.25
USERS = [f"user-{i:05d}" for i in range(1200)]


def wilson(k: int, n: int, z: float = 2.5758) -> tuple[float, float]:
    """The 99 % Wilson score interval of a proportion k / n."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


async def upstream(start_upstream: Callable[[web.Application], Awaitable[str]]) -> str:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/{tail:.*}", ok)
    return await start_upstream(app)


def done_after(rt: Runtime, n: int) -> asyncio.Event:
    """Set once the proxy has reported `n` more finished requests (stats counted them first:
    they subscribed earlier)."""
    event = asyncio.Event()
    seen = 0

    def on_done(ev: RequestDone) -> None:
        nonlocal seen
        seen += 1
        if seen >= n:
            event.set()

    rt.bus.subscribe(RequestDone, on_done)
    return event


async def send(rt: Runtime, users: list[str | None], run: str) -> dict[str | None, int]:
    """One GET /api/x per user (None: without the header); status by user."""
    finished = done_after(rt, len(users))
    limit = asyncio.Semaphore(16)
    out: dict[str | None, int] = {}

    async def one(s: aiohttp.ClientSession, u: str | None) -> None:
        headers = {"X-Chaos-Run": run}
        if u is not None:
            headers["X-Chaos-User"] = u
        async with limit, s.get(rt.proxy_url + "/api/x", headers=headers) as r:
            await r.read()
            out[u] = r.status

    async with aiohttp.ClientSession() as s:
        await asyncio.gather(*(one(s, u) for u in users))
    await finished.wait()
    return out


async def test_two_proxies_and_two_runs_fault_the_same_clients_in_the_configured_share(
    start_upstream: Callable[[web.Application], Awaitable[str]], start_proxy: StartProxy
) -> None:
    base = await upstream(start_upstream)
    a, b = await start_proxy(base), await start_proxy(base)
    for rt in (a, b):
        rt.engine.start_scenario(load_scenario_text(SCENARIO), seed=SEED)
    on_a = await send(a, [*USERS, None], "run-a")
    on_b = await send(b, list(USERS), "run-b")
    hurt_a = {u for u, status in on_a.items() if status == 503}
    hurt_b = {u for u, status in on_b.items() if status == 503}
    assert hurt_a == hurt_b  # the same clients on every proxy of a fleet
    assert hurt_a == {u for u in USERS if cohort_of(SEED, u, SHARE)}  # as the plugin labels them
    assert {on_a[u] for u in USERS if u not in hurt_a} == {200} and on_a[None] == 200
    lo, hi = wilson(len(hurt_a), len(USERS))
    assert lo <= SHARE <= hi, (len(hurt_a), lo, hi)

    a.engine.stop_scenario()
    a.engine.start_scenario(load_scenario_text(SCENARIO), seed=SEED)  # a replay
    again = await send(a, list(USERS), "run-c")
    assert {u for u, status in again.items() if status == 503} == hurt_a


async def test_cohort_rows_the_client_book_and_the_counters(
    start_upstream: Callable[[web.Application], Awaitable[str]], start_proxy: StartProxy
) -> None:
    base = await upstream(start_upstream)
    rt = await start_proxy(base, client_id_header="X-Chaos-User")
    users = USERS[:300]
    members = {u for u in users if cohort_of(SEED, u, SHARE)}
    t0 = int(rt.clock.wall())
    rt.engine.start_scenario(load_scenario_text(SCENARIO), seed=SEED)
    await send(rt, [*users, *users[:50], None], "r1")
    t1 = int(rt.clock.wall())

    rows = rt.stats.range(t0 - 1, t1 + 1, "r1", histograms=True)
    fault = [row["cohorts"]["fault"] for row in rows if "cohorts" in row]
    control = [row["cohorts"]["control"] for row in rows if "cohorts" in row]
    in_first_50 = len(members & set(users[:50]))
    assert sum(r["requests"] for r in fault) == len(members) + in_first_50
    assert sum(r["injected"] for r in fault) == sum(r["requests"] for r in fault)
    assert sum(r["errors"] for r in fault) == sum(r["requests"] for r in fault)
    assert sum(r["requests"] for r in control) == 351 - sum(r["requests"] for r in fault)
    assert sum(r["injected"] for r in control) == 0
    for row in rows:
        if "cohorts" in row:  # the sub-rows add up to the row, sketches included
            subs = row["cohorts"].values()
            assert row["requests"] == sum(s["requests"] for s in subs)
            assert sum(sum(s["sketch"].values()) for s in subs) == row["requests"]
            assert set(row["cohorts"]["fault"]) == set(row) - {"cohorts"}

    book = rt.stats.clients("r1")
    # 300 users, and the request without the header: known by its address, a control client
    assert book["count"] == 301 and not book["truncated"]
    clients = book["clients"]
    assert sum(c["cohort"] == "fault" for c in clients) == len(members)
    assert all(c["hurt"] for c in clients if c["cohort"] == "fault")
    assert not any(c["hurt"] for c in clients if c["cohort"] == "control")
    assert all(t0 <= c["first"] <= c["last"] <= t1 for c in clients)
    empty = {"run": "never", "clients": [], "count": 0, "truncated": False}
    assert rt.stats.clients("never") == empty
    url = rt.admin_url + "/stats/clients"  # the admin API answers the same book
    async with aiohttp.ClientSession() as s, s.get(url, params={"run": "r1"}) as r:
        assert r.status == 200 and await r.json() == book

    text = rt.metrics.exposition().decode()
    assert 'cohort="fault"' in text and 'cohort="control"' in text
