"""Seeded synthetic runs with a control group: per-second rows split into a `fault` and a
`control` cohort as the load plugin and the proxy record them. Used by `test_control.py` (time
confounding: something that hurts everyone during the fault phase) and by
`bench/verdict_sim.py` (how often the control-group checks cry wolf, and their power).

Each second, each cohort gets Poisson(rate) requests; a request fails with the second's
everyone-rate plus, in the fault cohort, the fault's own extra rate; its duration is lognormal
around `latency`, times the second's everyone-slowdown, times the fault's slowdown in the fault
cohort. The proxy view counts the same requests, with the fault cohort's injected faults.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from chaosproxy.common import sketch
from chaosproxy.common.cohort import CONTROL, FAULT
from chaosproxy.experiment.series import PhaseWindow, Second, View
from chaosproxy.observe.stats import BOUNDS

T0 = 1_800_000_000


def poisson(rng: random.Random, lam: float) -> int:
    if lam > 50:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


@dataclass
class Span:
    """One phase: its seconds and what happens in them (`i` is the second within the phase)."""

    phase: str
    seconds: int
    rules: bool = False
    everyone_err: Callable[[int], float] = lambda i: 0.0  # hurts both cohorts alike
    everyone_slow: Callable[[int], float] = lambda i: 1.0
    fault_err: float = 0.0  # the fault cohort only: what the fault does to clients
    fault_slow: float = 1.0
    injected: float = 0.0  # share of the fault cohort's proxy requests with a fault injected


@dataclass
class CohortRun:
    rows: list[Second] = field(default_factory=list)
    phases: list[PhaseWindow] = field(default_factory=list)


def _cohort_second(
    rng: random.Random, rate: float, p: float, slow: float, latency: float
) -> tuple[View, View]:
    """(client view, proxy view) of one cohort's second."""
    n = poisson(rng, rate)
    client = View()
    for _ in range(n):
        failed = rng.random() < p
        dur = latency * slow * math.exp(rng.gauss(0.0, 0.3))
        client.requests += 1
        client.failures += failed
        k = sketch.key(dur)
        client.sketch[k] = client.sketch.get(k, 0) + 1
        b = min(len(BOUNDS), sum(1 for x in BOUNDS if x < dur))
        client.hist[b] = client.hist.get(b, 0) + 1
        slot = client.tenths.setdefault(rng.randrange(10), [0, 0])
        slot[0] += 1
        slot[1] += failed
    proxy = View(client.requests, client.failures, hist=dict(client.hist))
    return client, proxy


def cohort_run(
    seed: int | str,
    spans: Sequence[Span],
    rate: float = 50.0,
    latency: float = 0.02,
    share: float = 0.5,
) -> CohortRun:
    """A seeded run: `rate` requests per second in all, `share` of them in the fault cohort."""
    rng = random.Random(seed)
    out = CohortRun()
    t = T0
    for span in spans:
        for i in range(span.seconds):
            base_p, base_slow = span.everyone_err(i), span.everyone_slow(i)
            fc, fp = _cohort_second(
                rng,
                rate * share,
                min(1.0, base_p + span.fault_err),
                base_slow * span.fault_slow,
                latency,
            )
            cc, cp = _cohort_second(rng, rate * (1 - share), base_p, base_slow, latency)
            fp.injected = round(fp.requests * span.injected) if span.rules else 0
            s = Second(t, span.phase)
            for v in (fc, cc):
                s.client.add(v)
            for v in (fp, cp):
                s.proxy.add(v)
            s.client_cohorts = {FAULT: fc, CONTROL: cc}
            s.proxy_cohorts = {FAULT: fp, CONTROL: cp}
            out.rows.append(s)
            t += 1
        out.phases.append(PhaseWindow(span.phase, t - span.seconds, t, span.rules))
    return out


def confounded(seed: int = 7, rate: float = 200) -> CohortRun:
    """Steady 20 s, then a 20 s fault phase in which everyone fails 30 % and is slowed 4x for
    9 seconds (a deploy, a noisy neighbour: not the fault), while the fault itself is absorbed
    (injected into every fault-cohort call at the proxy, never seen by the clients)."""
    hit = range(4, 13)
    return cohort_run(
        seed,
        [
            Span("steady", 20, everyone_err=lambda i: 0.005),
            Span(
                "outage",
                20,
                rules=True,
                injected=1.0,
                everyone_err=lambda i: 0.3 if i in hit else 0.005,
                everyone_slow=lambda i: 4.0 if i in hit else 1.0,
            ),
        ],
        rate=rate,
    )


# ---------------------------------------------------------------- how often, how strong


def _binomial(rng: random.Random, n: int, p: float) -> int:
    return sum(1 for _ in range(n) if rng.random() < p)


def proportion_window(
    rng: random.Random, seconds: int, rate: float, p_fault: float, p_control: float
) -> list[Second]:
    """A phase's seconds with only counts (what the two-proportion check reads): each cohort
    Poisson(rate / 2) requests a second, failing at its own rate."""
    out = []
    for i in range(seconds):
        nf, nc = poisson(rng, rate / 2), poisson(rng, rate / 2)
        f = View(nf, _binomial(rng, nf, p_fault))
        c = View(nc, _binomial(rng, nc, p_control))
        s = Second(T0 + i, "outage", client_cohorts={FAULT: f, CONTROL: c})
        out.append(s)
    return out


@dataclass(frozen=True)
class ControlSim:
    case: str
    rate: float
    seconds: int
    bound: float
    p_fault: float
    p_control: float
    fail: float  # share of runs judged FAIL
    passed: float
    inconclusive: float
    kind: str = "share"  # or "slowdown": p_fault / p_control are latency factors


def simulate_difference(
    case: str,
    runs: int,
    seed: int,
    *,
    rate: float = 100.0,
    seconds: int = 20,
    bound: float = 0.01,
    p_control: float = 0.02,
    p_fault: float = 0.02,
    confidence: float = 0.95,
) -> ControlSim:
    """`error_rate compare_to: control below: bound` judged on `runs` seeded phases."""
    from chaosproxy.experiment.control import judge_control
    from chaosproxy.experiment.model import CheckSpec

    spec = CheckSpec("sim", "error_rate", during_phase="outage", compare_to="control", bound=bound)
    rng = random.Random(f"{seed}:{case}:{rate}")
    counts = {"PASS": 0, "FAIL": 0, "INCONCLUSIVE": 0}
    for _ in range(runs):
        window = proportion_window(rng, seconds, rate, p_fault, p_control)
        counts[judge_control(spec, window, "outage", confidence).status] += 1
    return ControlSim(
        case,
        rate,
        seconds,
        bound,
        p_fault,
        p_control,
        counts["FAIL"] / runs,
        counts["PASS"] / runs,
        counts["INCONCLUSIVE"] / runs,
    )


def control_cases(runs: int, seed: int) -> list[ControlSim]:
    """The table of docs/experiments.md ("Against a control group"): equal cohorts on the
    bound of "no worse" (a false FAIL may happen at most 5 % of the time), a difference sitting
    on a 1-point bound, and real differences of 2 and 5 points (power)."""
    out = []
    for rate in (50.0, 200.0):
        for p in (0.005, 0.02, 0.1):
            out.append(
                simulate_difference(
                    "equal, bound 0", runs, seed, rate=rate, bound=0.0, p_control=p, p_fault=p
                )
            )
        out.append(
            simulate_difference("1 pp worse, bound 1 pp", runs, seed, rate=rate, p_fault=0.03)
        )
        out.append(simulate_difference("equal, bound 1 pp", runs, seed, rate=rate))
        out.append(
            simulate_difference("3 pp worse, bound 1 pp", runs, seed, rate=rate, p_fault=0.05)
        )
        out.append(
            simulate_difference("6 pp worse, bound 1 pp", runs, seed, rate=rate, p_fault=0.08)
        )
    return out


def control_table(rows: Sequence[ControlSim]) -> str:
    head = "case                       req/s  control  fault    FAIL    PASS    INCONCL."
    lines = [head, "-" * len(head)]
    for r in rows:
        if r.kind == "slowdown":
            control, fault = f"{r.p_control:>6.2g}x", f"{r.p_fault:>5.2g}x"
        else:
            control, fault = f"{r.p_control:>6.1%}", f"{r.p_fault:>6.1%}"
        lines.append(
            f"{r.case:<26} {r.rate:>5.0f}  {control}  {fault}  "
            f"{r.fail:>6.1%}  {r.passed:>6.1%}  {r.inconclusive:>6.1%}"
        )
    return "\n".join(lines)


def simulate_latency(
    runs: int, seed: int, slow: float, bound: float, rate: float = 50.0, seconds: int = 20
) -> ControlSim:
    """`latency_p95 compare_to: control below: bound` when the fault cohort is `slow` times
    slower (1.0: equal cohorts), judged on `runs` seeded phases with full latency sketches."""
    from chaosproxy.experiment.control import judge_control
    from chaosproxy.experiment.model import CheckSpec

    spec = CheckSpec("sim", "latency_p95", during_phase="outage", compare_to="control", bound=bound)
    counts = {"PASS": 0, "FAIL": 0, "INCONCLUSIVE": 0}
    for i in range(runs):
        run = cohort_run(
            f"{seed}:{slow}:{i}",
            [Span("outage", seconds, rules=True, fault_slow=slow)],
            rate=rate,
        )
        counts[judge_control(spec, run.rows, "outage").status] += 1
    return ControlSim(
        f"p95 {slow:g}x slower, bound {bound:g}x",
        rate,
        seconds,
        bound,
        slow,
        1.0,
        counts["FAIL"] / runs,
        counts["PASS"] / runs,
        counts["INCONCLUSIVE"] / runs,
        "slowdown",
    )
