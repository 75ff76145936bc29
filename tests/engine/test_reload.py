"""Hot reload: a valid change is applied, an invalid one rejected while the old one keeps
injecting, and a Kubernetes ConfigMap-style `..data` symlink swap is seen."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp
import pytest

from chaosproxy.common.events import StateChanged
from chaosproxy.config.loader import load_scenario_file
from chaosproxy.config.model import Scenario
from chaosproxy.engine.core import Engine
from chaosproxy.engine.reload import ScenarioWatcher
from chaosproxy.process.runtime import Runtime
from tests.conftest import StartProxy
from tests.engine.helpers import Rig, View, rig


def story(status: int, extra: str = "") -> str:
    return f"""\
name: story
phases:
  - name: broken
    duration: 1h
    rules:
      - name: boom
        fault: {{error: {{status: {status}{extra}}}}}
"""


def started(tmp_path: Path, text: str) -> tuple[Rig, ScenarioWatcher, Path]:
    path = tmp_path / "story.yaml"
    path.write_text(text)
    r = rig()
    r.engine.start_scenario(load_scenario_file(path))
    return r, ScenarioWatcher(r.engine, tmp_path, interval=0.01, clock=r.clock), path


def looks(watcher: ScenarioWatcher) -> list[Path]:
    """Two looks, as the watcher's poll makes them: a changed file is loaded only once it has
    held still from one look to the next."""
    assert watcher.check() == []
    return watcher.check()


def status_of(engine: Engine) -> int:
    d = engine.decide(View())
    assert d is not None
    return int(d.faults[0].status)  # type: ignore[attr-defined]


def test_unchanged_files_are_not_reloaded(tmp_path: Path) -> None:
    _, watcher, _ = started(tmp_path, story(500))
    assert watcher.check() == []


def test_valid_change_is_applied_to_the_running_scenario(tmp_path: Path) -> None:
    r, watcher, path = started(tmp_path, story(500))
    path.write_text(story(503, ", headers: {X-Version: two}"))
    assert looks(watcher) == [path.absolute()]
    assert status_of(r.engine) == 503
    ok = [s for s in r.states if s.kind == "reload_ok"]
    assert ok[-1].details == {"file": "story.yaml", "applied": True}  # relative to the dir


def test_reload_keeps_the_timeline_position(tmp_path: Path) -> None:
    r, watcher, path = started(tmp_path, story(500))
    r.clock.advance(120)
    path.write_text(story(502, ", headers: {X-Version: two}"))
    looks(watcher)
    assert r.engine.status()["scenario"]["elapsed"] == 120


def test_invalid_change_is_rejected_with_its_location_and_old_keeps_running(
    tmp_path: Path,
) -> None:
    r, watcher, path = started(tmp_path, story(500))
    path.write_text(story(700, ", headers: {X-Version: two}"))
    looks(watcher)
    failed = [s for s in r.states if s.kind == "reload_failed"]
    assert len(failed) == 1
    (problem,) = failed[0].details["problems"]
    assert problem.startswith("story.yaml:7:")
    assert "phases[0].rules[0].fault.error.status: must be ≤ 599" in problem
    assert status_of(r.engine) == 500


def test_a_changed_file_that_is_not_running_is_validated_only(tmp_path: Path) -> None:
    r, watcher, _ = started(tmp_path, story(500))
    other = tmp_path / "other.yaml"
    other.write_text(story(503).replace("name: story", "name: other"))
    looks(watcher)
    ok = [s for s in r.states if s.kind == "reload_ok"]
    assert ok[-1].scenario == "other" and ok[-1].details["applied"] is False
    assert status_of(r.engine) == 500


def test_change_in_an_included_file_reloads_the_scenario(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    rules = shared / "rules.yaml"
    rules.write_text("name: shared\nrules:\n  - fault: {error: {status: 500}}\n")
    main = tmp_path / "story.yaml"
    main.write_text(
        "name: story\nphases:\n  - name: p\n    duration: 1h\n    include: [shared/rules.yaml]\n"
    )
    r = rig()
    r.engine.start_scenario(load_scenario_file(main))
    watcher = ScenarioWatcher(r.engine, tmp_path, clock=r.clock)
    rules.write_text("name: shared\nrules:\n  - fault: {error: {status: 503}}  # new\n")
    assert looks(watcher) == [main.absolute()]
    assert status_of(r.engine) == 503


def configmap(directory: Path, version: int, text: str) -> None:
    """Write a ConfigMap volume the way the kubelet does: new dir, then swap `..data`."""
    data = directory / f"..2024_01_0{version}"
    data.mkdir()
    (data / "story.yaml").write_text(text)
    tmp = directory / "..data_tmp"
    tmp.symlink_to(data.name)
    os.replace(tmp, directory / "..data")
    link = directory / "story.yaml"
    if not link.is_symlink():
        link.symlink_to("..data/story.yaml")


async def get_status(url: str) -> int:
    async with aiohttp.ClientSession() as s, s.get(url + "/api/items") as r:
        await r.read()
        return r.status


def watch_for(rt: Runtime, kind: str) -> tuple[list[StateChanged], asyncio.Event]:
    """Every state change from now on, and an event set by the first of this kind."""
    events: list[StateChanged] = []
    seen = asyncio.Event()

    def on(ev: StateChanged) -> None:
        events.append(ev)
        if ev.kind == kind:
            seen.set()

    rt.bus.subscribe(StateChanged, on)
    return events, seen


async def test_configmap_symlink_swap_is_applied_through_a_real_proxy(
    demo_upstream: str, start_proxy: StartProxy, tmp_path: Path
) -> None:
    configmap(tmp_path, 1, story(500))
    rt = await start_proxy(
        demo_upstream, scenario="story", scenario_dir=str(tmp_path), reload_interval=0.02
    )
    _, reloaded = watch_for(rt, "reload_ok")
    assert await get_status(rt.proxy_url) == 500
    configmap(tmp_path, 2, story(503))
    async with asyncio.timeout(30):  # a guard against hanging, not a measure
        await reloaded.wait()
    assert await get_status(rt.proxy_url) == 503


async def test_invalid_configmap_update_keeps_the_old_version_injecting(
    demo_upstream: str, start_proxy: StartProxy, tmp_path: Path
) -> None:
    configmap(tmp_path, 1, story(500))
    rt = await start_proxy(
        demo_upstream, scenario="story", scenario_dir=str(tmp_path), reload_interval=0.02
    )
    events, failed = watch_for(rt, "reload_failed")
    configmap(tmp_path, 2, story(500).replace("duration: 1h", "duration: soon"))
    async with asyncio.timeout(30):  # a guard against hanging, not a measure
        await failed.wait()
    assert "phases[0].duration" in events[-1].details["problems"][0]
    assert await get_status(rt.proxy_url) == 500


def test_starting_a_scenario_with_includes_later_does_not_reload_it(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "rules.yaml").write_text("name: shared\nrules:\n  - fault: {error: {status: 500}}\n")
    main = tmp_path / "story.yaml"
    main.write_text(
        "name: story\nphases:\n  - name: p\n    duration: 1h\n    include: [shared/rules.yaml]\n"
    )
    r = rig()
    watcher = ScenarioWatcher(r.engine, tmp_path, clock=r.clock)  # nothing runs yet
    r.engine.start_scenario(load_scenario_file(main))
    assert watcher.check() == []
    assert not [s for s in r.states if s.kind == "scenario_replaced"]


def test_a_new_broken_file_in_the_directory_is_reported(tmp_path: Path) -> None:
    r, watcher, _ = started(tmp_path, story(500))
    (tmp_path / "broken.yaml").write_text("name: broken\nphases: []\n")
    looks(watcher)
    assert [s.kind for s in r.states if s.kind.startswith("reload")] == ["reload_failed"]
    assert status_of(r.engine) == 500


def test_an_edited_repeat_is_applied_unless_it_was_chosen_at_start(tmp_path: Path) -> None:
    r, watcher, path = started(tmp_path, story(500) + "repeat: 2\n")
    path.write_text(story(500) + "repeat: 3\n")
    looks(watcher)
    assert r.engine.status()["scenario"]["repeat"] == 3

    r2 = rig()
    r2.engine.start_scenario(load_scenario_file(path), repeat=5)
    w2 = ScenarioWatcher(r2.engine, tmp_path, clock=r2.clock)
    path.write_text(story(500) + "repeat: 1\n")
    looks(w2)
    assert r2.engine.status()["scenario"]["repeat"] == 5


async def test_reading_and_compiling_happen_off_the_event_loop(tmp_path: Path) -> None:
    """A slow parse (here: one that waits for a signal) runs in a worker thread while the
    loop goes on: proxied traffic is never stalled by a file dropped into the directory."""
    import threading

    r, _, path = started(tmp_path, story(500))
    entered, gate = threading.Event(), threading.Event()

    def slow_load(p: Path):  # type: ignore[no-untyped-def]
        entered.set()
        gate.wait(30)
        return load_scenario_file(p)

    watcher = ScenarioWatcher(r.engine, tmp_path, interval=0.01, clock=r.clock, load=slow_load)
    path.write_text(story(503, ", headers: {X-Version: two}"))
    assert await watcher.check_off_loop() == []  # the first look sees it change
    task = asyncio.create_task(watcher.check_off_loop())
    await asyncio.to_thread(entered.wait, 30)
    assert not task.done()  # the loop runs this test while the parse is blocked
    assert status_of(r.engine) == 500  # the old definition serves meanwhile
    gate.set()
    assert await task == [path.absolute()]
    assert status_of(r.engine) == 503


def test_a_huge_file_is_refused_and_the_running_scenario_stays(tmp_path: Path) -> None:
    r, watcher, path = started(tmp_path, story(500))
    path.write_text(story(503) + "#" * (5 * 1024 * 1024))
    looks(watcher)
    assert status_of(r.engine) == 500
    failed = [s for s in r.states if s.kind == "reload_failed"]
    assert "file too large" in failed[-1].details["problems"][0]


async def test_a_slow_reload_in_a_running_proxy_never_stalls_proxied_traffic(
    demo_upstream: str, start_proxy: StartProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The running proxy's watcher, not only `check_off_loop` called by hand: while reading a
    changed file is blocked (a load that waits for a signal), requests are answered with the
    running definition; the new one applies once the load finishes."""
    import threading

    from chaosproxy.config import loader

    path = tmp_path / "story.yaml"
    path.write_text(story(500))
    rt = await start_proxy(
        demo_upstream, scenario="story", scenario_dir=str(tmp_path), reload_interval=0.02
    )
    reloaded = asyncio.Event()
    rt.bus.subscribe(StateChanged, lambda e: reloaded.set() if e.kind == "reload_ok" else None)
    entered, gate = threading.Event(), threading.Event()
    real_load = loader.load_scenario_file

    def slow_load(p: str | os.PathLike[str]) -> Scenario:
        entered.set()
        gate.wait(30)
        return real_load(p)

    monkeypatch.setattr(loader, "load_scenario_file", slow_load)
    path.write_text(story(503))
    try:
        assert await asyncio.to_thread(entered.wait, 30), "the watcher never reloaded"
        assert await get_status(rt.proxy_url) == 500  # answered while the load is blocked
    finally:
        gate.set()
    await asyncio.wait_for(reloaded.wait(), 30)
    assert await get_status(rt.proxy_url) == 503


def three_rules(statuses: tuple[int, ...] = (501, 502, 503)) -> str:
    rules = "".join(
        f"      - name: r{s}\n        match: {{path: /s{s}}}\n"
        f"        fault: {{error: {{status: {s}}}}}\n"
        for s in statuses
    )
    return f"name: story\nphases:\n  - name: broken\n    duration: 1h\n    rules:\n{rules}"


def rule_ids(engine: Engine) -> list[str]:
    compiled = engine.scenario
    assert compiled is not None
    return [r.id for r in compiled.rules]


def test_a_file_still_being_written_is_never_applied_half_way(tmp_path: Path) -> None:
    """A writer that has written part of the file when the watcher looks: the part is valid
    YAML with fewer rules. It used to be applied (a partial rule set in force); now a file is
    only loaded once it is the same at two looks in a row."""
    r, watcher, path = started(tmp_path, story(500))
    full = three_rules()
    cut = full.index("      - name: r503")
    with path.open("w") as f:
        f.write(full[:cut])  # valid on its own: two of the three rules
        f.flush()
        assert watcher.check() == []  # changed since the last look: not loaded
        f.write(full[cut:])
    assert watcher.check() == []  # changed again (longer): still not loaded
    assert rule_ids(r.engine) == ["boom"]  # the old definition, never the partial one
    assert watcher.check() == [path.absolute()]  # held still from one look to the next
    assert rule_ids(r.engine) == ["r501", "r502", "r503"]
    assert [s.kind for s in r.states if s.kind.startswith("reload")] == ["reload_ok"]


def test_a_file_that_changes_while_it_is_read_is_loaded_once_it_holds_still(
    tmp_path: Path,
) -> None:
    """Settled at two looks, then rewritten while the watcher reads it: what was read is
    dropped (it may be a mix of two versions), and the new version loads once it settles."""
    path = tmp_path / "story.yaml"
    path.write_text(story(500))
    r = rig()
    r.engine.start_scenario(load_scenario_file(path))
    writes = iter([three_rules((502, 503))])  # another size: a stat() tells it apart

    def load(p: Path) -> Scenario:
        sc = load_scenario_file(p)
        nxt = next(writes, None)
        if nxt is not None:  # a writer comes by while this version is being read
            p.write_text(nxt)
        return sc

    watcher = ScenarioWatcher(r.engine, tmp_path, clock=r.clock, load=load)
    path.write_text(three_rules((501,)))
    assert looks(watcher) == []  # read, but the file changed meanwhile: nothing applied
    assert rule_ids(r.engine) == ["boom"]
    assert not [s for s in r.states if s.kind.startswith("reload")]
    assert watcher.check() == []  # the new version: seen changed, not yet settled
    assert watcher.check() == [path.absolute()]
    assert rule_ids(r.engine) == ["r502", "r503"]


def test_a_symlink_out_of_the_directory_is_not_watched(tmp_path: Path) -> None:
    """`leak.yaml -> /app/.env`: never read, so its content reaches no reload_failed event."""
    r, watcher, _ = started(tmp_path, story(500))
    outside = tmp_path.parent / f"{tmp_path.name}-secret.env"
    outside.write_text("API_KEY=sk-live-5ecret\n")
    (tmp_path / "leak.yaml").symlink_to(outside)
    assert looks(watcher) == []
    assert not [s for s in r.states if s.kind.startswith("reload")]
    outside.unlink()
