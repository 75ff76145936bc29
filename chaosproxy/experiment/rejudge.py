"""`chaosproxy experiment judge DIR`: judge a saved run again, with the same checks or edited
ones, without running anything. A run keeps what the verdict needs: every second of both views
(series.jsonl, with latency sketches and per-tenth counts), the phases as the proxy ran them,
and how the run went (halt, interruption, problems, Prometheus query ranges) in results.json.
The verdict is a pure function of those, so the same checks give the same verdict exactly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaosproxy.common.errors import ChaosProxyError
from chaosproxy.experiment.align import client_records
from chaosproxy.experiment.control import ClientRecord
from chaosproxy.experiment.false_alarm import add_false_alarms
from chaosproxy.experiment.model import Experiment
from chaosproxy.experiment.outcome import Verdict
from chaosproxy.experiment.series import PhaseWindow, Second, second_from_json, second_to_json
from chaosproxy.experiment.verdict import judge

SERIES = "series.jsonl"
CLIENTS = "clients.json"  # the proxy's per-client record (blast radius)
MAX_BYTES = 256 * 1024 * 1024  # a saved run read back is bounded like any input


class SavedRunError(ChaosProxyError):
    """A run directory that cannot be judged again: says which file and line."""


@dataclass
class SavedRun:
    rows: list[Second]
    phases: list[PhaseWindow]
    doc: dict[str, Any] = field(default_factory=dict)
    halted: str | None = None
    halted_at: float | None = None
    interrupted: bool = False
    problems: list[str] = field(default_factory=list)
    lags: dict[str, float] = field(default_factory=dict)
    clients: list[ClientRecord] | None = None  # None: the run kept no per-client record


def _bounded(path: Path) -> None:
    if path.stat().st_size > MAX_BYTES:
        raise SavedRunError(f"{path}: larger than {MAX_BYTES // 2**20} MiB")


def write_series(path: Path, rows: Sequence[Second]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for s in rows:
            f.write(json.dumps(second_to_json(s), separators=(",", ":")) + "\n")


def write_rows(out: Path, rows: Sequence[Second], exp: Experiment, started: float) -> None:
    """The seconds a verdict read, both ways a run keeps them: series.jsonl (judged again by
    `experiment judge`) and timeseries.csv (the report's charts; `prom_<n>` per Prometheus
    check n)."""
    from chaosproxy.experiment.results import write_timeseries

    write_series(out / SERIES, rows)
    prom_cols = [(i, c.name) for i, c in enumerate(exp.checks) if c.source == "prometheus"]
    write_timeseries(out / "timeseries.csv", rows, started, prom_cols)


def read_series(path: Path) -> list[Second]:
    if not path.is_file():
        raise SavedRunError(f"{path}: missing (runs before this version did not keep it)")
    _bounded(path)
    rows: list[Second] = []
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rows.append(second_from_json(json.loads(line)))
            except (ValueError, RecursionError) as e:
                raise SavedRunError(f"{path}:{i}: {e}") from None
    return rows


def load(run_dir: Path) -> SavedRun:
    results = run_dir / "results.json"
    if not results.is_file():
        raise SavedRunError(f"{run_dir}: no results.json")
    _bounded(results)
    try:
        doc = json.loads(results.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as e:
        raise SavedRunError(f"{results}: not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise SavedRunError(f"{results}: not a results document")
    rows = read_series(run_dir / SERIES)
    clients = None
    if (run_dir / CLIENTS).is_file():
        _bounded(run_dir / CLIENTS)
        try:
            clients = client_records(json.loads((run_dir / CLIENTS).read_text(encoding="utf-8")))
        except (ValueError, RecursionError) as e:
            raise SavedRunError(f"{run_dir / CLIENTS}: not JSON: {e}") from None
    phases: list[PhaseWindow] = []
    for i, p in enumerate(doc.get("phases") or []):
        try:
            phases.append(
                PhaseWindow(
                    str(p["name"]), float(p["start"]), float(p["end"]), bool(p["has_rules"])
                )
            )
        except (KeyError, TypeError, ValueError):
            raise SavedRunError(f"{results}: phases[{i}] lacks name/start/end/has_rules") from None
    halted = doc.get("halted") if isinstance(doc.get("halted"), dict) else None
    raw_lags = doc.get("prometheus_lag")
    lags: dict[str, Any] = raw_lags if isinstance(raw_lags, dict) else {}
    return SavedRun(
        rows,
        phases,
        doc,
        halted=str(halted["check"]) if halted and "check" in halted else None,
        halted_at=float(halted["at"]) if halted and "at" in halted else None,
        interrupted=bool(doc.get("interrupted")),
        problems=[str(p) for p in doc.get("problems") or []],
        lags={str(k): float(v) for k, v in lags.items() if isinstance(v, int | float)},
        clients=clients,
    )


def judge_run(exp: Experiment, run: SavedRun) -> Verdict:
    """The verdict of `exp`'s checks on what a run recorded, with the false-alarm estimate:
    the one judgement both the end of a run (`gather`) and `experiment judge` make, so the
    same checks give the same verdict exactly (a halt by a check that no longer exists is
    still a halt: the injection did stop)."""
    verdict = judge(
        exp.checks,
        run.rows,
        run.phases,
        exp.baseline,
        halted=run.halted,
        halted_at=run.halted_at,
        interrupted=run.interrupted,
        problems=run.problems,
        confidence=exp.confidence,
        lags=run.lags,
        clients=run.clients,
    )
    return add_false_alarms(verdict, exp.checks, run.rows, run.phases, exp.baseline)
