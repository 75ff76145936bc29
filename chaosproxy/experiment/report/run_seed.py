"""The seed a run's scenario ran with and where it came from, so a report says how to replay it
(or that it cannot be replayed: no seed, random draws)."""

from __future__ import annotations

from typing import Any

from chaosproxy.experiment.numbers import NO_DATA
from chaosproxy.experiment.report.results_dir import mapping


def seed_in_force(results: dict[str, Any]) -> tuple[int | None, str]:
    """The seed the scenario ran with and where it came from: the run's ('run': `--seed` or
    the experiment's `seed:`), else the one the proxy reported when the scenario started
    ('scenario': its own `seed:`); (None, '') when none was set (random, not reproducible)."""
    own = mapping(results.get("run")).get("seed")
    if isinstance(own, int) and not isinstance(own, bool):
        return own, "run"
    for e in results.get("events") or []:
        if isinstance(e, dict) and e.get("kind") == "scenario_started":
            s = mapping(e.get("details")).get("seed")
            if isinstance(s, int) and not isinstance(s, bool):
                return s, "scenario"
    return None, ""


def seed(results: dict[str, Any]) -> str:
    """'7', '42 (the scenario's)', or a dash when no seed was set."""
    value, source = seed_in_force(results)
    if value is None:
        return NO_DATA
    return f"{value} (the scenario's)" if source == "scenario" else str(value)
