"""The load plan of one run: the users (and spawn rate) Locust's shape follows, second by
second, written as a small JSON file the shape re-reads (`loadgen/locustfile.py`); and, when
the scenario has a control group, the cohort the load labels its users with (`load_cohort`)."""

from __future__ import annotations

import json
from pathlib import Path

from chaosproxy.config.model import Scenario
from chaosproxy.experiment.model import BUNDLED_LOCUSTFILES, Experiment

USER_HEADER = "x-chaos-user"  # what the bundled locustfile names its users with


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
    path: Path,
    warm: tuple[int, float],
    stages: list[list[float]],
    end: float | None,
    cohort: dict[str, float] | None = None,
) -> None:
    """Replace the plan file at once: the shape never reads half a plan."""
    tmp = path.with_suffix(".tmp")
    doc: dict[str, object] = {"warmup": list(warm), "stages": stages, "end": end}
    if cohort is not None:
        doc["cohort"] = cohort
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)


def load_cohort(
    exp: Experiment, scenario: Scenario, seed: int | None
) -> tuple[dict[str, float] | None, str | None]:
    """The control group as the load labels its users — `{"seed", "share"}` for the plugin,
    the same hash as the proxy's (`common/cohort.py`) — and a note when the client view cannot
    have it: the scenario splits clients by something the load does not name them with. The
    seed is the run's, else the scenario's, else 0, as the proxy takes it."""
    from chaosproxy.config.match_spec import scenario_cohort

    spec = scenario_cohort(scenario)
    if spec is None:
        return None, None
    header = (spec.header or "").lower()
    # `by: client` is the proxy's client identity, which is X-Chaos-User when the runner
    # starts the proxy (`--client-id-header X-Chaos-User`)
    by_user = header == USER_HEADER or (spec.by == "client" and exp.proxy is not None)
    if not by_user:
        return None, (
            f"the control group splits clients by {spec.by}: the client view has no cohort "
            "split (the load names its users by X-Chaos-User); the proxy view has it"
        )
    chosen = seed if seed is not None else scenario.seed
    note = None
    if exp.load.locustfile not in BUNDLED_LOCUSTFILES:
        note = (
            "the client view labels cohorts only for requests whose event context carries "
            "`chaos_user` (the user's X-Chaos-User id; the bundled locustfile sets it)"
        )
    return {"seed": int(chosen or 0), "share": spec.share}, note
