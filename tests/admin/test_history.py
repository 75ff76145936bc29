"""What experiments read: /events with a cursor, /stats/timeseries by absolute range, run and
phase, uploaded scenarios (PUT) and starts scheduled for a wall-clock instant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yarl

from chaosproxy.common.clock import FakeClock
from chaosproxy.process.runtime import Runtime, Settings
from tests.admin.conftest import SCENARIO, call


@pytest.fixture
async def fake_rt(
    demo_upstream: str, scenario_dir: Path
) -> AsyncIterator[tuple[Runtime, FakeClock]]:
    """A real proxy whose clock only moves when the test says so."""
    clock = FakeClock()
    rt = Runtime(
        Settings(
            upstream=yarl.URL(demo_upstream),
            listen_host="127.0.0.1",
            listen_port=0,
            admin_host="127.0.0.1",
            admin_port=0,
            scenario_dir=str(scenario_dir),
            reload_interval=0,
            grace=1.0,
        ),
        clock=clock,
    )
    await rt.start()
    yield rt, clock
    await rt.stop()


async def get(rt: Runtime, path: str, headers: dict[str, str] | None = None) -> int:
    async with aiohttp.ClientSession() as s, s.get(rt.proxy_url + path, headers=headers) as r:
        await r.read()
        return r.status


async def test_events_follow_a_cursor_without_repeats(admin: Runtime) -> None:
    await call(admin, "POST", "/scenarios/small/start")
    _, first = await call(admin, "GET", "/events?since=0")
    kinds = [e["kind"] for e in first["events"]]
    assert kinds[:2] == ["scenario_started", "phase_changed"]
    assert first["events"][1]["phase"] == "warmup" and first["events"][1]["t"] > 1e9
    _, again = await call(admin, "GET", f"/events?since={first['next']}")
    assert again["events"] == [] and again["next"] == first["next"]
    await call(admin, "POST", "/scenarios/stop")
    _, after = await call(admin, "GET", f"/events?since={first['next']}")
    assert [e["kind"] for e in after["events"]] == ["scenario_stopped"]
    assert after["instance"] == admin.instance


@pytest.mark.parametrize("query", ["since=-1", "since=x", "limit=0", "limit=5000"])
async def test_bad_event_cursors_are_400_naming_the_field(admin: Runtime, query: str) -> None:
    status, body = await call(admin, "GET", f"/events?{query}")
    assert status == 400 and body["error"]["details"][0]["field"] == query.split("=")[0]


async def test_timeseries_by_range_keeps_a_runs_traffic_apart_and_names_phases(
    fake_rt: tuple[Runtime, FakeClock],
) -> None:
    rt, clock = fake_rt
    t0 = int(clock.wall()) + 1
    clock.advance(t0 - clock.wall())  # on a whole second
    await call(rt, "POST", "/scenarios/small/start")
    assert await get(rt, "/static/app.js", {"X-Chaos-Run": "exp-1"}) == 200
    assert await get(rt, "/static/app.js") == 200
    clock.advance(1.0)
    rt.engine.tick()  # warmup (1 s) ends: broken
    assert await get(rt, "/api/items", {"X-Chaos-Run": "exp-1"}) == 503
    clock.advance(1.0)
    _, whole = await call(rt, "GET", f"/stats/timeseries?from={t0}&to={t0 + 2}")
    _, mine = await call(rt, "GET", f"/stats/timeseries?from={t0}&to={t0 + 2}&run=exp-1")
    assert [r["requests"] for r in whole["series"]] == [2, 1]
    assert [r["requests"] for r in mine["series"]] == [1, 1]
    assert [r["phase"] for r in mine["series"]] == ["warmup", "broken"]
    assert mine["series"][1]["injected"] == 1 and mine["run"] == "exp-1"


async def test_timeseries_never_returns_the_incomplete_second(
    fake_rt: tuple[Runtime, FakeClock],
) -> None:
    rt, clock = fake_rt
    now = int(clock.wall())
    _, body = await call(rt, "GET", f"/stats/timeseries?from={now - 3}&to={now + 10}")
    assert body["to"] == now and [r["t"] for r in body["series"]] == [now - 3, now - 2, now - 1]


async def test_timeseries_histograms_are_sparse_bucket_counts(
    fake_rt: tuple[Runtime, FakeClock],
) -> None:
    rt, clock = fake_rt
    now = int(clock.wall())
    await get(rt, "/static/app.js")
    clock.advance(1.0)
    _, body = await call(rt, "GET", f"/stats/timeseries?from={now}&to={now + 1}&histograms=1")
    assert sum(body["series"][0]["hist"].values()) == 1


async def test_too_long_a_range_is_400(admin: Runtime) -> None:
    status, body = await call(admin, "GET", "/stats/timeseries?from=0&to=100000")
    assert status == 400 and body["error"]["details"][0]["field"] == "from"


UPLOAD = SCENARIO.replace("name: small", "name: sent").replace("503", "502")


async def test_an_uploaded_scenario_starts_by_name(admin: Runtime) -> None:
    status, body = await call(admin, "PUT", "/scenarios/sent", raw=UPLOAD.encode())
    assert status == 201 and body["name"] == "sent"
    assert (await call(admin, "PUT", "/scenarios/sent", raw=UPLOAD.encode()))[0] == 200
    _, listed = await call(admin, "GET", "/scenarios")
    assert {"small", "sent"} <= {s["name"] for s in listed["scenarios"]}
    assert (await call(admin, "POST", "/scenarios/sent/start"))[0] == 201
    _, st = await call(admin, "GET", "/status")
    assert st["scenario"]["name"] == "sent"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            UPLOAD.replace("duration: 1s", "duration: soon"),
            "<upload sent>:5:15: phases[0].duration",
        ),
        (
            "name: other\nphases: [{name: a, duration: 1s}]\n",
            "named 'other' but was sent as 'sent'",
        ),
        (UPLOAD + "include: [shared/hard-outage.yaml]\n", "cannot include files"),
        ("name: [unclosed\n", "invalid YAML"),
    ],
)
async def test_a_bad_upload_is_422_with_located_problems_and_keeps_nothing(
    admin: Runtime, text: str, problem: str
) -> None:
    status, body = await call(admin, "PUT", "/scenarios/sent", raw=text.encode())
    assert status == 422
    assert any(problem in p for p in body["error"]["details"]), body
    assert "sent" not in admin.uploads


async def test_an_oversized_upload_is_413(admin: Runtime) -> None:
    status, _ = await call(admin, "PUT", "/scenarios/sent", raw=b"#" * (256 * 1024 + 1))
    assert status == 413


async def test_upload_and_delete_need_the_token(
    demo_upstream: str, start_proxy: Any, scenario_dir: Path
) -> None:
    rt = await start_proxy(demo_upstream, scenario_dir=str(scenario_dir), admin_token="s3cret")
    assert (await call(rt, "PUT", "/scenarios/sent", raw=UPLOAD.encode()))[0] == 401
    assert (await call(rt, "PUT", "/scenarios/sent", raw=UPLOAD.encode(), token="s3cret"))[0] == 201
    assert (await call(rt, "DELETE", "/scenarios/sent"))[0] == 401
    assert (await call(rt, "DELETE", "/scenarios/sent", token="s3cret"))[0] == 200
    assert (await call(rt, "DELETE", "/scenarios/sent", token="s3cret"))[0] == 404


async def test_a_scheduled_start_begins_exactly_at_its_instant(
    fake_rt: tuple[Runtime, FakeClock],
) -> None:
    rt, clock = fake_rt
    at = clock.wall() + 10.0
    status, st = await call(rt, "POST", "/scenarios/small/start", {"at": at})
    assert status == 201 and st["scheduled"] == {"name": "small", "at": at}
    assert st["active"] is False
    assert (await call(rt, "POST", "/scenarios/small/start", {"at": at}))[0] == 409
    clock.advance(10.25)  # the timer fires a little late ...
    rt.engine.tick()
    _, st = await call(rt, "GET", "/status")
    assert st["scenario"]["phase"] == "warmup" and st["scheduled"] is None
    assert st["scenario"]["elapsed"] == pytest.approx(0.25)  # ... the timeline starts at `at`
    _, ev = await call(rt, "GET", "/events?since=0")
    started = next(e for e in ev["events"] if e["kind"] == "scenario_started")
    assert started["t"] == pytest.approx(at)


async def test_stop_cancels_a_scheduled_start(fake_rt: tuple[Runtime, FakeClock]) -> None:
    rt, clock = fake_rt
    await call(rt, "POST", "/scenarios/small/start", {"at": clock.wall() + 5})
    _, body = await call(rt, "POST", "/scenarios/stop")
    assert body["stopped"] == "small"
    clock.advance(6)
    rt.engine.tick()
    _, st = await call(rt, "GET", "/status")
    assert st["scheduled"] is None and st["active"] is False


@pytest.mark.parametrize(("offset", "ok"), [(-3.0, True), (-30.0, False), (2 * 86400.0, False)])
async def test_start_times_in_the_past_or_far_ahead(
    fake_rt: tuple[Runtime, FakeClock], offset: float, ok: bool
) -> None:
    rt, clock = fake_rt
    status, body = await call(rt, "POST", "/scenarios/small/start", {"at": clock.wall() + offset})
    if ok:  # a little late: started at once, backdated so phases stay aligned with the fleet
        assert status == 201 and body["scenario"]["elapsed"] == pytest.approx(-offset)
    else:
        assert status == 400 and body["error"]["details"][0]["field"] == "at"
