"""Scenario routes: list, show, start (seed/repeat/replace, 409, 404, 400), stop, status, reset."""

from __future__ import annotations

import aiohttp
import pytest

from chaosproxy.runtime import Runtime
from tests.admin.conftest import call


async def proxied_status(rt: Runtime, path: str = "/api/items") -> int:
    async with aiohttp.ClientSession() as s, s.get(rt.proxy_url + path) as r:
        await r.read()
        return r.status


async def test_list_names_valid_scenarios_and_reports_broken_files(admin: Runtime) -> None:
    status, body = await call(admin, "GET", "/scenarios")
    assert status == 200
    assert [s["name"] for s in body["scenarios"]] == ["small"]
    assert body["scenarios"][0]["phases"] == ["warmup", "broken"]
    assert body["invalid"][0]["file"].endswith("broken.yaml")


async def test_show_gives_phase_offsets(admin: Runtime) -> None:
    status, sc = await call(admin, "GET", "/scenarios/small")
    assert status == 200
    assert [(p["name"], p["start"], p["end"]) for p in sc["phases"]] == [
        ("warmup", 0.0, 1.0),
        ("broken", 1.0, 61.0),
    ]


async def test_unknown_scenario_is_404_listing_the_available_ones(admin: Runtime) -> None:
    status, body = await call(admin, "GET", "/scenarios/nope")
    assert status == 404 and "small" in body["error"]["details"]["available"]


async def test_starting_an_unknown_scenario_is_404(admin: Runtime) -> None:
    assert (await call(admin, "POST", "/scenarios/nope/start"))[0] == 404


async def test_invalid_scenario_file_is_422_with_located_problems(admin: Runtime) -> None:
    status, body = await call(admin, "GET", "/scenarios/broken")
    assert status == 422 and "broken.yaml" in body["error"]["details"][0]


async def test_start_runs_the_scenario_and_status_shows_it(admin: Runtime) -> None:
    status, st = await call(admin, "POST", "/scenarios/small/start", {"seed": 7})
    assert status == 201
    assert "small" in str(st)
    _, st = await call(admin, "GET", "/status")
    assert "small" in str(st) and st["guardrails"]["max_fault_duration"] == 1800.0


async def test_start_while_running_is_409(admin: Runtime) -> None:
    await call(admin, "POST", "/scenarios/small/start")
    status, body = await call(admin, "POST", "/scenarios/small/start")
    assert status == 409 and "replace" in body["error"]["details"]


async def test_replace_true_restarts(admin: Runtime) -> None:
    await call(admin, "POST", "/scenarios/small/start")
    status, _ = await call(admin, "POST", "/scenarios/small/start", {"replace": True})
    assert status == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"seed": "x"}, "seed"),
        ({"repeat": 0}, "repeat"),
        ({"replace": "yes"}, "replace"),
        ({"sede": 1}, "sede"),
        ([1], "body"),
    ],
)
async def test_invalid_start_body_is_400_naming_the_field(
    admin: Runtime, body: object, field: str
) -> None:
    status, err = await call(admin, "POST", "/scenarios/small/start", body)
    assert status == 400 and err["error"]["details"][0]["field"] == field


async def test_stop_makes_traffic_healthy_immediately(admin: Runtime) -> None:
    await call(admin, "POST", "/scenarios/small/start")
    status, body = await call(admin, "POST", "/scenarios/stop")
    assert status == 200 and body["stopped"] == "small"
    assert await proxied_status(admin) == 200
    assert (await call(admin, "POST", "/scenarios/stop"))[1]["stopped"] is None


async def test_reset_stops_the_scenario(admin: Runtime) -> None:
    await call(admin, "POST", "/scenarios/small/start")
    assert (await call(admin, "POST", "/reset"))[0] == 200
    assert admin.running_scenario() is None


BRAKE = """\
name: brake
description: everything fails; abort_if must stop it
abort_if: {error_rate_above: 0.5, window: 1s}
phases:
  - name: broken
    duration: 5m
    rules:
      - fault: {error: {status: 503}}
"""


async def test_abort_if_stops_a_failing_scenario_end_to_end(admin: Runtime) -> None:
    import asyncio
    from pathlib import Path

    Path(admin.settings.scenario_dir or "", "brake.yaml").write_text(BRAKE)
    assert (await call(admin, "POST", "/scenarios/brake/start"))[0] == 201
    async with asyncio.timeout(10):
        while admin.running_scenario() is not None:
            await proxied_status(admin)
            await asyncio.sleep(0.02)
    assert await proxied_status(admin) == 200
    _, st = await call(admin, "GET", "/status")
    assert st["guardrails"]["trips"][0]["guardrail"] == "abort_if.error_rate"
    _, text = await call(admin, "GET", "/metrics")
    assert 'chaosproxy_guardrail_trips_total{guardrail="abort_if.error_rate"} 1.0' in text
