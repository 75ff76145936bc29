"""An experiment checked against the scenario it names: the scenario loads (a bundled name, or
a path relative to the experiment file), every phase a check, a load stage or the baseline
names exists in it, a custom locustfile exists, and `compare_to: control` has a control group
to compare against (the cohort rules).

Kept apart from `spec.py`, which reads the experiment file alone: these checks need the
scenario, so they run at `validate` and before a run, not while the file is read."""

from __future__ import annotations

from pathlib import Path

from chaosproxy.common.cohort import CONTROL
from chaosproxy.common.errors import ConfigError, Problem
from chaosproxy.config.model import Scenario
from chaosproxy.experiment.model import BUNDLED_LOCUSTFILES, Experiment


def control_problems(exp: Experiment, scenario: Scenario) -> list[Problem]:
    """`compare_to: control` needs a scenario that splits its clients into cohorts, and no
    phase called `control` that the words could also mean."""
    from chaosproxy.config.match_spec import scenario_cohort
    from chaosproxy.experiment.plan import load_cohort

    out = []
    names = [p.name for p in scenario.phases]
    for c in exp.checks:
        if c.compare_to != CONTROL:
            continue
        where = f"{c.path}.compare_to"
        if CONTROL in names:
            out.append(
                exp.problem(
                    where,
                    f"ambiguous: scenario {scenario.name!r} has a phase named 'control', and "
                    "compare_to: control means the control group; rename that phase",
                )
            )
        elif (spec := scenario_cohort(scenario)) is None:
            out.append(
                exp.problem(
                    where,
                    f"scenario {scenario.name!r} has no control group: give its fault rules "
                    "`match: {cohort: {share: 0.5, by: header X-Chaos-User}}`",
                )
            )
        elif c.source == "client" and load_cohort(exp, scenario, None)[0] is None:
            out.append(
                exp.problem(
                    where,
                    f"the control group splits clients by {spec.by}, which the load cannot "
                    "label its users with (it names them by X-Chaos-User): use source: proxy, "
                    "or split by header X-Chaos-User",
                )
            )
    return out


def resolve_experiment_scenario(exp: Experiment) -> Scenario:
    """Load the scenario the experiment names (bundled name, or a path relative to the file)
    and check every phase the experiment refers to exists in it."""
    from chaosproxy.config.loader import load_scenario_file, resolve_scenario

    ref = exp.scenario
    candidate = exp.base_dir / ref
    try:
        if ("/" in ref or ref.endswith((".yaml", ".yml"))) and candidate.is_file():
            scenario = load_scenario_file(candidate)
        else:
            scenario = load_scenario_file(resolve_scenario(ref))
    except ConfigError as e:
        if all(p.line == 0 for p in e.problems) and len(e.problems) == 1:
            raise ConfigError(exp.problem("scenario", e.problems[0].message)) from None
        raise
    names = [p.name for p in scenario.phases]
    problems = control_problems(exp, scenario)
    for c in exp.checks:
        for key in ("during_phase", "after_phase", "compare_to"):
            phase = getattr(c, key)
            if key == "compare_to" and phase == CONTROL:
                continue  # the control group, not a phase (control_problems)
            if phase is not None and phase not in names:
                problems.append(
                    exp.problem(
                        f"{c.path}.{key}",
                        f"scenario {scenario.name!r} has no phase {phase!r}; "
                        f"its phases: {', '.join(names)}",
                    )
                )
    for i, st in enumerate(exp.load.stages):
        if st.phase not in names:
            problems.append(
                exp.problem(
                    f"load.stages[{i}].phase",
                    f"scenario {scenario.name!r} has no phase {st.phase!r}; "
                    f"its phases: {', '.join(names)}",
                )
            )
    if exp.baseline.phase is not None and exp.baseline.phase not in names:
        problems.append(
            exp.problem("baseline.phase", f"scenario {scenario.name!r} has no such phase")
        )
    if exp.load.locustfile not in BUNDLED_LOCUSTFILES:
        path = Path(exp.load.locustfile)
        where = path if path.is_absolute() else exp.base_dir / path
        if not where.is_file():
            problems.append(
                exp.problem(
                    "load.locustfile",
                    f"no such file: {where} (a relative path is read from the experiment "
                    "file's directory)",
                )
            )
    if problems:
        raise ConfigError(problems)
    return scenario
