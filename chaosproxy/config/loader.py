"""YAML scenario files to the typed model, with every problem located (file:line:col: key.path).

The loader composes PyYAML's node tree instead of loading plain values, so every key and value
keeps its position; it collects all structural problems before raising one ConfigError, so a user
fixes a file in one pass. Fault parameters stay raw (the engine validates them through the fault
registry) but their positions go into `Scenario.locations` so those errors are located too.

Which keys a mapping may hold, and how each is read, is declared in `keys.py`; here the values
read are put together into the model, with the checks that span keys (duplicate names, `fault`
or `outcomes`, the rule limits). Where scenario files are found is `scenario_dir.py` (its names
are re-exported here); rule blocks that pull in other files are `includes.py`; the `match:`
grammar is `match_spec.py`; the located readers they all stand on are `located.py`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode

from chaosproxy.common.errors import ConfigError, Problem
from chaosproxy.config.includes import RuleSetReader
from chaosproxy.config.keys import (
    ABORT_IF,
    OUTCOME,
    PHASE,
    RAMP,
    RULE,
    RULESET,
    SCENARIO,
    WHEN,
    Table,
)
from chaosproxy.config.located import (
    Collector,
    Doc,
    describe,
    join,
    problem_order,
    read_file,
    suggest,
)
from chaosproxy.config.model import (
    AbortIf,
    Counting,
    FaultSpec,
    Loc,
    MatchSpec,
    Outcome,
    PhaseSpec,
    Ramp,
    RuleSpec,
    Scenario,
    When,
    locate,
)
from chaosproxy.config.scenario_dir import bundled_scenario_dir as bundled_scenario_dir
from chaosproxy.config.scenario_dir import in_directory as in_directory
from chaosproxy.config.scenario_dir import resolve_scenario as resolve_scenario
from chaosproxy.config.scenario_dir import scenario_files as scenario_files

# Rules of one scenario, after includes and presets (a few lines of YAML can bring in
# thousands): each costs memory while the scenario is loaded, and a request may be walked past
# every rule of the phase in force.
MAX_RULES = 1000
# Rules summed over the phases, the scenario-wide ones counted in every phase (each phase holds
# them): bounds what many phases times many scenario-wide rules would build.
MAX_RULES_IN_PHASES = 10_000


# ---------------------------------------------------------------- public API


def load_scenario_file(path: str | os.PathLike[str]) -> Scenario:
    """Load and validate one scenario file; ConfigError lists every problem found."""
    source = os.fspath(path)
    return load_scenario_text(read_file(source), source)


def load_scenario_text(text: str, source: str = "<input>") -> Scenario:
    """Parse scenario YAML; relative `include` paths resolve against `source`'s directory."""
    col = Collector()
    doc = Doc.parse(text, source, col)
    scenario = None if doc is None else ScenarioReader(col, doc).scenario(doc.root)
    if col.problems or scenario is None:
        raise ConfigError(sorted(col.problems, key=problem_order))
    return scenario


def list_scenarios(directory: Path | None = None) -> list[Scenario]:
    """Every scenario file of a directory, loaded (a broken file raises its ConfigError)."""
    directory = directory if directory is not None else bundled_scenario_dir()
    return [load_scenario_file(p) for p in scenario_files(directory)]


# ---------------------------------------------------------------- plumbing


class ScenarioReader(RuleSetReader):
    """Walks one scenario file's nodes into model objects, recording problems instead of
    stopping; includes and presets open further files with the same collector. The keys'
    declarations (`keys.py`) call back into the `read` methods here."""

    def keyed(
        self, table: Table, node: Node, path: str
    ) -> tuple[dict[str, Node], dict[str, Any]] | None:
        """A mapping checked against `table` (unknown keys with a did-you-mean, duplicates,
        missing required keys) and every key present read by its declaration: the value nodes,
        and the values read (None where a value is bad)."""
        m = self.mapping(node, path, table.names, required=table.required, what=table.what)
        if m is None:
            return None
        values = {
            k.name: k.read(self, m[k.name], join(path, k.name))
            for k in table.keys
            if k.read is not None and k.name in m
        }
        return m, values

    def block(self, v: dict[str, Any]) -> list[RuleSpec]:
        """A rule block's rules: its own, then those of each include, then each preset's."""
        return [*(v.get("rules") or ()), *(v.get("include") or ()), *(v.get("presets") or ())]

    def ruleset(self, node: Node, path: str) -> list[RuleSpec]:
        got = self.keyed(RULESET, node, path)
        return [] if got is None else self.block(got[1])

    # ---------------- scenario

    def scenario(self, node: Node) -> Scenario | None:
        got = self.keyed(SCENARIO, node, "")
        if got is None:
            return None
        v = got[1]
        phases: list[PhaseSpec] = v.get("phases") or []
        rules = self.block(v)
        self.check_rule_ids(phases, rules)
        self.check_rule_count(phases, rules)
        self.check_cohorts([*rules, *(r for ph in phases for r in ph.rules)])
        return Scenario(
            name=v.get("name") or "",
            description=v.get("description", ""),
            phases=tuple(phases),
            rules=tuple(rules),
            seed=v.get("seed"),
            repeat=v.get("repeat", 1),
            max_duration=v.get("max_duration"),
            max_active_faults=v.get("max_active_faults"),
            abort_if=v.get("abort_if"),
            source=self.doc.source,
            locations=self.col.locations,
        )

    def repeat(self, node: Node, path: str) -> int | None:
        if isinstance(node, ScalarNode) and node.value == "forever":
            return None
        v = self.doc.value(node) if isinstance(node, ScalarNode) else None
        if isinstance(v, bool) or not isinstance(v, int):
            self.problem(node, path, f"expected a count or 'forever', got {describe(node)}")
            return 1
        if v < 1:
            self.problem(node, path, f"must be ≥ 1 or 'forever', got {v}")
            return 1
        return v

    def abort_if(self, node: Node, path: str) -> AbortIf | None:
        got = self.keyed(ABORT_IF, node, path)
        if got is None:
            return None
        m, v = got
        if not any(k in m for k in ABORT_IF.any_of):
            self.problem(node, path, f"needs {' or '.join(ABORT_IF.any_of)}")
            return None
        window = {"window": v["window"]} if v.get("window") else {}
        return AbortIf(
            error_rate_above=v.get("error_rate_above"), p99_above=v.get("p99_above"), **window
        )

    def phases(self, node: Node, path: str) -> list[PhaseSpec]:
        items = self.seq(node, path)
        if items is None:
            return []
        if not items:
            self.problem(node, path, "needs at least one phase")
        out: list[PhaseSpec] = []
        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            ipath = f"{path}[{i}]"
            got = self.keyed(PHASE, item, ipath)
            if got is None:
                continue
            m, v = got
            name = v.get("name")
            if name is not None and name in seen:
                self.problem(
                    m["name"], f"{ipath}.name", f"duplicate phase name (also {path}[{seen[name]}])"
                )
            elif name is not None:
                seen[name] = i
            rules = tuple(self.block(v))
            duration = v.get("duration") or 0.0
            description = v.get("description", "")
            out.append(PhaseSpec(name or f"phase-{i + 1}", duration, ipath, rules, description))
        return out

    def check_rule_ids(self, phases: list[PhaseSpec], scenario_rules: list[RuleSpec]) -> None:
        """Rule ids name a rule in stats and the journal: two rules active together can't share
        one."""
        for scope in [*(p.rules for p in phases), ()]:
            seen: dict[str, str] = {}
            for rule in (*scope, *scenario_rules):
                if rule.id in seen and seen[rule.id] != rule.path:
                    at = join(rule.path, "name")
                    loc = self.col.locations.get(at, Loc(self.doc.source, 0, 0))
                    message = f"duplicate rule name {rule.id!r} (also {seen[rule.id]})"
                    self.col.problems.append(Problem(message, at, loc.file, loc.line, loc.col))
                seen.setdefault(rule.id, rule.path)

    def check_rule_count(self, phases: list[PhaseSpec], wide: list[RuleSpec]) -> None:
        """MAX_RULES and MAX_RULES_IN_PHASES, reported at the first rule past the limit."""
        every = [*(r for p in phases for r in p.rules), *wide]
        in_phases = sum(len(p.rules) for p in phases) + len(phases) * len(wide)
        if len(every) > MAX_RULES:
            message = (
                f"too many rules: {len(every)} after includes and presets, at most "
                f"{MAX_RULES} in a scenario"
            )
            at = every[MAX_RULES].path
        elif in_phases > MAX_RULES_IN_PHASES:
            message = (
                f"too many rules in force: {len(phases)} phases times {len(wide)} scenario-wide "
                f"rules and the phases' own come to {in_phases}, at most {MAX_RULES_IN_PHASES}"
            )
            at = wide[0].path
        else:
            return
        loc = locate(self.col.locations, at, self.doc.source)
        self.col.problems.append(Problem(message, at, loc.file, loc.line, loc.col))

    # ---------------- rules

    def rules(self, node: Node, path: str) -> list[RuleSpec]:
        if isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return []
        items = self.seq(node, path)
        if items is None:
            return []
        out = []
        for i, item in enumerate(items):
            rule = self.rule(item, f"{path}[{i}]")
            if rule is not None:
                out.append(rule)
        return out

    def rule(self, node: Node, path: str) -> RuleSpec | None:
        got = self.keyed(RULE, node, path)
        if got is None:
            return None
        m, v = got
        counts = {k: v[k] for k in ("first", "every", "after") if k in v}
        outcomes: tuple[Outcome, ...] = ()
        if "fault" in m and "outcomes" in m:
            self.problem(
                m["outcomes"], f"{path}.outcomes", "use either fault or outcomes, not both"
            )
        elif "fault" in m:
            outcomes = (Outcome(1.0, v["fault"]),) if v["fault"] else ()
        elif "outcomes" in m:
            outcomes = v["outcomes"]
        else:
            self.problem(node, path, "a rule needs a fault (or weighted outcomes)")
        self.check_faults(outcomes, v.get("match") or MatchSpec())
        return RuleSpec(
            id=v.get("name") or path,
            path=path,
            match=v.get("match") or MatchSpec(),
            probability=v.get("probability", 1.0),
            when=v.get("when"),
            counting=Counting(**counts) if counts else None,
            outcomes=outcomes,
            continue_=bool(v.get("continue")),
        )

    def check_faults(self, outcomes: tuple[Outcome, ...], match: MatchSpec) -> None:
        """A rule for a TCP proxy (`match: {tcp: NAME}`) takes TCP faults, any other rule
        HTTP faults (the two registries may share a name: `latency`); each fault's parameters
        are then checked by its own registry."""
        from chaosproxy.faults import registry
        from chaosproxy.faults.tcp import registry as tcp_registry

        tcp = match.tcp is not None
        own = tcp_registry() if tcp else registry()
        for outcome in outcomes:
            for spec in outcome.faults:
                if spec.name in own:
                    self.check_params(spec, tcp)
                    continue
                at = join(spec.path, spec.name)
                loc = locate(self.col.locations, at, self.doc.source)
                message = (
                    f"{spec.name!r} is an HTTP fault; a rule for TCP proxy {match.tcp!r} takes "
                    f"TCP faults: {', '.join(sorted(own))}"
                    if tcp
                    else f"{spec.name!r} is a TCP fault: its rule needs match: {{tcp: NAME}} "
                    "(docs/tcp.md)"
                )
                self.col.problems.append(Problem(message, at, loc.file, loc.line, loc.col))

    def rule_match(self, node: Node, path: str) -> MatchSpec:
        fields = self.match_fields(node, path)
        return MatchSpec() if fields is None else self.match_spec(fields[1], path)

    def probability(self, node: Node, path: str) -> float | Ramp:
        if isinstance(node, MappingNode):
            got = self.keyed(RAMP, node, path)
            start, end = (None, None) if got is None else (got[1].get("from"), got[1].get("to"))
            return 1.0 if start is None or end is None else Ramp(start, end)
        v = self.number(node, path, lo=0, hi=1)
        return 1.0 if v is None else v

    def when(self, node: Node, path: str) -> When | None:
        got = self.keyed(WHEN, node, path)
        if got is None:
            return None
        m, v = got
        has_inflight, has_rps = "inflight_above" in m, "rps_above" in m
        if has_inflight == has_rps:
            self.problem(node, path, f"needs exactly one of {' or '.join(WHEN.one_of)}")
            return None
        if "window" in m and not has_rps:
            self.problem(m["window"], f"{path}.window", "window goes with rps_above")
        if has_inflight:
            n = v["inflight_above"]
            return None if n is None else When(inflight_above=n)
        rps, window = v["rps_above"], v.get("window")
        if rps is None:
            return None
        return When(rps_above=rps) if window is None else When(rps_above=rps, window=window)

    def outcomes(self, node: Node, path: str) -> tuple[Outcome, ...]:
        items = self.seq(node, path)
        if items is None:
            return ()
        if not items:
            self.problem(node, path, "needs at least one outcome")
        out = []
        for i, item in enumerate(items):
            got = self.keyed(OUTCOME, item, f"{path}[{i}]")
            v = {} if got is None else got[1]
            if v.get("weight") is not None and v.get("fault"):
                out.append(Outcome(v["weight"], v["fault"]))
        return tuple(out)

    def faults(self, node: Node, path: str) -> tuple[FaultSpec, ...]:
        from chaosproxy.faults import registry
        from chaosproxy.faults.tcp import registry as tcp_registry

        known = sorted({*registry(), *tcp_registry()})  # which one fits: `check_faults`
        m = self.mapping(node, path, None, what="a mapping of fault name to parameters")
        if m is None:
            return ()
        if not m:
            self.problem(node, path, f"names no fault; known faults: {', '.join(known)}")
            return ()
        out = []
        for name, pnode in m.items():
            fpath = join(path, name)
            if name not in known:
                hint = suggest(name, known) or f"; known faults: {', '.join(known)}"
                knode = next(k for k, v in node.value if v is pnode)
                self.problem(knode, fpath, f"unknown fault {name!r}{hint}")
                continue
            if not isinstance(pnode, MappingNode) and not (
                isinstance(pnode, ScalarNode) and pnode.tag == "tag:yaml.org,2002:null"
            ):
                self.problem(
                    pnode, fpath, f"expected a mapping of parameters, got {describe(pnode)}"
                )
                continue
            self.record_tree(pnode, fpath)
            params = self.doc.value(pnode)
            out.append(FaultSpec(name, {} if params is None else params, path))
        return tuple(out)

    def check_params(self, spec: FaultSpec, tcp: bool = False) -> None:
        """Fault parameters are the fault's own business; asking it now means a file with
        both a misspelt key and a bad parameter reports both at once."""
        from chaosproxy.faults import build
        from chaosproxy.faults.tcp import build as tcp_build

        try:
            (tcp_build if tcp else build)(spec.name, spec.params, spec.path)
        except ConfigError as e:
            for p in e.problems:
                loc = locate(self.col.locations, p.path, self.doc.source)
                self.col.problems.append(Problem(p.message, p.path, loc.file, loc.line, loc.col))
