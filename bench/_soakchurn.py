"""The soak's churn: scenario uploads, starts, stops and deletes, ad-hoc rules, hot reloads of
a running file and a broken file landing, through the admin API and the scenario directory.
Every admin call must answer as expected; anything else is recorded as a failure."""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import aiohttp

FAULTS: list[dict[str, Any]] = [
    {"error": {"status": 503}},
    {"error": {"status": 500, "after_upstream": True}},
    {"reset": {}},
    {"reset": {"after_bytes": 5}},
    {"truncate": {"bytes": 4}},
    {"latency": {"delay": "20ms"}},
    {"malformed": {"kind": "bad_status_line"}},
    {"hang": {"duration": "50ms", "then": "error", "status": 504}},
    {"rate_limit": {"rps": 20}},
    {"latency": {"delay": "5ms"}, "error": {"status": 502}},
]


def scenario_yaml(name: str, version: int) -> str:
    """A repeating three-phase scenario whose rules fire a few per cent of the time; each
    version takes the next four faults of FAULTS, so three versions use them all."""
    rng = random.Random(version)
    rules = []
    faults = [FAULTS[(4 * version + i) % len(FAULTS)] for i in range(4)]
    for i, fault in enumerate(faults):
        rules.append(
            {
                "name": f"r{i}",
                "match": {"path": "/small"},
                "probability": rng.choice([0.01, 0.02, 0.03]),
                "fault": fault,
            }
        )
    doc = {
        "name": name,
        "description": "soak churn",
        "repeat": "forever",
        "phases": [
            {"name": "calm", "duration": "1s"},
            {"name": "a", "duration": "2s", "rules": rules[:2]},
            {"name": "b", "duration": "2s", "rules": rules[2:]},
        ],
    }
    return json.dumps(doc)  # JSON is YAML


class Churn:
    """Cycles scenario uploads, starts, stops, deletes, ad-hoc rules and file reloads."""

    def __init__(self, admin: str, scenario_dir: Path, seed: int) -> None:
        self.admin = admin
        self.dir = scenario_dir
        self.rng = random.Random(seed)
        self.rules: list[str] = []
        self.k = 0
        self.version = 0  # of the scenario definitions sent or written
        self.ops = 0
        self.cursor = 0
        self.failures: list[str] = []
        self.steps = [
            self.upload, self.start_upload, self.add_rule, self.add_rule, self.delete_rule,
            self.reads, self.stop, self.delete_upload, self.start_file, self.add_rule,
            self.rewrite_file, self.break_file, self.reads, self.clear_rules, self.stop,
        ]  # fmt: skip

    async def call(self, s: aiohttp.ClientSession, method: str, path: str, ok: set[int],
                   body: Any = None, data: str | None = None) -> Any:  # fmt: skip
        self.ops += 1
        async with s.request(method, self.admin + path, json=body, data=data) as r:
            text = await r.text()
            if r.status not in ok:
                self.failures.append(f"{method} {path} -> {r.status} {text[:300]}")
                return None
            return json.loads(text) if r.content_type == "application/json" else text

    async def upload(self, s: aiohttp.ClientSession) -> None:
        self.k = (self.k + 1) % 4
        name = f"soak-up-{self.k}"
        self.version += 1
        text = scenario_yaml(name, self.version)
        await self.call(s, "PUT", f"/scenarios/{name}", {200, 201}, data=text)

    async def start_upload(self, s: aiohttp.ClientSession) -> None:
        path = f"/scenarios/soak-up-{self.k}/start"
        await self.call(s, "POST", path, {201}, {"replace": True, "seed": self.ops})

    async def stop(self, s: aiohttp.ClientSession) -> None:
        await self.call(s, "POST", "/scenarios/stop", {200})

    async def delete_upload(self, s: aiohttp.ClientSession) -> None:
        await self.call(s, "DELETE", f"/scenarios/soak-up-{self.k}", {200})

    async def add_rule(self, s: aiohttp.ClientSession) -> None:
        rule = {
            "match": {"path": "/small"},
            "probability": self.rng.choice([0.005, 0.01, 0.02]),
            "fault": self.rng.choice(FAULTS),
            "ttl": self.rng.choice(["3s", "30s"]),  # some expire on their own
        }
        added = await self.call(s, "POST", "/rules", {201}, rule)
        if added is not None:
            self.rules.append(added["id"])

    async def delete_rule(self, s: aiohttp.ClientSession) -> None:
        if self.rules:  # 404 when its TTL ran out first
            await self.call(s, "DELETE", f"/rules/{self.rules.pop(0)}", {200, 404})

    async def clear_rules(self, s: aiohttp.ClientSession) -> None:
        self.rules.clear()
        await self.call(s, "DELETE", "/rules", {200})

    async def start_file(self, s: aiohttp.ClientSession) -> None:
        body = {"replace": True}
        await self.call(s, "POST", "/scenarios/soak-file/start", {201}, body)

    async def rewrite_file(self, s: aiohttp.ClientSession) -> None:
        """A changed definition of the running file scenario: hot reload applies it."""
        self.version += 1
        text = scenario_yaml("soak-file", self.version)
        write_atomically(self.dir / "soak-file.yaml", text)

    async def break_file(self, s: aiohttp.ClientSession) -> None:
        """A broken file lands next to it: reload_failed, and nothing running changes."""
        write_atomically(self.dir / "soak-broken.yaml", "name: soak-broken\nphases: [oops\n")

    async def reads(self, s: aiohttp.ClientSession) -> None:
        await self.call(s, "GET", "/status", {200})
        await self.call(s, "GET", "/rules", {200})
        await self.call(s, "GET", "/scenarios", {200})
        await self.call(s, "GET", "/stats/timeseries?seconds=30&histograms=1", {200})
        ev = await self.call(s, "GET", f"/events?since={self.cursor}", {200})
        if ev is not None:
            self.cursor = ev["next"]

    async def run(self, every: float, until: float) -> None:
        async with aiohttp.ClientSession() as s:
            i = 0
            while time.monotonic() < until:
                await self.steps[i % len(self.steps)](s)
                i += 1
                await asyncio.sleep(every)
            await self.call(s, "POST", "/reset", {200})  # nothing fires after the load ends


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
