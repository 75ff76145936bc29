"""Seeded synthetic runs for judging the judge: how often verdicts cry wolf, and how often they
catch a real breach. Used by `test_verdict_simulation.py` (the claims in docs/experiments.md,
"How sure is a verdict") and by `bench/verdict_sim.py`, which prints the table.

A run is per-second rows as the load plugin records them: requests drawn from a Poisson law at
the rate asked, each failing independently at the phase's error rate, spread over tenths.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from chaosproxy.experiment.halts import live_breach
from chaosproxy.experiment.model import CheckSpec
from chaosproxy.experiment.outcome import FAIL
from chaosproxy.experiment.phase_check import during
from chaosproxy.experiment.recovery import recovery
from chaosproxy.experiment.series import PhaseWindow, Second, View

T0 = 1_800_000_000
BOUND = 0.01


def poisson(rng: random.Random, lam: float) -> int:
    if lam > 50:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def second(rng: random.Random, t: int, phase: str, rate: float, p: float) -> Second:
    """Each request: its tenth (`rng.randrange(10)`, drawn here as randrange draws it, four bits
    at a time until one is under 10, so the seeded stream and the documented table stay the
    same), then whether it failed. Written out because this loop is most of the simulation's
    CPU."""
    n = poisson(rng, rate)
    bits, draw = rng.getrandbits, rng.random
    counts = [0] * 10
    fails = [0] * 10
    for _ in range(n):
        d = bits(4)
        while d >= 10:
            d = bits(4)
        counts[d] += 1
        if draw() < p:
            fails[d] += 1
    tenths = {d: [counts[d], fails[d]] for d in range(10) if counts[d]}
    failures = sum(fails)
    v = View(n, failures, tenths=tenths)
    return Second(t, phase, client=v, proxy=View(n, failures))


@dataclass
class Spans:
    rows: list[Second]
    phases: list[PhaseWindow]


def make_run(
    rng: random.Random, rate: float, spans: Sequence[tuple[str, int, float | Sequence[float]]]
) -> Spans:
    """spans: (phase, seconds, error rate, or one error rate per second)."""
    rows: list[Second] = []
    phases: list[PhaseWindow] = []
    t = T0
    for name, seconds, p in spans:
        for i in range(seconds):
            pi = p[i] if isinstance(p, Sequence) else p
            rows.append(second(rng, t, name, rate, pi))
            t += 1
        phases.append(PhaseWindow(name, t - seconds, t, name != "steady"))
    return Spans(rows, phases)


def during_check(bound: float = BOUND) -> CheckSpec:
    return CheckSpec("errors", "error_rate", during_phase="broken", bound=bound)


def recovery_check(bound: float = BOUND, within: float = 10.0) -> CheckSpec:
    return CheckSpec("recovery", "error_rate", after_phase="broken", bound=bound, within=within)


def halt_check(bound: float = BOUND) -> CheckSpec:
    return CheckSpec("halt", "error_rate", during_phase="broken", bound=bound, halt=True)


def halts(spec: CheckSpec, rows: Sequence[Second], alpha: float) -> float | None:
    """Seconds into the phase at which the live check halts (judged once a second on the rows
    so far, as the runner does), or None."""
    phase_rows = [s for s in rows if s.phase == spec.during_phase]
    if not phase_rows:
        return None
    first = phase_rows[0].t
    upto = [s for s in rows if s.t < first]
    for look, s in enumerate(phase_rows, start=1):
        upto.append(s)
        if live_breach(spec, upto, alpha=alpha, look=look) is not None:
            return float(s.t + 1 - first)
    return None


@dataclass
class Row:
    rate: float
    runs: int
    false_fail: float  # during_phase FAIL on a healthy system at half the bound
    false_halt: float  # a halt over the whole phase, same system
    ttr_median: float  # time to recover of an instant recovery
    ttr_covers_zero: float  # share of runs whose interval holds 0
    recovery_false_fail: float
    power_fail: float  # during_phase FAIL of a 10 s degradation to 3x the bound
    power_halt: float  # halts during it
    halt_median: float | None  # seconds to the halt when it came
    power_fail_12s: float  # the same degradation lasting 12 s
    at_bound_fail: float  # during_phase FAIL when the true rate sits on the bound
    at_bound_halt: float
    outage_halt_median: float | None  # seconds to halt when half the requests fail


def simulate(rate: float, runs: int, seed: int, alpha: float = 0.01) -> Row:
    rng = random.Random(f"{seed}:{rate}")
    healthy = BOUND / 2
    d, rc, h = during_check(), recovery_check(), halt_check()
    false_fail = false_halt = rec_fail = covers = 0
    ttrs: list[float] = []
    for _ in range(runs):
        run = make_run(
            rng, rate, [("steady", 10, healthy), ("broken", 20, healthy), ("after", 16, healthy)]
        )
        false_fail += during(d, run.rows, "broken").status == FAIL
        false_halt += halts(h, run.rows, alpha) is not None
        r = recovery(rc, run.rows, run.phases[1])
        rec_fail += r.status == FAIL
        ttrs.append(r.recovered_after_s if r.recovered_after_s is not None else math.inf)
        lo = r.recovered_lo if r.recovered_lo is not None else math.inf
        covers += lo <= 0.0
    power_fail = power_halt = 0
    when: list[float] = []
    for _ in range(runs):
        run = make_run(rng, rate, [("steady", 10, healthy), ("broken", 10, 3 * BOUND)])
        power_fail += during(d, run.rows, "broken").status == FAIL
        t = halts(h, run.rows, alpha)
        if t is not None:
            power_halt += 1
            when.append(t)
    power12 = at_bound = at_bound_halt = 0
    outage: list[float] = []
    for _ in range(runs):
        run = make_run(rng, rate, [("steady", 10, healthy), ("broken", 12, 3 * BOUND)])
        power12 += during(d, run.rows, "broken").status == FAIL
        run = make_run(rng, rate, [("steady", 10, healthy), ("broken", 20, BOUND)])
        at_bound += during(d, run.rows, "broken").status == FAIL
        at_bound_halt += halts(h, run.rows, alpha) is not None
        run = make_run(rng, rate, [("steady", 10, healthy), ("broken", 10, 0.5)])
        t = halts(h, run.rows, alpha)
        if t is not None:
            outage.append(t)
    return Row(
        rate,
        runs,
        false_fail / runs,
        false_halt / runs,
        statistics.median(ttrs),
        covers / runs,
        rec_fail / runs,
        power_fail / runs,
        power_halt / runs,
        statistics.median(when) if when else None,
        power12 / runs,
        at_bound / runs,
        at_bound_halt / runs,
        statistics.median(outage) if outage else None,
    )


def table(rows: Sequence[Row]) -> str:
    """The markdown table of docs/experiments.md."""
    head = (
        "| req/s | runs | false FAIL (healthy, half the bound) | false halt | time to recover, "
        "median | its interval holds 0 | false FAIL at the bound | false halt at the bound "
        "| FAIL of 3x the bound for 10 s | … for 12 s | halt of 3x the bound in 10 s (median time) "
        "| halt of a 50 % outage (median time) |"
    )
    lines = [head, "|" + "---|" * 12]

    def pct(x: float) -> str:
        return f"{x:.1%}"

    for r in rows:
        lines.append(
            f"| {r.rate:g} | {r.runs} | {pct(r.false_fail)} | {pct(r.false_halt)} "
            f"| {r.ttr_median:.1f} s | {pct(r.ttr_covers_zero)} | {pct(r.at_bound_fail)} "
            f"| {pct(r.at_bound_halt)} | {pct(r.power_fail)} | {pct(r.power_fail_12s)} "
            f"| {pct(r.power_halt)} ({r.halt_median if r.halt_median is not None else '-'} s) "
            f"| {r.outage_halt_median if r.outage_halt_median is not None else '-'} s |"
        )
    return "\n".join(lines)


def breaker_recovers_at(
    seconds: float, rate: float, seed: int
) -> tuple[float, float, float] | None:
    """A system that fails every request for `seconds` after the phase, then is healthy: the
    time to recover the judge reports, with its interval (for the truth tests)."""
    rng = random.Random(seed)
    whole = int(seconds)
    per_second: list[float] = [1.0] * whole + [BOUND / 2] * 20
    run = make_run(rng, rate, [("steady", 10, BOUND / 2), ("broken", 5, 1.0)])
    t = run.rows[-1].t + 1
    for i, p in enumerate(per_second):
        s = second(rng, t + i, "after", rate, p)
        if i == whole and seconds > whole:  # a fractional end: failing tenths first
            cut = round((seconds - whole) * 10)
            for tenth, slot in s.client.tenths.items():
                if tenth < cut:
                    s.client.failures += slot[0] - slot[1]
                    slot[1] = slot[0]
        run.rows.append(s)
    r = recovery(recovery_check(within=30.0), run.rows, run.phases[1])
    if r.recovered_after_s is None:
        return None
    assert r.recovered_lo is not None and r.recovered_hi is not None
    return r.recovered_after_s, r.recovered_lo, r.recovered_hi
