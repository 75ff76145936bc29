"""The load plan of one run: the users (and spawn rate) Locust's shape follows, second by
second, written as a small JSON file the shape re-reads (`loadgen/locustfile.py`)."""

from __future__ import annotations

import json
from pathlib import Path

from chaosproxy.config.model import Scenario
from chaosproxy.experiment.model import Experiment


def plan_stages(
    exp: Experiment, scenario: Scenario, at: float
) -> tuple[tuple[int, float], list[list[float]]]:
    """(warm-up users and rate, [[at, users, rate], ...]) for the load shape."""
    load = exp.load
    rate = load.spawn_rate
    offsets: dict[str, float] = {}
    t = 0.0
    for p in scenario.phases:
        offsets[p.name] = t
        t += p.duration
    total = t
    if load.shape == "steady":
        return (load.users, rate), []
    if load.shape == "ramp":
        warm = max(1, load.users // 10)
        steps = max(1, int(total))
        stages = [
            [at + i, float(warm + round((load.users - warm) * i / steps)), rate]
            for i in range(1, steps + 1)
        ]
        return (warm, rate), stages
    if load.shape == "spike":
        base = load.base_users or max(1, load.users // 5)
        stages = []
        for p in scenario.phases:
            stages.append([at + offsets[p.name], float(load.users if p.rules else base), rate])
        stages.append([at + total, float(base), rate])
        return (base, rate), stages
    # stages aligned to phases; phases without a stage keep the previous load
    by_phase = {s.phase: s for s in load.stages}
    first = scenario.phases[0].name
    warm_stage = by_phase.get(first)
    warm = warm_stage.users if warm_stage else load.users
    stages = [[at + offsets[s.phase], float(s.users), s.spawn_rate or rate] for s in load.stages]
    return (max(warm, 1), rate), sorted(stages)


def write_plan(
    path: Path, warm: tuple[int, float], stages: list[list[float]], end: float | None
) -> None:
    """Replace the plan file at once: the shape never reads half a plan."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"warmup": list(warm), "stages": stages, "end": end}))
    tmp.replace(path)
