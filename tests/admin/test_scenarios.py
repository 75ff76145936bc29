"""Scenario routes: list, show, start (seed/repeat/replace, 409, 404, 400), stop, status, reset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from chaosproxy.process.runtime import Runtime
from tests.admin.conftest import SCENARIO, call


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


# ---------------------------------------------------------------- hostile scenario directories

HUGE_INT = (
    "name: huge\nphases:\n  - name: p\n    duration: 1h\n    rules:\n"
    "      - fault: {error: {status: " + "9" * 5001 + "}}\n"
)


async def test_a_5001_digit_integer_is_a_located_problem_and_the_listing_goes_on(
    admin: Runtime, scenario_dir: Path
) -> None:
    """Python's int-string limit raised ValueError inside the YAML constructor: GET /scenarios
    was a 500 while such a file sat in the directory, and so were GET and PUT of it."""
    (scenario_dir / "huge.yaml").write_text(HUGE_INT)
    status, body = await call(admin, "GET", "/scenarios")
    assert status == 200
    assert [s["name"] for s in body["scenarios"]] == ["small"]
    invalid = {i["file"]: i["problems"] for i in body["invalid"]}
    assert invalid["huge.yaml"] == [
        "huge.yaml:6:33: phases[0].rules[0].fault.error.status: number too long: 5001 "
        "characters, at most 100"
    ]
    status, body = await call(admin, "GET", "/scenarios/huge")
    assert status == 422 and body["error"]["details"][0].startswith("huge.yaml:6:33:")
    status, body = await call(admin, "PUT", "/scenarios/huge", raw=HUGE_INT.encode())
    assert status == 422
    assert body["error"]["details"] == [
        "<upload huge>:6:33: phases[0].rules[0].fault.error.status: number too long: 5001 "
        "characters, at most 100"
    ]


async def test_a_file_that_breaks_the_loader_in_a_way_no_check_foresaw_hides_no_other(
    admin: Runtime, scenario_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chaosproxy.config import loader

    real = loader.load_scenario_file

    def load(path: Any) -> Any:
        if Path(path).name == "odd.yaml":
            raise RuntimeError("a bug no check foresaw")
        return real(path)

    monkeypatch.setattr(loader, "load_scenario_file", load)
    (scenario_dir / "odd.yaml").write_text(SCENARIO.replace("small", "odd"))
    status, body = await call(admin, "GET", "/scenarios")
    assert status == 200 and [s["name"] for s in body["scenarios"]] == ["small"]
    invalid = {i["file"]: i["problems"] for i in body["invalid"]}
    assert invalid["odd.yaml"] == ["odd.yaml: cannot load: RuntimeError (see the proxy log)"]


SECRET = "API_KEY=sk-live-5up3r-5ecret-v4lue-0123456789\n"


async def test_a_symlink_out_of_the_directory_is_no_scenario_and_its_content_is_never_shown(
    admin: Runtime, scenario_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("app") / ".env"
    outside.write_text(SECRET)
    (scenario_dir / "leak.yaml").symlink_to(outside)
    (scenario_dir / "inside.yaml").symlink_to("small.yaml")  # within the directory: fine
    status, body = await call(admin, "GET", "/scenarios")
    assert status == 200 and "sk-live" not in json.dumps(body)
    assert "leak.yaml" not in json.dumps(body)
    assert sorted(s["name"] for s in body["scenarios"]) == ["small", "small"]
    status, body = await call(admin, "GET", "/scenarios/leak")
    assert status == 404 and "sk-live" not in json.dumps(body)
    assert "leak" not in body["error"]["details"]["available"]
    status, body = await call(admin, "POST", "/scenarios/leak/start")
    assert status == 404 and "sk-live" not in json.dumps(body)


async def test_an_invalid_file_holding_a_secret_is_reported_without_its_content(
    admin: Runtime, scenario_dir: Path
) -> None:
    """A non-scenario file with a scenario name (a `.env` copied in): located, never echoed."""
    (scenario_dir / "notes.yaml").write_text(SECRET)
    (scenario_dir / "keys.yaml").write_text(f"name: keys\nphases: '{SECRET.strip()}'\n")
    status, body = await call(admin, "GET", "/scenarios")
    assert status == 200
    invalid = {i["file"]: i["problems"] for i in body["invalid"]}
    assert invalid["notes.yaml"] == [
        f"notes.yaml:1:1: expected a scenario mapping, got text ({len(SECRET) - 1} characters)"
    ]
    (problem,) = invalid["keys.yaml"]
    assert problem.startswith("keys.yaml:2:9: phases: expected a list, got 'API_KEY=sk-live")
    assert "0123456789" not in problem  # cut after 40 characters
    status, body = await call(admin, "GET", "/scenarios/notes")
    assert status == 422 and "sk-live" not in json.dumps(body)


async def test_status_and_events_name_scenario_files_relative_to_the_directory(
    admin: Runtime, scenario_dir: Path
) -> None:
    assert (await call(admin, "POST", "/scenarios/small/start"))[0] == 201
    status, body = await call(admin, "GET", "/status")
    assert status == 200 and body["scenario"]["source"] == "small.yaml"
    status, body = await call(admin, "GET", "/scenarios/small")
    assert status == 200 and body["source"] == "small.yaml"
    status, body = await call(admin, "GET", "/events")
    assert str(scenario_dir) not in json.dumps(body)
