"""Each second of a run, over recorded real runs (`fixtures/`): the proxy's live view, the
`halt` checks judged on what was known then, and the progress line. The runner's loop is done
by hand here, one tick at a time, on the replay's clock."""

from __future__ import annotations

import dataclasses
import io
import re
from pathlib import Path
from typing import Any, cast

import pytest

from chaosproxy.experiment import align
from chaosproxy.experiment.lifecycle import RunEvents, State
from chaosproxy.experiment.live import Console, check_halts, progress_line, refresh_proxy_view
from chaosproxy.experiment.model import Experiment
from tests.experiment.fixtures.replay import Recording, ReplayRun, recording


@dataclasses.dataclass
class Tick:
    now: float
    line: str
    breach: str | None


async def scheduled(rec: Recording, out: Path, exp: Experiment | None = None) -> ReplayRun:
    """A run as the runner leaves it once the scenario is scheduled (no Locust, no proxy)."""
    out.mkdir(parents=True, exist_ok=True)
    run = ReplayRun(rec, out, exp=exp)
    run.scenario = rec.scenario
    await run._prepare(rec.scenario, cast(Any, None))
    run.started = run.clock.time()
    run.load = await run.launch_load(out / "plan.json")
    run.step.advance_to(rec.at - 2)
    await run.fake_proxy.start(rec.scenario.name, at=rec.at)
    run.scenario_at = rec.at
    return run


async def follow(run: ReplayRun, until: float | None = None) -> list[Tick]:
    """The loop's seconds from the scenario's scheduling to its end (or the first breach):
    poll the client and the events, refresh the live view, judge the halts, the line."""
    rec = run.rec
    halting = [c for c in run.exp.checks if c.halt]
    ticks = []
    now = run.step.landing(rec.at - 0.8)  # the recorded run's ticks, jitter and all
    while now < (until or rec.at + rec.scenario.cycle_duration):
        run.step.advance_to(now)
        run.client.poll()
        await run.poll_events()
        breach = None
        if halting and run.halted is None:
            await refresh_proxy_view(run, rec.at)
            breach = await check_halts(run, rec.scenario, halting)
        ticks.append(Tick(now, progress_line(run, rec.scenario, now), breach))
        now = run.step.landing(float(int(now) + 1) + 0.2)
    return ticks


def with_halt(exp: Experiment, name: str) -> Experiment:
    checks = tuple(dataclasses.replace(c, halt=c.name == name) for c in exp.checks)
    return dataclasses.replace(exp, checks=checks)


def progress_lines(rec: Recording) -> list[str]:
    """The progress lines the real run printed after the scenario was scheduled."""
    lines = rec.run["console"].splitlines()
    first = next(i for i, ln in enumerate(lines) if ln.startswith("scenario ")) + 1
    return [ln for ln in lines[first:] if "/13s" in ln]


# ---------------------------------------------------------------- halts


async def test_a_recorded_breach_halts_in_the_second_the_real_run_did(tmp_path: Path) -> None:
    rec = recording("halt")
    run = await scheduled(rec, tmp_path)
    ticks = await follow(run)
    recorded = rec.expected["halted"]
    (breach,) = [t for t in ticks if t.breach]  # once: halted, the checks are not judged
    assert int(breach.now) == int(recorded["at"])
    assert breach.breach is not None and breach.breach.startswith("'served' breached")
    assert run.halted is not None
    assert {k: run.halted[k] for k in ("check", "phase", "value", "interval", "bound")} == {
        k: recorded[k] for k in ("check", "phase", "value", "interval", "bound")
    }
    assert run.halted["false_alarm"] == run.exp.halt_false_alarm == 0.01
    # Judged once per second of the outage phase seen so far: here the first was enough.
    assert run.looks == {"served": 1}
    # Injection stopped on the proxy at once (after the tick's calls); its event says so.
    assert run.fake_proxy.stopped_at == pytest.approx(breach.now, abs=0.01)
    await run.poll_events()
    windows = run.windows(rec.scenario, breach.now + 5)
    assert windows[-1].name == "outage" and windows[-1].end == run.fake_proxy.stopped_at


async def test_no_halt_where_failover_kept_clients_served(tmp_path: Path) -> None:
    rec = recording("failover")
    run = await scheduled(rec, tmp_path, with_halt(rec.exp, "served"))
    ticks = await follow(run)
    assert [t.breach for t in ticks] == [None] * len(ticks) and run.halted is None
    # Looked at once a second from the first outage second written (Locust's counts of a
    # second are judged in the next one) to the end of the scenario.
    first = next(i for i, t in enumerate(ticks) if int(t.now) - 1 >= rec.at + 3)
    assert run.looks == {"served": len(ticks) - first}
    assert run.fake_proxy.stopped_at is None


async def test_a_halt_check_of_a_phase_not_reached_is_not_judged(tmp_path: Path) -> None:
    rec = recording("halt")
    run = await scheduled(rec, tmp_path)
    ticks = await follow(run, until=rec.at + 3.5)  # through the steady phase
    assert [t.breach for t in ticks] == [None] * len(ticks)
    assert run.looks == {} and run.halted is None


async def test_the_live_view_is_the_proxys_last_ten_seconds(tmp_path: Path) -> None:
    rec = recording("failover")
    run = await scheduled(rec, tmp_path)
    run.step.advance_to(rec.at + 12.2)
    await refresh_proxy_view(run, rec.at)
    recorded = align.proxy_views(rec.timeseries)
    now = int(rec.at + 12.2)
    assert sorted(run.live_proxy) == [t for t in sorted(recorded) if now - 10 <= t < now]
    assert all(run.live_proxy[t] == recorded[t] for t in run.live_proxy)
    # Earlier seconds stay: the view accumulates.
    run.step.advance_to(rec.at + 13.2)
    await refresh_proxy_view(run, rec.at)
    assert min(run.live_proxy) == now - 10


# ---------------------------------------------------------------- the progress line


LINE = re.compile(r"^(\S+) +(\d+)/(\d+)s  (.*)$")


def expected_phase(rec: Recording, sec: int) -> str:
    """The scenario's phase in second `sec`, from the recording's own schedule."""
    t = float(rec.at)
    for p in rec.scenario.phases:
        if t <= sec < t + p.duration:
            return p.name
        t += p.duration
    return "warmup" if sec < rec.at else "cooldown"


async def test_each_progress_line_is_about_one_second_label_and_numbers_alike(
    tmp_path: Path,
) -> None:
    """Each line's numbers are the last complete second's (as the real run printed them), and
    so are its phase and its seconds done: the label never runs a second ahead of them."""
    for name in ("failover", "spike", "halt"):
        rec = recording(name)
        run = await scheduled(rec, tmp_path / name)
        ticks = await follow(run)
        if name == "halt":
            halted = next(i for i, t in enumerate(ticks) if t.breach) + 1
            ticks = ticks[:halted]
        printed = progress_lines(rec)[: len(ticks)]
        assert len(printed) == len(ticks) > 5, name
        total = rec.scenario.cycle_duration
        for tick, real in zip(ticks, printed, strict=True):
            mine, theirs = LINE.match(tick.line), LINE.match(real)
            assert mine and theirs, (tick.line, real)
            sec = int(tick.now) - 1
            assert mine.group(4) == theirs.group(4), name  # the same second's numbers
            assert mine.group(1) == expected_phase(rec, sec), (name, tick.now, tick.line)
            assert int(mine.group(2)) == min(max(0, sec + 1 - int(rec.at)), int(total))


async def test_the_progress_line_names_the_phase_and_the_seconds(tmp_path: Path) -> None:
    rec = recording("halt")
    run = await scheduled(rec, tmp_path)
    ticks = await follow(run, until=rec.at + 7)
    by_second = {round(t.now - rec.at, 1): t.line for t in ticks}
    assert by_second[-0.8].startswith("warmup              0/13s  users 5 ")
    # At 3.2 s the last complete second is the steady phase's third: its label, its numbers.
    assert by_second[3.2].startswith("steady              3/13s")
    assert "errors    0 %" in by_second[3.2]
    assert "injected 0" in by_second[3.2]  # halting: the live view is kept
    # The tick that halts shows the second that breached: the outage's first, all failed.
    breach = by_second[4.2]
    assert breach.startswith("outage              4/13s") and "errors  100 %" in breach
    # Its numbers, faults injected included, as the real run counted them.
    assert breach.split("s  ", 1)[1] in [ln.split("s  ", 1)[1] for ln in progress_lines(rec)]
    # The seconds after the halt read "halted".
    assert by_second[5.2].startswith("halted              5/13s")


# ---------------------------------------------------------------- the console


class FakeRun:
    """What the console reads of a run."""

    def __init__(self) -> None:
        self.state = State.WARMING_UP
        self.load = object()
        self.client = align.ClientData(Path("/nonexistent"))
        self.warm = (5, 5.0)


def test_the_console_rewrites_the_progress_line_on_a_terminal() -> None:
    stream = io.StringIO()
    console = Console(stream, tty=True)
    events = RunEvents()
    console.attach(events)
    run = FakeRun()
    events.tick.fire(run=run, now=1.0)
    run.client.users = 5
    events.tick.fire(run=run, now=2.0)
    events.warning.fire(run=run, text="locust-worker-0 exited (-9)")
    events.test_stopping.fire(run=run, reason="the planned end")
    assert stream.getvalue() == (
        "\rwarm-up  users 0/5"
        "\rwarm-up  users 5/5"
        "\r" + " " * 18 + "\rwarning: locust-worker-0 exited (-9)\n"
    )
    events.tick.fire(run=run, now=3.0)
    events.test_stopping.fire(run=run, reason="the planned end")
    assert stream.getvalue().endswith("\r" + " " * 18 + "\r\n")  # ends the line
    plain = io.StringIO()
    console = Console(plain, tty=False)
    console.attach(events := RunEvents())
    events.tick.fire(run=run, now=1.0)
    events.message.fire(run=run, text="hello")
    events.test_stopping.fire(run=run, reason="the planned end")
    assert plain.getvalue() == "warm-up  users 5/5\nhello\n"
