"""Every phase of every bundled scenario, replayed through a real proxy in front of the demo
service: clients get real answers (a status, a reset, a timeout), rules match, nothing breaks
inside the proxy, and traffic is healthy again once the scenario stops."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter

import aiohttp
import pytest

from chaosproxy.common.events import RequestDone
from chaosproxy.config.loader import list_scenarios
from chaosproxy.config.model import PhaseSpec, Scenario
from tests.conftest import StartProxy

MOBILE = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Mobile Safari/537.36"
DESKTOP = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0"
CASES = [
    (scenario, phase)
    for scenario in list_scenarios()
    for phase in scenario.phases
    if phase.rules or scenario.rules
]


def only(scenario: Scenario, phase: PhaseSpec) -> Scenario:
    """The scenario reduced to one long phase, so the test decides what runs when."""
    return dataclasses.replace(
        scenario, phases=(dataclasses.replace(phase, duration=600.0),), repeat=1
    )


async def call(session: aiohttp.ClientSession, method: str, url: str, ua: str) -> str:
    try:
        async with session.request(method, url, headers={"User-Agent": ua}, data=b"x" * 100) as r:
            await r.read()
            return str(r.status)
    except TimeoutError:
        return "timeout"
    except aiohttp.ClientError:
        return "closed"


@pytest.mark.parametrize(("scenario", "phase"), CASES, ids=[f"{s.name}:{p.name}" for s, p in CASES])
async def test_phase_runs_end_to_end(
    scenario: Scenario,
    phase: PhaseSpec,
    demo_upstream: str,
    start_proxy: StartProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="chaosproxy")
    rt = await start_proxy(demo_upstream)
    requests = [("GET", "/api/items", DESKTOP), ("GET", "/api/items/1", MOBILE)] * 4 + [
        ("POST", "/api/echo", DESKTOP),
        ("GET", "/static/app.js", MOBILE),
    ] * 2
    ended: list[RequestDone] = []
    all_ended = asyncio.Event()

    def on_done(ev: RequestDone) -> None:
        ended.append(ev)
        if len(ended) == len(requests):
            all_ended.set()

    rt.bus.subscribe(RequestDone, on_done)
    rt.engine.start_scenario(only(scenario, phase), seed=1)
    base = rt.proxy_url
    timeout = aiohttp.ClientTimeout(total=1.5)
    async with aiohttp.ClientSession(
        timeout=timeout, connector=aiohttp.TCPConnector(force_close=True)
    ) as s:
        outcomes = await asyncio.gather(*(call(s, m, base + p, ua) for m, p, ua in requests))
    # The proxy ended every exchange the clients started, and each status a client read is
    # one the proxy reports having sent (a reset or timeout shows as no status on the client).
    await all_ended.wait()
    seen = Counter(o for o in outcomes if o.isdigit())
    sent = Counter(str(e.status) for e in ended)
    assert seen <= sent, (seen, sent)
    counts = rt.engine.status()["scenario"]["rule_counts"]
    unconditional = [r for r in (*phase.rules, *scenario.rules) if r.when is None]
    if unconditional:
        assert sum(c["matched"] for c in counts) > 0, counts
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    rt.engine.stop_scenario()
    async with aiohttp.ClientSession(timeout=timeout) as s:
        assert await call(s, "GET", base + "/api/items", DESKTOP) == "200"


async def test_post_deploy_breakage_answers_the_json_error_shape_with_the_request_id(
    demo_upstream: str, start_proxy: StartProxy
) -> None:
    scenario = next(s for s in list_scenarios() if s.name == "post-deploy-breakage")
    broken = next(p for p in scenario.phases if p.name == "broken-release")
    rt = await start_proxy(demo_upstream)
    rt.engine.start_scenario(only(scenario, broken), seed=1)
    async with aiohttp.ClientSession() as s, s.get(rt.proxy_url + "/api/items") as r:
        body = await r.json()
    assert r.status == 500
    assert body == {
        "error": {
            "code": 500,
            "message": "missing configuration: PAYMENT_URL",
            "requestId": r.headers["X-Request-Id"],
        }
    }
