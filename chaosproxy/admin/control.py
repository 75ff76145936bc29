"""What the admin routes do, kept apart from HTTP: load scenarios, start/stop, ad-hoc rules, reset.

Every failure is an `ApiError` with the status a client should see: 404 unknown scenario or rule,
400 invalid body (details: a list of `{"field", "problem"}`), 409 a scenario already runs, 422 an
invalid scenario (details: a list of located problems, `file:line:col: key.path: message`).

A little over 400 lines on purpose: one function per route, in the order of the route table
(`routes.py`), with the checks each applies to what it is sent; split by resource, the one table
would be read across files.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chaosproxy.admin.errors import ApiError, bad_request
from chaosproxy.common.errors import ConfigError, shown_path, shown_problems
from chaosproxy.common.units import parse_duration
from chaosproxy.config.model import Scenario
from chaosproxy.engine.adhoc import TooManyRules
from chaosproxy.engine.core import AdhocRule

if TYPE_CHECKING:
    from chaosproxy.admin.plane import ControlPlane

log = logging.getLogger("chaosproxy.admin")

START_KEYS = ("seed", "repeat", "replace", "at")
MAX_UPLOADS = 64  # scenarios kept from PUT /scenarios/{name}
# Rules of every uploaded scenario together (each may hold up to loader.MAX_RULES): what 64
# uploads can make the proxy keep in memory.
MAX_UPLOADED_RULES = 10_000
MAX_SCHEDULE_AHEAD = 86400.0  # a start may be scheduled at most a day ahead
MAX_SCHEDULE_LATE = 5.0  # ... and at most this far in the past (then backdated to `at`)


def _bad(field: str, problem: str) -> ApiError:
    return bad_request(field, problem)


# ---------------------------------------------------------------- scenarios


def list_scenarios(cp: ControlPlane) -> dict[str, Any]:
    """Valid scenarios, described; broken files listed apart with their located problems."""
    from chaosproxy.config.loader import load_scenario_file, scenario_files

    found: list[dict[str, Any]] = []
    invalid: list[dict[str, Any]] = []
    for path in scenario_files(cp.scenario_dir):
        if path.stem in cp.uploads:
            continue  # an upload of the same name is what a start would use
        try:
            found.append(describe_scenario(load_scenario_file(path), brief=True))
        except ConfigError as e:
            invalid.append({"file": path.name, "problems": shown(cp, e)})
        except Exception as e:  # one file no check foresaw never hides the others
            log.exception("listing scenario file %s failed", path.name)
            problem = f"{path.name}: cannot load: {type(e).__name__} (see the proxy log)"
            invalid.append({"file": path.name, "problems": [problem]})
    for sc in cp.uploads.values():
        found.append(describe_scenario(sc, brief=True) | {"uploaded": True})
    return {"scenarios": found, "invalid": invalid}


def upload_scenario(cp: ControlPlane, name: str, text: str) -> tuple[Scenario, bool]:
    """Validate a scenario sent as YAML text and keep it in memory under `name`.

    Problems come back located (`<upload NAME>:line:col: key: message`). An upload cannot
    include files (it would read the proxy's disk); presets are fine. Returns (scenario, created).
    """
    from chaosproxy.config.loader import load_scenario_text

    _check_name(name)
    source = f"<upload {name}>"
    include = _include_node(text)
    if include is not None:
        raise ApiError(
            422,
            "Invalid scenario",
            [
                f"{source}:{include}: include: an uploaded scenario cannot include files; "
                "send it with its includes resolved (chaosproxy scenarios show FILE)"
            ],
        )
    try:
        sc = load_scenario_text(text, source)
    except ConfigError as e:
        raise ApiError(422, "Invalid scenario", [str(p) for p in e.problems]) from None
    if sc.name != name:
        raise ApiError(
            422,
            "Invalid scenario",
            [f"{source}: name: the scenario is named {sc.name!r} but was sent as {name!r}"],
        )
    created = name not in cp.uploads
    if created and len(cp.uploads) >= MAX_UPLOADS:
        raise ApiError(
            409, "Conflict", f"{MAX_UPLOADS} scenarios are uploaded already; delete one first"
        )
    kept = sum(rule_count(u) for n, u in cp.uploads.items() if n != name)
    if kept + rule_count(sc) > MAX_UPLOADED_RULES:
        raise ApiError(
            409,
            "Conflict",
            f"uploaded scenarios may hold {MAX_UPLOADED_RULES} rules in all; {kept} are kept "
            f"and this one has {rule_count(sc)}: delete an upload first",
        )
    cp.uploads[name] = sc
    return sc, created


def rule_count(sc: Scenario) -> int:
    """Rules a scenario holds: its phases' own and its scenario-wide ones."""
    return sum(len(p.rules) for p in sc.phases) + len(sc.rules)


def delete_upload(cp: ControlPlane, name: str) -> None:
    _check_name(name)
    if cp.uploads.pop(name, None) is None:
        raise ApiError(404, "Not Found", f"no uploaded scenario named {name!r}")


def _include_node(text: str) -> str | None:
    """`line:col` of an `include` key at the top or in a phase, or None."""
    import yaml
    from yaml.nodes import MappingNode, ScalarNode, SequenceNode

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError):
        return None  # the loader reports it, located
    maps = [root]
    if isinstance(root, MappingNode):
        for k, v in root.value:
            if isinstance(k, ScalarNode) and k.value == "phases" and isinstance(v, SequenceNode):
                maps.extend(v.value)
    for m in maps:
        if isinstance(m, MappingNode):
            for k, _ in m.value:
                if isinstance(k, ScalarNode) and k.value == "include":
                    return f"{k.start_mark.line + 1}:{k.start_mark.column + 1}"
    return None


def _check_name(name: str) -> None:
    if (
        not name
        or "/" in name
        or "\\" in name
        or name.startswith(".")
        or len(name) > 128
        or not name.isprintable()  # NUL and control characters name no file
    ):
        raise ApiError(404, "Not Found", f"no scenario named {name[:128]!r}")


def load_scenario(cp: ControlPlane, name: str) -> Scenario:
    """A scenario by name: one sent with PUT first, then the scenario directory; 404 unknown,
    422 when the file is invalid."""
    from chaosproxy.config.loader import load_scenario_file

    _check_name(name)
    uploaded = cp.uploads.get(name)
    if uploaded is not None:
        return uploaded
    from chaosproxy.config.loader import in_directory, scenario_files

    base = cp.scenario_dir
    path = next(
        (p for p in (base / f"{name}.yaml", base / f"{name}.yml") if in_directory(p, base)),
        None,
    )
    if path is None:
        known = sorted({*(p.stem for p in scenario_files(base)), *cp.uploads})
        raise ApiError(
            404, "Not Found", {"problem": f"no scenario named {name!r}", "available": known}
        )
    try:
        return load_scenario_file(path)
    except ConfigError as e:
        raise ApiError(422, "Invalid scenario file", shown(cp, e)) from None


def shown(cp: ControlPlane, e: ConfigError) -> list[str]:
    """Located problems as a client sees them (`errors.shown_problems`)."""
    return shown_problems(e.problems, cp.scenario_dir)


def describe_scenario(
    sc: Scenario, brief: bool = False, base: Path | None = None
) -> dict[str, Any]:
    """`base`: the scenario directory, to show `source` relative to it."""
    out: dict[str, Any] = {
        "name": sc.name,
        "description": sc.description,
        "cycle_duration": sc.cycle_duration,
        "total_duration": sc.total_duration,
        "repeat": sc.repeat,
    }
    if brief:
        out["phases"] = [p.name for p in sc.phases]
        return out
    start = 0.0
    phases = []
    for p in sc.phases:
        phases.append(
            {
                "name": p.name,
                "duration": p.duration,
                "start": start,
                "end": start + p.duration,
                "rules": [r.id for r in p.rules],
            }
        )
        start += p.duration
    out["phases"] = phases
    out["rules"] = [r.id for r in sc.rules]
    out["seed"] = sc.seed
    out["max_duration"] = sc.max_duration
    out["max_active_faults"] = sc.max_active_faults
    if sc.abort_if is not None:
        a = sc.abort_if
        out["abort_if"] = {
            "error_rate_above": a.error_rate_above,
            "p99_above": a.p99_above,
            "window": a.window,
        }
    out["source"] = sc.source if base is None else shown_path(base, sc.source)
    return out


def start_options(body: Any) -> dict[str, Any]:
    """Validate the optional start body `{"seed": 7, "repeat": 2, "replace": true}`."""
    if not isinstance(body, dict):
        raise _bad("body", "expected a JSON object")
    for key in body:
        if key not in START_KEYS:
            raise _bad(str(key), f"unknown field; known fields: {', '.join(START_KEYS)}")
    opts: dict[str, Any] = {}
    seed = body.get("seed")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise _bad("seed", f"expected an integer, got {seed!r}")
        opts["seed"] = seed
    if "repeat" in body:
        rep = body["repeat"]
        if rep == "forever" or rep is None:
            opts["repeat"] = None
        elif isinstance(rep, bool) or not isinstance(rep, int) or rep < 1:
            raise _bad("repeat", f'expected an integer ≥ 1 or "forever", got {rep!r}')
        else:
            opts["repeat"] = rep
    replace = body.get("replace", False)
    if not isinstance(replace, bool):
        raise _bad("replace", f"expected true or false, got {replace!r}")
    opts["replace"] = replace
    if "at" in body:
        at = body["at"]
        if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
            raise _bad("at", f"expected a Unix time in seconds, got {at!r}")
        opts["at"] = float(at)
    return opts


def running_name(cp: ControlPlane) -> str | None:
    running = cp.engine.current()
    return running.scenario.name if running is not None else None


def start(cp: ControlPlane, sc: Scenario, opts: dict[str, Any]) -> None:
    current = running_name(cp)
    scheduled = cp.engine.scheduled
    if current is None and scheduled is not None:
        current = scheduled[0]
    if current is not None and not opts.get("replace"):
        raise ApiError(
            409,
            "Conflict",
            f'scenario {current!r} is running; stop it first or send {{"replace": true}}',
        )
    kwargs: dict[str, Any] = {"seed": opts.get("seed"), "replace": bool(opts.get("replace"))}
    if "repeat" in opts:
        kwargs["repeat"] = opts["repeat"]
    at = opts.get("at")
    try:
        if at is None:
            cp.engine.start_scenario(sc, **kwargs)
        else:
            now = cp.clock.wall()
            if at > now + MAX_SCHEDULE_AHEAD:
                raise _bad("at", f"{at - now:.0f}s ahead; at most {MAX_SCHEDULE_AHEAD:.0f}s")
            if at < now - MAX_SCHEDULE_LATE:
                raise _bad(
                    "at",
                    f"{now - at:.1f}s in the past (this proxy's clock); "
                    f"at most {MAX_SCHEDULE_LATE:.0f}s late is accepted",
                )
            cp.engine.schedule_scenario(sc, at, **kwargs)
    except ConfigError as e:
        raise ApiError(422, "Invalid scenario", shown(cp, e)) from None
    cp.guardrails.check()


def stop(cp: ControlPlane) -> str | None:
    """Stop the running scenario (or cancel a scheduled one); its name, or None."""
    name = running_name(cp)
    if name is None and cp.engine.scheduled is not None:
        name = cp.engine.scheduled[0]
    cp.engine.stop_scenario()
    return name


def status(cp: ControlPlane) -> dict[str, Any]:
    out: dict[str, Any] = dict(cp.engine.status())
    scenario = out.get("scenario")
    if isinstance(scenario, dict) and isinstance(scenario.get("source"), str):
        out["scenario"] = scenario | {"source": shown_path(cp.scenario_dir, scenario["source"])}
    out["guardrails"] = cp.guardrails.status()
    out["adhoc_rules"] = list_rules(cp)
    out["instance"] = cp.instance
    out["time"] = cp.clock.wall()  # this proxy's clock, for skew across a fleet
    return out


# ---------------------------------------------------------------- history


def events(cp: ControlPlane, since: int, limit: int) -> dict[str, Any]:
    found, dropped = cp.events.since(since, limit)
    return {
        "events": found,
        "next": found[-1]["seq"] if found else max(since, 0),
        "last": cp.events.last_seq,
        "dropped": dropped,
        "instance": cp.instance,
        "time": cp.clock.wall(),
    }


def timeseries(
    cp: ControlPlane, first: int, last: int, run: str | None, histograms: bool
) -> list[dict[str, Any]]:
    """Rows for [first, last], each with the scenario and phase in force as its second began."""
    rows = cp.stats.range(first, last, run, histograms)
    phase_at = cp.events.phase_at
    for row in rows:
        row["scenario"], row["phase"] = phase_at(row["t"])
    return rows


# ---------------------------------------------------------------- ad-hoc rules


def add_rule(cp: ControlPlane, body: Any) -> dict[str, Any]:
    """Parse one rule in the scenario-rule schema (plus `ttl`) and activate it."""
    if not isinstance(body, dict):
        raise _bad("body", "expected a JSON object: one rule, as in a scenario's rules list")
    body = dict(body)
    ttl: float | None = None
    if "ttl" in body:
        try:
            ttl = parse_duration(body.pop("ttl"))
        except ValueError as e:
            raise _bad("ttl", str(e)) from None
        if ttl <= 0:
            raise _bad("ttl", "must be > 0")
    spec = _parse_rule(body)
    from chaosproxy.engine.compile import compile_rule

    if not isinstance(spec.probability, float | int):
        raise _bad("probability", "a ramp needs a phase; give a number for ad-hoc rules")
    try:
        rule = compile_rule(spec)
    except ConfigError as e:
        raise ApiError(400, "Bad Request", _problems(e)) from None
    effective = cp.guardrails.rule_ttl(ttl)
    try:
        added = cp.engine.add_compiled_rule(rule, effective, source=body)
    except TooManyRules as e:
        raise ApiError(409, "Conflict", str(e)) from None
    return _describe_rule(cp, added)


def _parse_rule(body: dict[str, Any]) -> Any:
    from chaosproxy.config.loader import load_scenario_text

    doc = {"name": "adhoc", "phases": [{"name": "adhoc", "duration": 1, "rules": [body]}]}
    try:
        sc = load_scenario_text(json.dumps(doc), "<request body>")
    except ConfigError as e:
        raise ApiError(400, "Bad Request", _problems(e)) from None
    return sc.phases[0].rules[0]


def _rel(path: str) -> str:
    prefix = "phases[0].rules[0]"
    return "rule" + path[len(prefix) :] if path.startswith(prefix) else path


def _problems(e: ConfigError) -> list[dict[str, str]]:
    return [{"field": _rel(p.path), "problem": p.message} for p in e.problems]


def _describe_rule(cp: ControlPlane, rule: AdhocRule) -> dict[str, Any]:
    now = cp.clock.monotonic()
    expires = rule.expires_at
    out: dict[str, Any] = {
        "id": rule.id,
        "faults": [f.describe() for f in rule.faults],
        "probability": rule.probability,
        "ttl_remaining": None if expires is None else max(0.0, round(expires - now, 3)),
        "matched": rule.matched,
        "injected": rule.injected,
    }
    if rule.source is not None:
        out["rule"] = rule.source
    return out


def _adhoc(cp: ControlPlane) -> list[AdhocRule]:
    now = cp.clock.monotonic()
    return [r for r in cp.engine.adhoc_rules() if r.expires_at is None or r.expires_at > now]


def list_rules(cp: ControlPlane) -> list[dict[str, Any]]:
    return [_describe_rule(cp, r) for r in _adhoc(cp)]


def delete_rule(cp: ControlPlane, rule_id: str) -> None:
    if not cp.engine.remove_rule(rule_id):
        raise ApiError(404, "Not Found", f"no ad-hoc rule with id {rule_id!r}")


def clear_rules(cp: ControlPlane) -> int:
    n = len(_adhoc(cp))
    cp.engine.clear_rules()
    return n


def reset(cp: ControlPlane) -> None:
    """Stop everything, clear ad-hoc rules, guardrail history and per-second stats."""
    stop(cp)
    cp.engine.clear_rules()
    cp.guardrails.clear()
    cp.stats.clear()
