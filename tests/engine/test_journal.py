"""The fault journal through a real proxy: one line per injected fault; same seed, same lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import StartProxy

SEEDED = """\
name: coin-flips
seed: 99
phases:
  - name: flaky
    duration: 1h
    rules:
      - name: api
        match: {path: "/api/**"}
        probability: 0.5
        outcomes:
          - {weight: 2, fault: {error: {status: 500}}}
          - {weight: 1, fault: {error: {status: 503}}}
"""


async def drive(proxy_url: str, n: int) -> list[int]:
    codes = []
    async with aiohttp.ClientSession() as s:
        for i in range(n):
            path = "/api/items" if i % 3 else "/health"
            async with s.get(proxy_url + path, headers={"X-Request-Id": f"req-{i}"}) as r:
                await r.read()
                codes.append(r.status)
    return codes


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_journal_has_one_line_per_injected_fault(
    demo_upstream: str, start_proxy: StartProxy, tmp_path: Path
) -> None:
    (tmp_path / "coin-flips.yaml").write_text(SEEDED)
    journal = tmp_path / "journal.jsonl"
    rt = await start_proxy(
        demo_upstream,
        scenario="coin-flips",
        scenario_dir=str(tmp_path),
        journal=str(journal),
        reload_interval=0,
    )
    codes = await drive(rt.proxy_url, 30)
    entries = lines(journal)
    assert len(entries) == sum(c >= 500 for c in codes) > 0
    first = entries[0]
    assert set(first) == {
        "t",
        "request_id",
        "method",
        "path",
        "scenario",
        "phase",
        "rule",
        "fault",
        "outcome",
    }
    assert first["scenario"] == "coin-flips" and first["phase"] == "flaky"
    assert first["rule"] == "api" and first["fault"] == "error" and first["method"] == "GET"
    assert first["path"] == "/api/items" and first["request_id"].startswith("req-")
    assert first["outcome"] in ("status=500", "status=503")
    assert 0 <= first["t"] < 60


async def test_same_seed_same_journal(
    demo_upstream: str, start_proxy: StartProxy, tmp_path: Path
) -> None:
    (tmp_path / "coin-flips.yaml").write_text(SEEDED)
    runs = []
    for i in range(2):
        journal = tmp_path / f"journal-{i}.jsonl"
        rt = await start_proxy(
            demo_upstream,
            scenario=str(tmp_path / "coin-flips.yaml"),
            journal=str(journal),
            reload_interval=0,
        )
        await drive(rt.proxy_url, 60)
        await rt.stop()
        runs.append([{k: v for k, v in e.items() if k != "t"} for e in lines(journal)])
    assert runs[0] == runs[1]
    assert 5 < len(runs[0]) < 35


async def test_seed_flag_overrides_the_scenarios_seed(
    demo_upstream: str, start_proxy: StartProxy, tmp_path: Path
) -> None:
    (tmp_path / "coin-flips.yaml").write_text(SEEDED)
    runs = []
    for seed in (1, 2):
        journal = tmp_path / f"journal-{seed}.jsonl"
        rt = await start_proxy(
            demo_upstream,
            scenario=str(tmp_path / "coin-flips.yaml"),
            journal=str(journal),
            seed=seed,
            reload_interval=0,
        )
        await drive(rt.proxy_url, 60)
        await rt.stop()
        runs.append([e["request_id"] + e["outcome"] for e in lines(journal)])
    assert rt.engine.status()["scenario"]["seed"] == 2
    assert runs[0] != runs[1]
