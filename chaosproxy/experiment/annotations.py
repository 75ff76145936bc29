"""A run's phases as annotations: results.json `annotations`, and the same in the shape
Grafana's annotation API takes, so dashboards mark where each phase began and ended."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def phase_annotations(
    phases: Iterable[Mapping[str, Any]], scenario: str, run_id: str | None = None
) -> list[dict[str, Any]]:
    """Phase boundaries as results.json `annotations`: seconds, a title and tags
    (`chaosproxy`, `phase`, the phase name, the scenario, and `run:<id>` when given)."""
    out = []
    for p in phases:
        name = str(p.get("name", ""))
        tags = ["chaosproxy", "phase", name, f"scenario:{scenario}"]
        if run_id:
            tags.append(f"run:{run_id}")
        out.append(
            {
                "time": float(p["start"]),
                "end": float(p["end"]),
                "title": f"phase {name}",
                "tags": tags,
            }
        )
    return out


def grafana_annotations(annotations: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The same annotations in the shape Grafana's annotation API takes (`POST
    /api/annotations`): epoch milliseconds `time`/`timeEnd`, `text`, `tags`."""
    out = []
    for a in annotations:
        item: dict[str, Any] = {
            "time": round(float(a["time"]) * 1000),
            "text": str(a.get("title", "")),
            "tags": [str(t) for t in a.get("tags", [])],
        }
        if a.get("end") is not None:
            item["timeEnd"] = round(float(a["end"]) * 1000)
        out.append(item)
    return out
