"""The model back to the file format: `scenarios show` prints the effective scenario with it.

Includes and presets are already inlined in the model, so the output is one self-contained file
that loads back into the same scenario (rule ids that were key paths are renumbered). Which keys
are written, and in which order, is the keys' declaration (`keys.py`): each key's `write` is
given a `Writer` and the model object of its mapping.
"""

from __future__ import annotations

from typing import Any

import yaml

from chaosproxy.config.keys import RULE, SCENARIO, Table
from chaosproxy.config.model import FieldCond, MatchSpec, Outcome, RuleSpec, Scenario


def format_duration(seconds: float) -> str:
    """A duration the loader reads back: `250ms`, `2m`, `1.5s`."""
    if seconds < 1 and seconds != 0:
        ms = seconds * 1000
        return f"{ms:g}ms"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


def human_duration(seconds: float | None) -> str:
    """For listings: `3m20s`, `45s`, `forever`."""
    if seconds is None:
        return "forever"
    whole = int(seconds)
    if whole != seconds or whole < 60:
        return format_duration(seconds)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    parts = [f"{h}h" if h else "", f"{m}m" if m else "", f"{s}s" if s else ""]
    return "".join(parts)


class Writer:
    """What the keys' `write` functions write with: a nested mapping through its own table,
    durations in a unit the loader reads back, whole numbers whole."""

    def table(self, table: Table, obj: Any) -> dict[str, Any]:
        """The keys of `table` that have something to say about `obj`, in declared order."""
        out: dict[str, Any] = {}
        for key in table.keys:
            value = None if key.write is None else key.write(self, obj)
            if value is not None:
                out[key.name] = value
        return out

    def duration(self, seconds: float | None) -> str | None:
        return None if seconds is None else format_duration(seconds)

    def number(self, value: float | None) -> float | int | None:
        return _number(value)

    def match(self, spec: MatchSpec) -> dict[str, Any]:
        return match_to_data(spec)

    def faults(self, outcome: Outcome) -> dict[str, Any]:
        return {f.name: f.params for f in outcome.faults}


def scenario_to_data(scenario: Scenario) -> dict[str, Any]:
    return Writer().table(SCENARIO, scenario)


def scenario_to_yaml(scenario: Scenario) -> str:
    return yaml.safe_dump(
        scenario_to_data(scenario), sort_keys=False, allow_unicode=True, width=100
    )


def rule_to_data(rule: RuleSpec) -> dict[str, Any]:
    return Writer().table(RULE, rule)


def _number(value: float | None) -> float | int | None:
    """As it was written: `weight: 70`, not `70.0` (the model keeps numbers as floats)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def match_to_data(m: MatchSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if m.methods:
        out["methods"] = list(m.methods)
    for key in ("path", "path_regex", "host"):
        if getattr(m, key) is not None:
            out[key] = getattr(m, key)
    if m.headers:
        out["headers"] = _conditions(m.headers)
    if m.query:
        out["query"] = _conditions(m.query)
    if m.user_agent is not None:
        ua = m.user_agent
        # A regex spelt like a word would load back as a (misspelt) preset: say it is a regex.
        plain = ua.isalpha() and ua.islower() and ua not in ("mobile", "desktop", "bot")
        out["user_agent"] = {"regex": ua} if plain else ua
    if m.client_ip:
        out["client_ip"] = list(m.client_ip)
    if m.cohort is not None:
        out["cohort"] = {"share": _number(m.cohort.share), "by": m.cohort.by}
    if m.tcp is not None:
        out["tcp"] = m.tcp
    if m.grpc is not None:
        out["grpc"] = {
            k: v for k, v in (("service", m.grpc.service), ("method", m.grpc.method)) if v
        }
    return out


def _conditions(conds: tuple[FieldCond, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c in conds:
        if c.regex is not None:
            out[c.name] = {"regex": c.regex}
        elif c.present is not None:
            out[c.name] = {"present": c.present}
        else:
            out[c.name] = c.equals
    return out
