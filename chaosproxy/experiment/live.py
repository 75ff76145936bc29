"""Step (4) of a run, each second while the scenario runs: the proxies' live view, the `halt`
checks judged on what is known so far, and the progress line.

Halts are judged every second, so each uses the anytime-valid form of its check
(`verdict.live_breach`): over a whole phase the chance of a false halt stays at most the
experiment's `halt_false_alarm` (1 %), however many seconds are looked at."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

from chaosproxy.config.model import Scenario
from chaosproxy.errors import ChaosProxyError
from chaosproxy.experiment import collect
from chaosproxy.experiment.model import CheckSpec
from chaosproxy.experiment.verdict import (
    WARMUP,
    View,
    baseline_phase,
    fmt,
    live_breach,
    reference_rate,
)

if TYPE_CHECKING:
    from chaosproxy.experiment.runner import Run


async def refresh_proxy_view(run: Run, at: float) -> None:
    """The proxies' last ten seconds of this run, merged into `run.live_proxy`."""
    first = int(at) - 1
    end = int(time.time())
    views: list[dict[int, View]] = []
    for c in run.clients:
        with contextlib.suppress(ChaosProxyError):
            rows = await c.timeseries(max(first, end - 10), end, run.run_id, histograms=True)
            views.append(collect.proxy_views(rows))
    run.live_proxy.update(collect.merge_views(views) if views else {})


async def check_halts(run: Run, scenario: Scenario, halting: list[CheckSpec]) -> bool:
    """Judge the `halt` checks on what is known so far; on a breach stop the scenario
    everywhere and record why. True when it halted."""
    now = time.time()
    windows = run.windows(scenario, now)
    if not windows:
        return False
    last = int(now) - 1  # Locust's counts of a second are written within the next one
    rows = collect.build_rows(
        int(run.scenario_at or now), last, run.client.seconds, run.live_proxy, windows
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
            run.say(
                f"HALT: {spec.name!r} breached ({r.message}); injection stopped on "
                f"{len(run.clients)} proxy(ies)"
            )
            return True
    return False


def progress_line(run: Run, scenario: Scenario, now: float) -> str:
    """One line of where the run is: phase, time, users, rates, errors, p95, injected."""
    windows = run.windows(scenario, now)
    phase = collect.label(int(now), windows) if windows else WARMUP
    if run.halted:
        phase = "halted"
    at = run.scenario_at or now
    total = scenario.cycle_duration
    elapsed = max(0.0, now - at)
    sec = int(now) - 1
    v = run.client.seconds.get(sec, View())
    injected = sum(x.injected for t, x in run.live_proxy.items() if t >= int(at))
    er = v.error_rate
    p95 = v.quantile(0.95)
    return (
        f"{phase:<16} {min(elapsed, total):4.0f}/{total:.0f}s  users {run.client.users:<4}"
        f" {v.requests:5d} req/s  errors {fmt(er, 'ratio') if er is not None else '-':>6}"
        f"  p95 {fmt(p95, 'seconds') if p95 is not None else '-':>6}"
        + (f"  injected {injected}" if run.live_proxy else "")
    )
