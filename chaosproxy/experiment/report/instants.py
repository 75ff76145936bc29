"""Instants as people read them: UTC date and time, time of day (what Grafana shows in UTC),
offset from the run's start, and the details of an event, whose instants read the same way."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from chaosproxy.experiment.numbers import NO_DATA
from chaosproxy.experiment.report.fmt import duration
from chaosproxy.experiment.report.results_dir import number


def utc(ts: Any) -> str:
    f = number(ts)
    if f is None:
        return NO_DATA
    return dt.datetime.fromtimestamp(f, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def elapsed(ts: Any, start: float) -> str:
    """Seconds since the run started, as '+12.3 s'."""
    f = number(ts)
    return NO_DATA if f is None else f"+{f - start:.1f} s"


def clock(ts: Any) -> str:
    """Wall-clock time of day in UTC, 'HH:MM:SS' (what Grafana shows in UTC)."""
    f = number(ts)
    if f is None:
        return NO_DATA
    return dt.datetime.fromtimestamp(f, dt.UTC).strftime("%H:%M:%S")


def when(ts: Any, start: float) -> str:
    """'14:40:05.2 UTC (+12.3 s)': wall clock and offset from the run's start."""
    f = number(ts)
    if f is None:
        return NO_DATA
    t = dt.datetime.fromtimestamp(f, dt.UTC)
    return f"{t.strftime('%H:%M:%S')}.{t.microsecond // 100_000} UTC ({elapsed(f, start)})"


# Event details that are instants (epoch seconds), and anything that looks like one.
_INSTANTS = ("at", "t", "time", "started", "ended", "since", "until")


_EPOCH = (1e9, 1e11)  # 2001 .. 5138: a number in here under such a key is a time


_SPANS = ("duration", "elapsed", "offset")  # seconds


def detail(key: str, v: Any, start: float) -> str | None:
    """One event detail as people read it: instants as UTC and offset, floats rounded, nothing
    for None (a blank, not the word 'None')."""
    if v is None or (isinstance(v, str | list | dict) and not v):
        return None
    f = number(v)
    if f is not None:
        if (key in _INSTANTS or key.endswith("_at")) and _EPOCH[0] < f < _EPOCH[1]:
            return when(f, start)
        if key in _SPANS:
            return duration(f)
        return f"{f:.4g}" if isinstance(v, float) else str(v)
    if isinstance(v, dict | list):
        return json.dumps(v, ensure_ascii=False, separators=(", ", ": "), default=str)
    return str(v)


def details(d: Any, start: float) -> str:
    """An event's details, 'key=value, …', None values left out."""
    if not isinstance(d, dict):
        return ""
    parts = []
    for k, v in d.items():
        shown = detail(str(k), v, start)
        if shown is not None:
            parts.append(f"{k}={shown}")
    return ", ".join(parts)
