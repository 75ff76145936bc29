"""How sure is a verdict: the seeded simulation behind docs/experiments.md's table.

    .venv/bin/python bench/verdict_sim.py [--runs 1000] [--seed 1]

Healthy systems at half the bound (1 %), a rate sitting on it, a 10 s and a 12 s degradation to
three times it, and a 50 % outage, each judged by the project's own verdict code
(tests/experiment/simulate.py makes the runs).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.experiment.simulate import simulate, table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    started = time.perf_counter()
    rows = [simulate(rate, args.runs, args.seed) for rate in (20, 50, 200)]
    print(table(rows))
    print(
        f"\n{args.runs} runs per rate and case, seed {args.seed}, "
        f"{time.perf_counter() - started:.0f}s"
    )


if __name__ == "__main__":
    main()
