"""The JSON-ready view of a run for `/status` (and of the last run once it ended)."""

from __future__ import annotations

from typing import Any

from chaosproxy.engine.timeline import Position, ScenarioRun


def run_status(
    run: ScenarioRun, pos: Position, now: float, state: str = "running"
) -> dict[str, Any]:
    """`run` seen at `now`, standing at `pos` (the phase in force then)."""
    c = run.compiled
    elapsed = now - run.start
    total = None if run.repeat is None else c.cycle_duration * run.repeat
    return {
        "name": c.name,
        "description": c.scenario.description,
        "source": c.scenario.source,
        "state": state,
        "seed": run.seed,
        # The clients it splits (`match.cohort`), with the seed their membership hashes.
        "cohort": None
        if c.cohort is None
        else {"share": c.cohort.share, "by": c.cohort.by, "seed": run.seed or 0},
        "repeat": "forever" if run.repeat is None else run.repeat,
        "cycle": pos.cycle,
        "phase": pos.phase.name,
        "phase_index": pos.phase.index,
        "phase_elapsed": now - pos.start,
        "phase_remaining": max(0.0, pos.end - now),
        "elapsed": elapsed,
        "remaining": None if total is None else max(0.0, total - elapsed),
        "cycle_duration": c.cycle_duration,
        "total_duration": total,
        "phases": [
            {"name": p.name, "start": p.start, "end": p.end, "rules": len(p.rules)}
            for p in c.phases
        ],
        "rule_counts": [
            {
                "id": r.id,
                "phase": r.scope,
                "faults": r.describe(),
                "matched": run.counters[r.slot].matched,
                "injected": run.counters[r.slot].injected,
            }
            for r in c.rules
        ],
        # A phase whose rules matched none of many requests (engine/unmatched.py), once each.
        "warnings": run.unmatched.status(),
    }
