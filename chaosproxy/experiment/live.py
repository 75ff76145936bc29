"""Step (4) of a run, each second while the scenario runs: the proxies' live view, the `halt`
checks judged on what is known so far, and the progress line; and `Console`, the listener that
shows a run as it goes (its messages, the progress line, the halt, the final table).

Halts are judged every second, so each uses the anytime-valid form of its check
(`verdict.live_breach`): over a whole phase the chance of a false halt stays at most the
experiment's `halt_false_alarm` (1 %), however many seconds are looked at."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any, TextIO

from chaosproxy.common.errors import ChaosProxyError
from chaosproxy.config.model import Scenario
from chaosproxy.experiment import align, results
from chaosproxy.experiment.estimate import reference_rate
from chaosproxy.experiment.halts import live_breach
from chaosproxy.experiment.lifecycle import RunEvents, State
from chaosproxy.experiment.model import CheckSpec
from chaosproxy.experiment.numbers import fmt
from chaosproxy.experiment.outcome import WARMUP, baseline_phase
from chaosproxy.experiment.series import View

if TYPE_CHECKING:
    from chaosproxy.experiment.run_state import RunState


async def refresh_proxy_view(run: RunState, at: float) -> None:
    """The proxies' last ten seconds of this run, merged into `run.live_proxy`."""
    first = int(at) - 1
    end = int(run.clock.time())
    views: list[dict[int, View]] = []
    split: list[dict[int, dict[str, View]]] = []
    for c in run.clients:
        with contextlib.suppress(ChaosProxyError):
            rows = await c.timeseries(max(first, end - 10), end, run.run_id, histograms=True)
            views.append(align.proxy_views(rows))
            split.append(align.proxy_cohort_views(rows))
    run.live_proxy.update(align.merge_views(views) if views else {})
    run.live_proxy_cohorts.update(align.merge_cohorts(split) if split else {})


async def check_halts(run: RunState, scenario: Scenario, halting: list[CheckSpec]) -> str | None:
    """Judge the `halt` checks on what is known so far; on a breach stop the scenario
    everywhere and record it in `run.halted`. What breached (the reason of the run's `halted`
    state), or None."""
    now = run.clock.time()
    windows = run.windows(scenario, now)
    if not windows:
        return None
    last = int(now) - 1  # Locust's counts of a second are written within the next one
    rows = align.build_rows(
        int(run.scenario_at or now),
        last,
        run.client.seconds,
        run.live_proxy,
        windows,
        # a control group: halts on the difference
        client_cohorts=run.client.cohorts if run.client_cohorts_agree else None,
        proxy_cohorts=run.live_proxy_cohorts,
    )
    base = baseline_phase(windows, run.exp.baseline)
    ref = reference_rate([s for s in rows if s.phase == base])
    alpha = run.exp.halt_false_alarm
    for spec in halting:
        if spec.source == "prometheus" or not any(s.phase == spec.during_phase for s in rows):
            continue
        look = run.looks[spec.name] = run.looks.get(spec.name, 0) + 1
        r = live_breach(spec, rows, ref, alpha=alpha, look=look)
        if r is not None:
            await run.stop_scenarios()
            run.halted = {
                "check": spec.name,
                "at": now,
                "phase": spec.during_phase,
                "value": r.value,
                "interval": [r.lo, r.hi],
                "bound": spec.bound,
                "false_alarm": alpha,
            }
            return f"{spec.name!r} breached ({r.message})"
    return None


def progress_line(run: RunState, scenario: Scenario, now: float) -> str:
    """One line about the last complete second (Locust writes a second's counts within the
    next one): its phase, the scenario's seconds done by its end, users, requests, errors,
    p95, and the faults injected up to it — label and numbers about the same second."""
    sec = int(now) - 1
    windows = run.windows(scenario, now)
    phase = align.label(sec, windows) if windows else WARMUP
    if run.halted and sec >= int(run.halted["at"]):
        phase = "halted"
    at = run.scenario_at or now
    total = scenario.cycle_duration
    done = min(max(0.0, sec + 1 - at), total)
    v = run.client.seconds.get(sec, View())
    injected = sum(x.injected for t, x in run.live_proxy.items() if int(at) <= t <= sec)
    er = v.error_rate
    p95 = v.quantile(0.95)
    reported = [t for t in run.client.users_at if t <= sec]
    users = run.client.users_at[max(reported)] if reported else run.client.users
    return (
        f"{phase:<16} {done:4.0f}/{total:.0f}s  users {users:<4}"
        f" {v.requests:5d} req/s  errors {fmt(er, 'ratio') if er is not None else '-':>6}"
        f"  p95 {fmt(p95, 'seconds') if p95 is not None else '-':>8}"
        + (f"  injected {injected}" if run.live_proxy else "")
    )


class Console:
    """What a run shows on its stream, as a listener of its events: messages and warnings, one
    progress line a second (rewritten in place on a terminal, plain lines otherwise), the
    halt, and the checks table at the end."""

    def __init__(self, stream: TextIO, tty: bool) -> None:
        self.stream = stream
        self.tty = tty
        self.width = 0  # of the progress line on screen (a terminal)

    def attach(self, events: RunEvents) -> None:
        events.state_changed.add_listener(self.on_state)
        events.test_start.add_listener(self.on_test_start)
        events.tick.add_listener(self.on_tick)
        events.message.add_listener(self.on_message)
        events.warning.add_listener(self.on_warning)
        events.test_stopping.add_listener(self.on_test_stopping)

    def say(self, text: str) -> None:
        if self.tty and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.width = 0
        self.stream.write(text + "\n")
        self.stream.flush()

    def progress(self, text: str) -> None:
        if self.tty:
            pad = max(0, self.width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self.width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    # ------------------------------------------------------------ listeners

    def on_message(self, run: RunState, text: str, **_: Any) -> None:
        self.say(text)

    def on_warning(self, run: RunState, text: str, **_: Any) -> None:
        self.say(f"warning: {text}")

    def on_state(self, run: RunState, state: State, reason: str, **_: Any) -> None:
        if state is State.WARMING_UP:
            workers = f", {run.opts.workers} workers" if run.opts.workers else ""
            where = f"{run.target}   run {run.run_id}"
            self.say(f"load: {run.warm[0]} users (Locust{workers}) -> {where}")
        elif state is State.HALTED:
            self.say(f"HALT: {reason}; injection stopped on {len(run.clients)} proxy(ies)")
        elif state is State.DONE:
            self.say("")
            self.say(results.checks_table(run.verdict, run.halted))
            self.say(f"\nresults: {run.out}/results.json")
            report = run.out / "report.html"
            if report.exists():
                self.say(f"report:  {report}")

    def on_test_start(self, run: RunState, at: float, **_: Any) -> None:
        sc = run.scenario
        assert sc is not None
        self.say(
            f"scenario {sc.name} starts at {time.strftime('%H:%M:%S', time.localtime(at))}"
            f" ({sc.cycle_duration:g}s: {' -> '.join(p.name for p in sc.phases)})"
        )

    def on_tick(self, run: RunState, now: float, **_: Any) -> None:
        if run.state is State.WARMING_UP:
            self.progress(f"warm-up  users {run.client.users}/{run.warm[0]}")
        elif run.scenario is not None:
            self.progress(progress_line(run, run.scenario, now))

    def on_test_stopping(self, run: RunState, **_: Any) -> None:
        if run.load is not None and self.tty and self.width:
            self.say("")  # the progress line ends where the load does
