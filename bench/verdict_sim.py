"""How sure is a verdict: the seeded simulation behind docs/experiments.md's table.

    .venv/bin/python bench/verdict_sim.py [--runs 1000] [--seed 1]

Healthy systems at half the bound (1 %), a rate sitting on it, a 10 s and a 12 s degradation to
three times it, and a 50 % outage, each judged by the project's own verdict code
(tests/experiment/simulate.py makes the runs). Then the control group (`compare_to: control`,
tests/experiment/cohort_sim.py): the two-proportion check on equal cohorts (its false FAILs)
and on real differences (its power), and the latency comparison (`--latency-runs`, slower:
each run bootstraps).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.experiment.cohort_sim import control_cases, control_table, simulate_latency
from tests.experiment.simulate import simulate, table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--latency-runs", type=int, default=100)
    ap.add_argument("--control-only", action="store_true", help="only the control-group tables")
    args = ap.parse_args()
    if args.control_only:
        control(args)
        return
    started = time.perf_counter()
    rows = [simulate(rate, args.runs, args.seed) for rate in (20, 50, 200)]
    print(table(rows))
    print(
        f"\n{args.runs} runs per rate and case, seed {args.seed}, "
        f"{time.perf_counter() - started:.0f}s"
    )
    control(args)


def control(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    print("\nAgainst a control group: error_rate compare_to: control (20 s phase, half the")
    print("requests in each cohort), FAIL / PASS / INCONCLUSIVE shares at 95 % confidence")
    print(control_table(control_cases(args.runs, args.seed)))
    latency = [
        simulate_latency(args.latency_runs, args.seed, slow, bound)
        for slow, bound in ((1.0, 1.0), (1.0, 1.5), (2.0, 1.5))
    ]
    print("\nlatency_p95 compare_to: control (50 req/s, 20 s)")
    print(control_table(latency))
    print(
        f"\n{args.runs} runs per case ({args.latency_runs} for latency), seed {args.seed}, "
        f"{time.perf_counter() - started:.0f}s"
    )


if __name__ == "__main__":
    main()
