"""A whole run as a state machine, driven without Locust, sockets or sleep: recorded real runs
(`fixtures/record.py`) played back through the real runner with a clock that only moves when
the run waits, a Locust that writes what the real one wrote (and can die), and a proxy that
answers what the real one answered (`fixtures/replay.py`)."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import re
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from chaosproxy.admin.client import AdminClient
from chaosproxy.experiment.lifecycle import (
    NEXT,
    EventHook,
    Lifecycle,
    RealClock,
    RunEvents,
    State,
    TransitionError,
)
from chaosproxy.experiment.processes import Child, SetupError, StartedProxy
from chaosproxy.experiment.runner import ExperimentRun, Outcome
from chaosproxy.experiment.series import second_to_json
from tests.experiment.fixtures.replay import (
    NAMES,
    FakeProc,
    Recording,
    ReplayRun,
    StepClock,
    judged_now,
    recording,
)


async def replay(rec: Recording, out: Path, **kw: Any) -> tuple[ReplayRun, Outcome]:
    run = ReplayRun(rec, out, **kw)
    return run, await run.execute()


def states(run: ReplayRun) -> list[str]:
    return [str(t.state) for t in run.lifecycle.history]


def when(run: ReplayRun, state: State) -> float:
    return next(t.at for t in run.lifecycle.history if t.state is state)


def reason(run: ReplayRun, state: State) -> str:
    return next(t.reason for t in run.lifecycle.history if t.state is state)


def console_lines(text: str) -> list[str]:
    """What the console showed while the run went (up to the checks table, which is the
    verdict's), without the time of day (machines differ). Of a progress line, its numbers:
    its label and seconds name the second they are about (test_live), which the recorded
    runs' lines named a second late."""
    text = re.sub(r"starts at \d\d:\d\d:\d\d", "starts at HH:MM:SS", text)
    lines = text.splitlines()
    progress = re.compile(r"^\S+ +\d+/\d+s  ")
    return [progress.sub("… ", ln) for ln in lines[: lines.index("")]]


# ---------------------------------------------------------------- a recorded run, replayed


@pytest.mark.parametrize("name", NAMES)
async def test_a_recorded_run_replays_to_the_rows_and_verdict_the_real_run_gave(
    name: str, tmp_path: Path
) -> None:
    """The rows, phases, halt and problems are the runner's: the replay's must be the real
    run's. The verdict on them is verdict.py's: the real run's data judged again today."""
    rec = recording(name)
    run, outcome = await replay(rec, tmp_path)
    doc = outcome.results
    assert doc is not None
    expected = rec.expected
    assert doc["problems"] == expected["problems"]
    if expected["halted"] is None:
        assert doc["halted"] is None
    else:  # the same halt, a few milliseconds apart (the real run's checks took time)
        assert doc["halted"]["at"] == pytest.approx(expected["halted"]["at"], abs=0.05)
        assert doc["halted"] | {"at": 0} == expected["halted"] | {"at": 0}
    verdict = judged_now(rec)
    assert outcome.verdict == verdict.status and doc["reasons"] == verdict.reasons
    assert outcome.exit_code == (0 if verdict.status == "PASS" else 1)
    assert doc["checks"] == [c.to_json() for c in verdict.checks]  # as results.json has them
    rows = [json.loads(x) for x in (tmp_path / "series.jsonl").read_text().splitlines()]
    assert rows == [second_to_json(s) for s in rec.series]
    phases = [(p["name"], p["start"], p["seconds"], p["client"]["requests"]) for p in doc["phases"]]
    assert phases == [
        (p["name"], p["start"], p["seconds"], p["client"]["requests"]) for p in expected["phases"]
    ]
    # The same states at the same times (the real run spent real time preparing and
    # stopping its processes).
    recorded = expected["run"]["states"]
    assert [s["state"] for s in doc["run"]["states"]] == [s["state"] for s in recorded]
    for mine, theirs in list(zip(doc["run"]["states"], recorded, strict=True))[2:]:
        assert mine["reason"] == theirs["reason"]
        if mine["state"] != "gathering":
            assert mine["at"] == pytest.approx(theirs["at"], abs=0.05), mine
    # ... and the same console, but the line of starting the proxy this replay never starts.
    real = console_lines(rec.run["console"])
    assert real[0].startswith("starting chaosproxy in front of")
    assert console_lines(run.opts.stream.getvalue()) == real[1:]  # type: ignore[attr-defined]


async def test_every_state_and_event_of_a_run_in_order(tmp_path: Path) -> None:
    rec = recording("failover")
    run = ReplayRun(rec, tmp_path)
    seen: list[str] = []
    run.hooks.state_changed.add_listener(lambda state, **_: seen.append(str(state)))
    run.hooks.test_start.add_listener(lambda at, **_: seen.append(f"test_start {at:.0f}"))
    run.hooks.tick.add_listener(lambda **_: seen.append("tick"))
    run.hooks.test_stopping.add_listener(lambda reason, **_: seen.append(f"stopping: {reason}"))
    run.hooks.test_stop.add_listener(lambda **_: seen.append("test_stop"))
    outcome = await run.execute()

    compact = [s for i, s in enumerate(seen) if s != "tick" or seen[i - 1] != "tick"]
    assert compact == [
        "preparing",
        "warming_up",
        "tick",
        "running",
        f"test_start {rec.at:.0f}",
        "tick",
        "stopping",
        "stopping: the planned end",
        "test_stop",
        "gathering",
        "done",
    ]
    # One wait a second, to the planned end; a tick after each, but the one that ends the
    # warm-up and the one that ends the run.
    waits = int(when(run, State.STOPPING)) - int(rec.started)
    assert run.step.waits == waits and seen.count("tick") == waits - 2
    assert run.state is State.DONE
    # results.json keeps the history up to the state it was written in.
    assert outcome.results is not None
    written = outcome.results["run"]["states"]
    assert [s["state"] for s in written] == states(run)[:-1]
    assert written[-1] == {"state": "gathering", "at": when(run, State.GATHERING), "reason": ""}


# ---------------------------------------------------------------- warm-up, scheduling


def watch_warm_up(run: ReplayRun) -> list[tuple[float, int, int]]:
    """(time, users, requests of the last 3 s) at each tick of the warm-up, as the run saw."""
    ticks: list[tuple[float, int, int]] = []

    def tick(run: ReplayRun, now: float) -> None:
        if run.state is State.WARMING_UP:
            recent = sum(v.requests for t, v in run.client.seconds.items() if t >= int(now) - 3)
            ticks.append((now, run.client.users, recent))

    run.hooks.tick.add_listener(tick)
    return ticks


def assert_warm_up_rule(run: ReplayRun, ticks: list[tuple[float, int, int]]) -> None:
    """The scenario is scheduled at the first tick at which the warm-up users have run, with
    requests, for `settle` seconds; for the whole second two on."""
    warm, settle = run.warm[0], run.exp.load.settle
    running = when(run, State.RUNNING)
    last = max(t for t in run.step.woke if t < running)  # the tick that ended the warm-up
    assert [t for t in run.step.woke if t < running] == [t for t, _, _ in ticks] + [last]
    since = last
    for t, users, recent in reversed(ticks):
        if users < warm or not recent:
            break
        since = t
    assert last - since >= settle  # held for `settle` seconds
    assert all(t - since < settle for t, _, _ in ticks if t >= since)  # ... no tick longer
    assert run.scenario_at == float(int(last) + 2)


async def test_the_warm_up_waits_for_steady_users_then_schedules_at_a_whole_second(
    tmp_path: Path,
) -> None:
    rec = recording("failover")
    run = ReplayRun(rec, tmp_path)
    ticks = watch_warm_up(run)
    await run.execute()

    assert run.warm[0] == rec.exp.load.users == 5
    # Ticks just after each whole second, users climbing to the warm-up count.
    assert all(0.2 <= t % 1 < 0.25 for t, _, _ in ticks)
    assert ticks[0][1] < 5 or not ticks[0][2]
    assert_warm_up_rule(run, ticks)
    # Scheduled for the same whole second on every proxy, about two seconds on.
    assert run.scenario_at == rec.at
    (start,) = [t for c, t in run.fake_proxy.calls if c == "start"]
    assert start == pytest.approx(when(run, State.RUNNING), abs=0.01)
    assert 1.0 < rec.at - start <= 2.0
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["end"] == rec.at + rec.scenario.cycle_duration + rec.exp.load.cooldown


async def test_a_longer_settle_schedules_the_scenario_later(tmp_path: Path) -> None:
    rec = recording("failover")
    at = {}
    for settle in (1.0, 3.0):
        load = dataclasses.replace(rec.exp.load, settle=settle)
        exp = dataclasses.replace(rec.exp, load=load)
        stop = asyncio.Event()
        run = ReplayRun(rec, tmp_path / str(settle), exp=exp, stop=stop, strict=False)
        ticks = watch_warm_up(run)
        run.hooks.test_start.add_listener(lambda stop=stop, **_: stop.set())  # enough: stop
        await run.execute()
        assert_warm_up_rule(run, ticks)
        at[settle] = run.scenario_at
        assert states(run)[2:5] == ["running", "interrupted", "stopping"]
    assert at[1.0] == rec.at and at[3.0] is not None and at[3.0] > rec.at


async def test_a_load_that_never_reaches_its_users_is_a_setup_error(tmp_path: Path) -> None:
    """50 users planned, 5 ever seen: after 45 s and the spawn time the run gives up (on the
    fake clock: at once), stops Locust and fails with Locust's log."""
    rec = recording("failover")
    exp = dataclasses.replace(rec.exp, load=dataclasses.replace(rec.exp.load, users=50))
    run = ReplayRun(rec, tmp_path, exp=exp)
    with pytest.raises(SetupError, match="load never reached 50 users"):
        await run.execute()
    assert states(run) == ["preparing", "warming_up", "stopping", "failed"]
    assert reason(run, State.STOPPING).startswith("load never reached 50 users")
    assert reason(run, State.FAILED) == reason(run, State.STOPPING)
    assert when(run, State.STOPPING) - rec.started > 45 + 50 / 10 + 1
    assert run.locust.proc.signals == [signal.SIGINT]  # the load was stopped
    assert "start" not in {c for c, _ in run.fake_proxy.calls}
    assert not (tmp_path / "results.json").exists()


# ---------------------------------------------------------------- halt


async def test_a_halt_is_a_state_that_stops_injection_and_moves_the_end(tmp_path: Path) -> None:
    rec = recording("halt")
    run, outcome = await replay(rec, tmp_path)
    recorded = rec.expected["halted"]
    assert states(run) == [
        "preparing",
        "warming_up",
        "running",
        "halted",
        "stopping",
        "gathering",
        "done",
    ]
    halted_at = when(run, State.HALTED)
    assert int(halted_at) == int(recorded["at"])
    assert run.halted is not None
    assert run.halted["value"] == recorded["value"] and run.halted["phase"] == "outage"
    why = reason(run, State.HALTED)
    assert why.startswith("'served' breached (error_rate in outage 100 %")
    # Injection stopped at the halt, the load 3 s later (the next tick after that).
    stops = [t for c, t in run.fake_proxy.calls if c == "stop"]
    assert stops[0] == pytest.approx(halted_at, abs=0.01)
    assert run.end == pytest.approx(halted_at + 3.0, abs=0.01)
    assert json.loads((tmp_path / "plan.json").read_text())["end"] == run.end
    assert reason(run, State.STOPPING) == "the planned end after the halt"
    assert 3.0 <= when(run, State.STOPPING) - halted_at < 4.0
    console = run.opts.stream.getvalue()  # type: ignore[attr-defined]
    assert f"HALT: {why}; injection stopped on 1 proxy(ies)\n" in console
    assert outcome.verdict == "FAIL" and outcome.results is not None
    assert outcome.results["problems"] == []  # the halt's own stop is no problem


# ---------------------------------------------------------------- what goes wrong


async def test_locust_dying_mid_run_ends_it_inconclusive_and_says_so(tmp_path: Path) -> None:
    rec = recording("failover")
    run = ReplayRun(rec, tmp_path)
    run.step.at(rec.at + 4.5, lambda: run.locust.die(-9))  # in the outage phase
    outcome = await run.execute()

    assert outcome.verdict == "INCONCLUSIVE" and outcome.exit_code == 1
    assert outcome.results is not None
    problems = outcome.results["problems"]
    assert problems[0] == (
        "Locust exited (code -9) 5s into the scenario, during phase outage; "
        "the rest of the scenario (outage, after) had no load"
    )
    assert f"the run did not go as planned: {problems[0]}" in outcome.results["reasons"]
    assert "locust's log" in outcome.results["notes"][0]
    # Seen at the next tick; the run stopped there and left no scenario running.
    assert states(run)[2:] == ["running", "stopping", "gathering", "done"]
    assert when(run, State.STOPPING) == pytest.approx(rec.at + 5.2, abs=0.01)
    assert reason(run, State.STOPPING) == "the Locust master exited"
    assert run.fake_proxy.stopped_at == pytest.approx(rec.at + 5.2, abs=0.01)
    console = run.opts.stream.getvalue()  # type: ignore[attr-defined]
    assert "warning: locust exited (-9)\n" in console
    assert not [p for p in outcome.results["phases"] if p["name"] == "after" and p["seconds"]]


async def test_a_proxy_the_run_started_exiting_ends_it_inconclusive(tmp_path: Path) -> None:
    rec = recording("failover")
    proc = FakeProc()

    class OwnProxy(ReplayRun):
        async def open_admins(self, session: aiohttp.ClientSession) -> list[AdminClient]:
            child = Child("proxy", proc, tmp_path / "proxy.log")  # type: ignore[arg-type]
            self.proxy = StartedProxy(child, "http://127.0.0.1:1", self.fake_proxy.url)
            return await super().open_admins(session)

    run = OwnProxy(rec, tmp_path)
    run.step.at(rec.at + 8.5, lambda: setattr(proc, "returncode", -9))
    outcome = await run.execute()
    assert outcome.verdict == "INCONCLUSIVE" and outcome.results is not None
    assert outcome.results["problems"][0] == (
        "the proxy the run started (http://127.0.0.1:1) exited (code -9) 9s into the "
        "scenario, during phase after"
    )
    assert reason(run, State.STOPPING) == "the proxy exited"
    assert "warning: the proxy exited (-9)\n" in run.opts.stream.getvalue()  # type: ignore[attr-defined]


async def test_an_interruption_mid_run_stops_at_once_and_still_gathers(tmp_path: Path) -> None:
    rec = recording("failover")
    stop = asyncio.Event()
    run = ReplayRun(rec, tmp_path, stop=stop)
    run.step.at(rec.at + 6.5, stop.set)
    outcome = await run.execute()

    assert states(run)[2:] == ["running", "interrupted", "stopping", "gathering", "done"]
    # The wait ended at the signal (the run then polled the proxy once: a millisecond).
    assert when(run, State.INTERRUPTED) == pytest.approx(rec.at + 6.5, abs=0.01)
    assert reason(run, State.STOPPING) == "interrupted"
    assert run.locust.proc.signals == [signal.SIGINT]
    assert run.fake_proxy.stopped_at == pytest.approx(rec.at + 6.5, abs=0.01)
    assert outcome.exit_code == 1 and outcome.verdict != "PASS"
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["interrupted"] is True
    assert [s["state"] for s in doc["run"]["states"]][-3:] == [
        "interrupted",
        "stopping",
        "gathering",
    ]


async def test_an_interruption_in_the_warm_up_never_starts_the_scenario(tmp_path: Path) -> None:
    rec = recording("failover")
    stop = asyncio.Event()
    run = ReplayRun(rec, tmp_path, stop=stop)
    run.step.at(rec.started + 1.5, stop.set)
    outcome = await run.execute()

    assert states(run) == [
        "preparing",
        "warming_up",
        "interrupted",
        "stopping",
        "gathering",
        "done",
    ]
    assert "start" not in {c for c, _ in run.fake_proxy.calls}
    assert run.scenario_at is None and outcome.exit_code == 1
    assert outcome.results is not None and outcome.results["interrupted"] is True


async def test_a_failing_listener_is_logged_and_the_run_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rec = recording("failover")
    run = ReplayRun(rec, tmp_path)
    ticks = []

    def broken(**_: Any) -> None:
        ticks.append(1)
        raise RuntimeError("a broken listener")

    run.hooks.tick.add_listener(broken)
    with caplog.at_level(logging.ERROR, logger="chaosproxy.experiment"):
        outcome = await run.execute()
    assert outcome.verdict == rec.expected["verdict"]
    failed = [r for r in caplog.records if "a listener of tick failed" in r.getMessage()]
    assert len(failed) == len(ticks) > 10
    # The console, a listener of the same event before it, still printed every line.
    lines = run.opts.stream.getvalue().splitlines()  # type: ignore[attr-defined]
    assert len([ln for ln in lines if ln.startswith("warm-up") or "/13s" in ln]) == len(ticks)


async def test_on_a_terminal_the_progress_line_is_rewritten_in_place(tmp_path: Path) -> None:
    rec = recording("failover")
    stream = io.StringIO()
    await ReplayRun(rec, tmp_path, stream=stream, tty=True).execute()
    out = stream.getvalue()
    assert "\rwarm-up  users 0/5" in out and "warm-up  users 0/5\n" not in out
    assert "\rsteady  " in out
    # Every message first clears the progress line: none is written after one.
    assert "\n" not in out.split("\rafter ")[1].split("\r")[0]


# ---------------------------------------------------------------- the machine itself


class Owner:
    pass


def test_the_transitions_of_a_run() -> None:
    clock = StepClock(100.0)
    life = Lifecycle(Owner(), clock, RunEvents())
    with pytest.raises(TransitionError, match="None -> running"):
        life.to(State.RUNNING)
    for s in (State.PREPARING, State.WARMING_UP, State.RUNNING, State.HALTED):
        life.to(s)
    with pytest.raises(TransitionError, match="halted -> running"):
        life.to(State.RUNNING)
    life.to(State.STOPPING, "the planned end after the halt")
    life.fail("boom")
    assert life.state is State.FAILED
    life.fail("again")  # an ended run stays as it ended
    with pytest.raises(TransitionError):
        life.to(State.DONE)
    assert [t["state"] for t in life.to_json()][-2:] == ["stopping", "failed"]
    assert life.to_json()[-1] == {"state": "failed", "at": 100.0, "reason": "boom"}
    # Every state but the ends leads on; every state is reachable from the start.
    reach: set[State] = set()
    todo: list[State | None] = [None]
    while todo:
        for nxt in NEXT[todo.pop()] - reach:
            reach.add(nxt)
            todo.append(nxt)
    assert reach | {State.FAILED} == set(State)


def test_an_event_hook_calls_each_listener_once_in_order_and_isolates_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hook = EventHook("tick")
    got: list[tuple[str, int]] = []

    @hook.add_listener
    def first(n: int) -> None:
        got.append(("first", n))

    def broken(n: int) -> None:
        raise ValueError(n)

    hook.add_listener(broken)
    hook.add_listener(lambda n: got.append(("last", n)))
    with caplog.at_level(logging.ERROR, logger="chaosproxy.experiment"):
        hook.fire(n=1)
        hook.remove_listener(first)
        hook.fire(n=2)
    assert got == [("first", 1), ("last", 1), ("last", 2)]
    assert len(caplog.records) == 2 and caplog.records[0].exc_info is not None


async def test_the_real_clock_waits_and_honours_the_stop_event() -> None:
    clock = RealClock()
    stop = asyncio.Event()
    t0 = clock.time()
    assert await clock.wait(0.02, stop) is False
    assert clock.time() - t0 >= 0.02
    asyncio.get_running_loop().call_later(0.01, stop.set)
    t1 = clock.time()
    assert await clock.sleep_until(t1 + 30.0, stop) is True
    assert clock.time() - t1 < 5.0
    assert await clock.wait(0.0) is False


async def test_a_report_that_cannot_be_written_loses_neither_the_results_nor_the_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A report is evidence, not the verdict: when rendering fails, results.json and
    series.jsonl are there, the exit code is the verdict's, and the console says why."""
    import chaosproxy.experiment.report as report

    def broken(out: Path) -> list[Path]:
        raise RuntimeError("the template is broken")

    monkeypatch.setattr(report, "write_reports", broken)
    monkeypatch.setattr(ReplayRun, "_reports", ExperimentRun._reports)  # the replay skips reports
    rec = recording("failover")
    run, outcome = await replay(rec, tmp_path)
    verdict = judged_now(rec)
    assert json.loads((tmp_path / "results.json").read_text())["verdict"] == verdict.status
    assert (tmp_path / "series.jsonl").stat().st_size > 0
    assert outcome.exit_code == (0 if verdict.status == "PASS" else 1)
    shown = run.opts.stream.getvalue()  # type: ignore[attr-defined]
    assert "could not write the reports: the template is broken" in shown
    assert not (tmp_path / "report.html").exists()
