"""What a chart holds, before it is drawn: its series, and the checks' bounds, recovery
intervals and per-phase whiskers placed on it. Plain data shared by the chart kinds
(`chart_kinds.py`), the cohort split (`cohort_charts.py`), the checks' marks
(`chart_checks.py`) and the drawing (`svg_chart.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from markupsafe import Markup

from chaosproxy.experiment.report import fmt


@dataclass(frozen=True)
class Series:
    key: str  # the timeseries column
    label: str
    style: str  # css class: s0 (solid), s1 (dashed), s2 (dotted), bars
    values: list[float | None]


@dataclass(frozen=True)
class Bound:
    check: str
    status: str
    value: float
    label: str
    start: float
    end: float


@dataclass(frozen=True)
class Recovery:
    check: str
    status: str
    phase_end: float
    recovered_at: float | None  # None: never recovered within the run
    deadline: float | None
    interval: fmt.Interval | None = None  # of the time to recover, seconds after phase_end


@dataclass(frozen=True)
class Whisker:
    """A phase summary's value (p95, error rate) with its interval, drawn mid-phase."""

    phase: str
    value: float
    lo: float | None  # None: an open side
    hi: float | None
    start: float
    end: float
    text: str


@dataclass
class Chart:
    id: str
    title: str
    unit: str  # ratio | seconds | req/s | x | other
    source: str
    metrics: tuple[str, ...]  # check metrics drawn here
    series: list[Series]
    subtitle: str = ""  # a Prometheus query, shown as code
    note: str = ""  # a sentence on how to read the chart
    log: bool = False
    bounds: list[Bound] = field(default_factory=list)
    recoveries: list[Recovery] = field(default_factory=list)
    whiskers: list[Whisker] = field(default_factory=list)
    whisker_label: str = ""
    svg: Markup = field(default_factory=Markup)
