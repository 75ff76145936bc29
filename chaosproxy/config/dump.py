"""The model back to the file format: `scenarios show` prints the effective scenario with it.

Includes and presets are already inlined in the model, so the output is one self-contained file
that loads back into the same scenario (rule ids that were key paths are renumbered).
"""

from __future__ import annotations

from typing import Any

import yaml

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


def scenario_to_data(scenario: Scenario) -> dict[str, Any]:
    out: dict[str, Any] = {"name": scenario.name}
    if scenario.description:
        out["description"] = scenario.description
    if scenario.seed is not None:
        out["seed"] = scenario.seed
    if scenario.repeat != 1:
        out["repeat"] = "forever" if scenario.repeat is None else scenario.repeat
    if scenario.max_duration is not None:
        out["max_duration"] = format_duration(scenario.max_duration)
    if scenario.max_active_faults is not None:
        out["max_active_faults"] = scenario.max_active_faults
    if scenario.abort_if is not None:
        a = scenario.abort_if
        abort: dict[str, Any] = {}
        if a.error_rate_above is not None:
            abort["error_rate_above"] = _number(a.error_rate_above)
        if a.p99_above is not None:
            abort["p99_above"] = format_duration(a.p99_above)
        abort["window"] = format_duration(a.window)
        out["abort_if"] = abort
    if scenario.rules:
        out["rules"] = [rule_to_data(r) for r in scenario.rules]
    phases = []
    for p in scenario.phases:
        phase: dict[str, Any] = {"name": p.name, "duration": format_duration(p.duration)}
        if p.rules:
            phase["rules"] = [rule_to_data(r) for r in p.rules]
        phases.append(phase)
    out["phases"] = phases
    return out


def scenario_to_yaml(scenario: Scenario) -> str:
    return yaml.safe_dump(
        scenario_to_data(scenario), sort_keys=False, allow_unicode=True, width=100
    )


def rule_to_data(rule: RuleSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if rule.id != rule.path:
        out["name"] = rule.id
    match = match_to_data(rule.match)
    if match:
        out["match"] = match
    if isinstance(rule.probability, float | int):
        if rule.probability != 1.0:
            out["probability"] = _number(rule.probability)
    else:
        out["probability"] = {
            "from": _number(rule.probability.start),
            "to": _number(rule.probability.end),
        }
    if rule.when is not None:
        w = rule.when
        if w.inflight_above is not None:
            out["when"] = {"inflight_above": w.inflight_above}
        else:
            out["when"] = {"rps_above": _number(w.rps_above), "window": format_duration(w.window)}
    if rule.counting is not None:
        for key in ("first", "every", "after"):
            value = getattr(rule.counting, key)
            if value is not None:
                out[key] = value
    if len(rule.outcomes) == 1 and rule.outcomes[0].weight == 1.0:
        out["fault"] = _faults(rule.outcomes[0])
    elif rule.outcomes:
        out["outcomes"] = [
            {"weight": _number(o.weight), "fault": _faults(o)} for o in rule.outcomes
        ]
    if rule.continue_:
        out["continue"] = True
    return out


def _number(value: float | None) -> float | int | None:
    """As it was written: `weight: 70`, not `70.0` (the model keeps numbers as floats)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _faults(outcome: Outcome) -> dict[str, Any]:
    return {f.name: f.params for f in outcome.faults}


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
