"""Read a results directory (results.json + timeseries.csv) into one typed `Run`.

The directory is written by the experiment runner; its format is the contract in
docs/reports.md. Everything in it is treated as untrusted text: loading checks the shape it
relies on and raises `ReportError` naming the file, never a bare KeyError deep in a template.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaosproxy.common.errors import ChaosProxyError
from chaosproxy.experiment.results import SCHEMA_VERSION


class ReportError(ChaosProxyError):
    """A results directory that cannot be reported on: missing or malformed files."""


@dataclass(frozen=True)
class Timeseries:
    """timeseries.csv by column: `t` (epoch seconds), `phase`, and numeric columns (None = no
    data in that second)."""

    t: list[int] = field(default_factory=list)
    phase: list[str] = field(default_factory=list)
    values: dict[str, list[float | None]] = field(default_factory=dict)

    def column(self, name: str) -> list[float | None]:
        return self.values.get(name, [None] * len(self.t))

    def __len__(self) -> int:
        return len(self.t)


@dataclass(frozen=True)
class ResultsDir:
    """One results directory: results.json as parsed JSON, and its per-second series."""

    dir: Path
    results: dict[str, Any]
    series: Timeseries

    @property
    def name(self) -> str:
        return str(self.experiment.get("name") or self.dir.name)

    @property
    def verdict(self) -> str:
        return str(self.results.get("verdict", "INCONCLUSIVE"))

    @property
    def experiment(self) -> dict[str, Any]:
        return mapping(self.results.get("experiment"))

    @property
    def run(self) -> dict[str, Any]:
        return mapping(self.results.get("run"))

    @property
    def phases(self) -> list[dict[str, Any]]:
        return [mapping(p) for p in self.results.get("phases") or []]

    @property
    def checks(self) -> list[dict[str, Any]]:
        return [mapping(c) for c in self.results.get("checks") or []]

    def phase(self, name: str | None) -> dict[str, Any] | None:
        return next((p for p in self.phases if p.get("name") == name), None)

    @property
    def start(self) -> float:
        """Start of the time axis: the run's start, else the first second of the series."""
        started = number(self.run.get("started"))
        if started is not None:
            return started
        return float(self.series.t[0]) if self.series.t else 0.0

    @property
    def end(self) -> float:
        ended = number(self.run.get("ended"))
        if ended is not None and ended > self.start:
            return ended
        return float(self.series.t[-1] + 1) if self.series.t else self.start + 1.0


def mapping(value: Any) -> dict[str, Any]:
    """`value` when it is a JSON object, else an empty one: a malformed part reads as absent."""
    return value if isinstance(value, dict) else {}


def number(value: Any) -> float | None:
    """A finite float, or None for null, text, booleans, NaN and infinities."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def load_run(run_dir: Path) -> ResultsDir:
    run_dir = Path(run_dir)
    path = run_dir / "results.json"
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{path}: no results.json in this directory") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ReportError(f"{path}: cannot read results: {e}") from None
    if not isinstance(results, dict):
        raise ReportError(f"{path}: expected a JSON object")
    version = results.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ReportError(
            f"{path}: schema_version {version!r} is not supported (this chaosproxy reads "
            f"{SCHEMA_VERSION})"
        )
    for key in ("phases", "checks"):
        if not isinstance(results.get(key, []), list):
            raise ReportError(f"{path}: {key} must be a list")
    files = mapping(results.get("files"))
    name = files.get("timeseries") or "timeseries.csv"
    series = _read_timeseries(run_dir / safe_relative(str(name), "timeseries.csv"))
    return ResultsDir(run_dir, results, series)


def safe_relative(name: str, default: str) -> str:
    """A file name from results.json, kept only when it stays inside the results directory."""
    p = Path(name)
    if not name or p.is_absolute() or ".." in p.parts:
        return default
    return name


def _read_timeseries(path: Path) -> Timeseries:
    """Missing file → an empty series (the report says so); a malformed one is an error."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Timeseries()
    except (OSError, UnicodeDecodeError) as e:
        raise ReportError(f"{path}: cannot read: {e}") from None
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None:
        return Timeseries()
    if "t" not in header:
        raise ReportError(f"{path}: the header has no 't' column")
    ts = Timeseries(values={c: [] for c in header if c not in ("t", "phase")})
    for lineno, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise ReportError(f"{path}:{lineno}: {len(row)} cells, the header has {len(header)}")
        cells = dict(zip(header, row, strict=True))
        try:
            ts.t.append(int(float(cells["t"])))
        except ValueError:
            raise ReportError(f"{path}:{lineno}: t is not a number: {cells['t']!r}") from None
        ts.phase.append(cells.get("phase", ""))
        for col, values in ts.values.items():
            values.append(_cell(cells[col]))
    return ts


def _cell(text: str) -> float | None:
    if not text.strip():
        return None
    try:
        f = float(text)
    except ValueError:
        return None
    return f if math.isfinite(f) else None
