"""`chaosproxy demo`: a short guided tour on embedded defaults.

It starts the bundled demo service and a proxy in front of it, replays a twelve-second scenario
while two simulated users (a desktop browser and a phone) call the API, prints what each saw in
every phase, and then keeps both running for manual exploration.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import aiohttp

TOUR = """
name: demo-tour
description: >
  Healthy traffic, a broken release, a slow dependency, trouble for mobile users only, recovery.
seed: 1
phases:
  - name: healthy
    duration: 2s
  - name: broken-release
    duration: 2s
    rules:
      - name: api-500
        match: {path: "/api/**"}
        fault: {error: {status: 500}}
  - name: slow-dependency
    duration: 2s
    rules:
      - name: slow-items
        match: {path: "/api/items/*"}
        fault: {latency: {distribution: lognormal, median: 80ms, p99: 400ms}}
  - name: mobile-trouble
    duration: 3s
    rules:
      - name: mobile-resets
        match: {user_agent: mobile}
        probability: 0.5
        fault: {reset: {}}
  - name: recovered
    duration: 2s
"""

USERS = {
    "desktop": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36",
    "mobile": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile/15E148 Safari/604.1",
}


@dataclass
class Tally:
    ok: int = 0
    errors: int = 0
    resets: int = 0
    latencies: list[float] = field(default_factory=list)

    def row(self) -> str:
        total = self.ok + self.errors + self.resets
        p50 = statistics.median(self.latencies) * 1000 if self.latencies else 0.0
        return f"{total:>5} {self.ok:>5} {self.errors:>5} {self.resets:>6} {p50:>8.1f}"


async def _user(
    session: aiohttp.ClientSession,
    base: str,
    agent: str,
    phase_of: Any,
    tallies: dict[tuple[str, str], Tally],
    name: str,
    stop: asyncio.Event,
) -> None:
    for i in itertools.count():
        if stop.is_set():
            return
        phase, remaining = phase_of()
        if remaining < 0.02:
            # So close to a boundary the proxy may decide in the next phase: wait it out,
            # so every request is counted in the phase that decided it.
            await asyncio.sleep(remaining + 0.005)
            continue
        t = tallies[(phase, name)]
        started = time.monotonic()
        try:
            async with session.get(
                f"{base}/api/items/{i % 20 + 1}", headers={"User-Agent": agent}
            ) as r:
                await r.read()
                if r.status < 400:
                    t.ok += 1
                else:
                    t.errors += 1
        except (aiohttp.ClientError, ConnectionError):
            t.resets += 1
        t.latencies.append(time.monotonic() - started)
        await asyncio.sleep(0.04)


async def tour(proxy_url: str, engine: Any) -> dict[tuple[str, str], Tally]:
    """Replay the tour scenario under two users' traffic; tallies per (phase, user)."""
    from chaosproxy.config.loader import load_scenario_text

    compiled = engine.start_scenario(load_scenario_text(TOUR, "<demo>"), replace=True)
    total = compiled.scenario.total_duration or 0.0

    def phase_of() -> tuple[str, float]:
        st = engine.status().get("scenario") or {}
        return str(st.get("phase", "?")), float(st.get("phase_remaining") or 0.0)

    tallies: dict[tuple[str, str], Tally] = defaultdict(Tally)
    stop = asyncio.Event()
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        users = [
            asyncio.create_task(_user(session, proxy_url, ua, phase_of, tallies, name, stop))
            for name, ua in USERS.items()
        ]
        await asyncio.sleep(total)
        stop.set()
        await asyncio.gather(*users)
    return tallies


def report(tallies: dict[tuple[str, str], Tally]) -> str:
    phases = list(dict.fromkeys(p for p, _ in tallies))
    lines = [
        f"{'phase':<17} {'user':<8} {'reqs':>5} {'2xx':>5} {'5xx':>5} {'reset':>6} {'p50 ms':>8}"
    ]
    for phase in phases:
        for user in USERS:
            if (phase, user) in tallies:
                lines.append(f"{phase:<17} {user:<8} {tallies[(phase, user)].row()}")
    return "\n".join(lines)
