"""The admin listener on its own thread: it answers while the proxy loop is busy, its changes
take effect at once, and the events they cause still reach listeners on the proxy loop."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from chaosproxy.common.events import StateChanged
from chaosproxy.process.runtime import Runtime
from tests.admin.conftest import call
from tests.admin.test_scenarios import proxied_status
from tests.conftest import StartProxy

# Generous: not a speed check, only how long "never answers" is waited for before failing.
HANG_GUARD = 30.0


def call_blocking(rt: Runtime, method: str, path: str) -> tuple[int, Any]:
    req = urllib.request.Request(rt.admin_url + path, method=method)
    with urllib.request.urlopen(req, timeout=HANG_GUARD) as r:
        return r.status, json.loads(r.read())


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/scenarios/stop"), ("DELETE", "/rules"), ("GET", "/healthz")],
    ids=["stop", "clear-rules", "healthz"],
)
async def test_admin_answers_while_the_proxy_loop_is_blocked(
    admin: Runtime, method: str, path: str
) -> None:
    await call(admin, "POST", "/scenarios/small/start")
    await call(admin, "POST", "/rules", {"fault": {"error": {"status": 418}}})
    answered = threading.Event()
    got: list[tuple[int, Any]] = []

    def client() -> None:
        got.append(call_blocking(admin, method, path))
        answered.set()

    threading.Thread(target=client, daemon=True).start()
    # Block the proxy loop (this test's loop) until the admin call answered: on the proxy
    # loop the admin could never answer, and this wait would end at the guard.
    assert answered.wait(HANG_GUARD), f"{method} {path} did not answer while the loop was busy"
    assert got[0][0] == 200
    if path == "/scenarios/stop":
        assert got[0][1]["stopped"] == "small"
        assert admin.engine.scenario is None and admin.engine.adhoc_rules()
    elif path == "/rules":
        assert got[0][1] == {"deleted": 1}
        assert admin.engine.adhoc_rules() == [] and admin.engine.scenario is not None


async def test_cleared_rules_are_gone_before_the_proxy_loop_runs_again(admin: Runtime) -> None:
    await call(admin, "POST", "/rules", {"match": {"path": "/api/**"}, "fault": {"error": {}}})
    assert await proxied_status(admin) == 500
    done = threading.Event()

    def clear() -> None:
        call_blocking(admin, "DELETE", "/rules")
        done.set()

    threading.Thread(target=clear, daemon=True).start()
    assert done.wait(HANG_GUARD)  # the proxy loop is blocked until the call answered
    assert not admin.engine.active
    assert await proxied_status(admin) == 200


async def test_events_of_an_admin_change_are_dispatched_on_the_proxy_loop(
    admin: Runtime,
) -> None:
    proxy_thread = threading.get_ident()
    loop = asyncio.get_running_loop()
    seen: list[tuple[str, int]] = []
    stopped = asyncio.Event()

    def on_state(ev: StateChanged) -> None:
        seen.append((ev.kind, threading.get_ident()))
        if ev.kind == "scenario_stopped":
            loop.call_soon_threadsafe(stopped.set)

    admin.bus.subscribe(StateChanged, on_state)
    await call(admin, "POST", "/scenarios/small/start")
    await call(admin, "POST", "/scenarios/stop")
    await asyncio.wait_for(stopped.wait(), HANG_GUARD)
    assert [k for k, _ in seen][:3] == ["scenario_started", "phase_changed", "scenario_stopped"]
    assert {t for _, t in seen} == {proxy_thread}


async def test_metrics_follow_admin_changes(admin: Runtime) -> None:
    await call(admin, "POST", "/scenarios/small/start")
    _, text = await call(admin, "GET", "/metrics")
    assert 'chaosproxy_scenario_active{phase="warmup",scenario="small"} 1.0' in text
    await call(admin, "POST", "/scenarios/stop")
    _, text = await call(admin, "GET", "/metrics")
    assert 'chaosproxy_scenario_active{phase="warmup",scenario="small"} 0.0' in text


@pytest.mark.parametrize("in_loop", [True, False], ids=["admin-in-proxy-loop", "admin-thread"])
async def test_both_admin_placements_serve_the_api(
    in_loop: bool, demo_upstream: str, start_proxy: StartProxy, scenario_dir: Path
) -> None:
    rt = await start_proxy(
        demo_upstream, scenario_dir=str(scenario_dir), admin_in_proxy_loop=in_loop
    )
    assert (await call(rt, "GET", "/readyz"))[0] == 200
    assert (await call(rt, "POST", "/scenarios/small/start"))[0] == 201
    status, body = await call(rt, "POST", "/scenarios/stop")
    assert (status, body["stopped"]) == (200, "small")
