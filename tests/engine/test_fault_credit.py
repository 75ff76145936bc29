"""Which rule an injected fault is credited to (metrics labels, journal lines): the rule that owns
that very fault object, even when two `continue: true` rules use the same kind of fault."""

from __future__ import annotations

import aiohttp

from chaosproxy.common.events import FaultInjected
from tests.conftest import StartProxy
from tests.engine.helpers import scenario

TWO_LATENCIES = """
name: s
phases:
  - name: p
    duration: 1h
    rules:
      - {name: first, continue: true, fault: {latency: {delay: 1ms}}}
      - {name: second, fault: {latency: {delay: 2ms}}}
"""


async def test_two_rules_with_the_same_fault_kind_are_each_credited(
    demo_upstream: str, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(demo_upstream)
    seen: list[FaultInjected] = []
    rt.bus.subscribe(FaultInjected, seen.append)
    rt.engine.start_scenario(scenario(TWO_LATENCIES))
    async with aiohttp.ClientSession() as s, s.get(rt.proxy_url + "/api/items") as r:
        await r.read()
    credited = sorted((e.rule, e.outcome) for e in seen)
    assert credited == [("first", "delay=0.001"), ("second", "delay=0.002")]
