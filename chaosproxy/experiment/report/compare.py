"""What changed between two runs: per check (status, value, time to recover) and per phase
(error rates, p95, injected and absorbed faults). Backs `chaosproxy experiment compare A B`.

A check's value and time to recover show with their intervals; a change whose intervals
overlap (each run's, at its confidence) is marked "intervals overlap": it may be noise.

Checks and phases are matched by name; one present in a single run shows as absent in the
other. The exit code is 1 when any check went from PASS to FAIL, else 0 (a check that became
INCONCLUSIVE or disappeared is shown but is not a regression: there is no evidence it broke).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaosproxy.experiment import numbers
from chaosproxy.experiment.report import fmt
from chaosproxy.experiment.report.markdown import md
from chaosproxy.experiment.report.results_dir import ResultsDir, load_run, mapping, number

ABSENT = "absent"
ARROW = "\u2192"


@dataclass(frozen=True)
class CheckChange:
    name: str
    status_a: str
    status_b: str
    unit: str | None
    value_a: float | None
    value_b: float | None
    recovery: bool
    recovered_a: float | None
    recovered_b: float | None
    interval_a: fmt.Interval | None = None
    interval_b: fmt.Interval | None = None
    recovered_iv_a: fmt.Interval | None = None
    recovered_iv_b: fmt.Interval | None = None

    @property
    def regressed(self) -> bool:
        return self.status_a == "PASS" and self.status_b == "FAIL"

    @property
    def fixed(self) -> bool:
        return self.status_a == "FAIL" and self.status_b == "PASS"

    def cells(self) -> list[str]:
        status = f"{self.status_a} {ARROW} {self.status_b}"
        if self.regressed:
            status += " (regressed)"
        elif self.fixed:
            status += " (fixed)"
        recovered = (
            _pair(
                self.recovered_a,
                self.recovered_b,
                "seconds",
                fmt.duration,
                never=True,
                intervals=(self.recovered_iv_a, self.recovered_iv_b),
            )
            if self.recovery
            else numbers.NO_DATA
        )
        value = _pair(
            self.value_a, self.value_b, self.unit, intervals=(self.interval_a, self.interval_b)
        )
        return [self.name, status, value, recovered]


@dataclass(frozen=True)
class PhaseChange:
    name: str
    a: dict[str, Any] | None
    b: dict[str, Any] | None

    def get(self, side: str, part: str, key: str) -> float | None:
        phase = self.a if side == "a" else self.b
        return None if phase is None else number(mapping(phase.get(part)).get(key))

    def interval(self, side: str, part: str, key: str) -> fmt.Interval | None:
        phase = self.a if side == "a" else self.b
        return None if phase is None else fmt.pair(mapping(phase.get(part)).get(f"{key}_interval"))

    def cells(self) -> list[str]:
        """Values only (the intervals would make the table twice as wide); a change within
        overlapping intervals is still marked."""
        out = [
            self.name
            if self.a and self.b
            else f"{self.name} ({ABSENT} in {'A' if not self.a else 'B'})"
        ]
        for part, key, unit in PHASE_COLUMNS:
            ivs = (self.interval("a", part, key), self.interval("b", part, key))
            a, b = self.get("a", part, key), self.get("b", part, key)
            out.append(_pair(a, b, unit, intervals=ivs, show_intervals=False))
        return out


CHECK_HEADER = ["check", "status A " + ARROW + " B", "value", "recovered after"]
PHASE_COLUMNS = (
    ("client", "error_rate", "ratio"),
    ("client", "p95", "seconds"),
    ("proxy", "error_rate", "ratio"),
    ("resilience", "injected", "count"),
    ("resilience", "absorbed_share", "ratio"),
)
PHASE_HEADER = [
    "phase",
    "client error rate",
    "client p95",
    "proxy error rate",
    "faults injected",
    "absorbed share",
]


def _pair(
    a: float | None,
    b: float | None,
    unit: str | None,
    show: Any = None,
    never: bool = False,
    intervals: tuple[fmt.Interval | None, fmt.Interval | None] = (None, None),
    show_intervals: bool = True,
) -> str:
    """'A [lo, hi] → B [lo, hi] (delta)'; a missing side reads as no data (or 'never' for a
    recovery time). A change whose two intervals overlap says so."""
    custom = show
    if unit == "count":
        show = _count
    show = show or (lambda v: fmt.value(v, unit))
    empty = "never" if never else numbers.NO_DATA
    shown = [
        (fmt.estimate(v, iv if show_intervals else None, unit, show) if v is not None else empty)
        for v, iv in zip((a, b), intervals, strict=True)
    ]
    text = f"{shown[0]} {ARROW} {shown[1]}"
    if a is None or b is None:
        return text
    d = fmt.delta(a, b, unit, custom)  # a time to recover: the change in the same words
    if a != b and fmt.overlap(*intervals):
        d += "; intervals overlap"
    return f"{text} ({d})"


def _count(v: float | None) -> str:
    return numbers.NO_DATA if v is None else f"{v:,.0f}"


@dataclass(frozen=True)
class Comparison:
    a: ResultsDir
    b: ResultsDir
    checks: list[CheckChange]
    phases: list[PhaseChange]

    @property
    def regressions(self) -> list[CheckChange]:
        return [c for c in self.checks if c.regressed]

    @property
    def exit_code(self) -> int:
        return 1 if self.regressions else 0

    def _title(self, run: ResultsDir) -> str:
        return f"{run.name} run {run.run.get('id', '?')} ({run.verdict})"

    def summary(self) -> str:
        r = self.regressions
        if not r:
            return "No check went from PASS to FAIL."
        names = ", ".join(c.name for c in r)
        return f"{len(r)} check{'s' if len(r) > 1 else ''} went from PASS to FAIL: {names}"

    def text(self) -> str:
        """Plain aligned tables for a terminal."""
        lines = [
            f"A: {self._title(self.a)}  [{self.a.dir}]",
            f"B: {self._title(self.b)}  [{self.b.dir}]",
            "",
        ]
        lines += (
            _aligned(CHECK_HEADER, [c.cells() for c in self.checks])
            if self.checks
            else ["No checks in either run."]
        )
        lines.append("")
        lines += _aligned(PHASE_HEADER, [p.cells() for p in self.phases])
        lines += ["", self.summary()]
        return "\n".join(lines) + "\n"

    def markdown(self) -> str:
        """The same tables in Markdown, for a pull-request comment."""
        lines = [
            f"### Comparing runs: {md(self._title(self.a))} {ARROW} {md(self._title(self.b))}",
            "",
            f"**{'FAIL' if self.exit_code else 'OK'}:** {md(self.summary())}",
            "",
        ]
        if self.checks:
            lines += [*_md_table(CHECK_HEADER, [c.cells() for c in self.checks]), ""]
        if self.phases:
            lines += [*_md_table(PHASE_HEADER, [p.cells() for p in self.phases]), ""]
        return "\n".join(lines)


def _aligned(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(r: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()

    return [line(header), line(["-" * w for w in widths]), *map(line, rows)]


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(md(h) for h in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(md(c) for c in r) + " |" for r in rows]
    return out


def compare_runs(a: Path, b: Path) -> Comparison:
    """Compare two results directories (A the reference, B the new run)."""
    ra, rb = load_run(Path(a)), load_run(Path(b))
    checks_a = {str(c.get("name")): c for c in ra.checks}
    checks_b = {str(c.get("name")): c for c in rb.checks}
    names = list(checks_a) + [n for n in checks_b if n not in checks_a]
    checks = []
    for name in names:
        ca, cb = checks_a.get(name), checks_b.get(name)
        either = cb or ca or {}
        checks.append(
            CheckChange(
                name=name,
                status_a=str(ca.get("status", "INCONCLUSIVE")) if ca else ABSENT,
                status_b=str(cb.get("status", "INCONCLUSIVE")) if cb else ABSENT,
                unit=either.get("unit"),
                value_a=number(ca.get("value")) if ca else None,
                value_b=number(cb.get("value")) if cb else None,
                recovery=bool(either.get("after_phase")),
                recovered_a=number(ca.get("recovered_after_s")) if ca else None,
                recovered_b=number(cb.get("recovered_after_s")) if cb else None,
                interval_a=fmt.pair(ca.get("interval")) if ca else None,
                interval_b=fmt.pair(cb.get("interval")) if cb else None,
                recovered_iv_a=fmt.pair(ca.get("recovered_after_interval")) if ca else None,
                recovered_iv_b=fmt.pair(cb.get("recovered_after_interval")) if cb else None,
            )
        )
    phases_a = {str(p.get("name")): p for p in ra.phases}
    phases_b = {str(p.get("name")): p for p in rb.phases}
    pnames = list(phases_a) + [n for n in phases_b if n not in phases_a]
    phases = [PhaseChange(n, phases_a.get(n), phases_b.get(n)) for n in pnames]
    return Comparison(ra, rb, checks, phases)
