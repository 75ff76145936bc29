"""YAML scenario files to the typed model, with every problem located (file:line:col: key.path).

The loader composes PyYAML's node tree instead of loading plain values, so every key and value
keeps its position; it collects all structural problems before raising one ConfigError, so a user
fixes a file in one pass. Fault parameters stay raw (the engine validates them through the fault
registry) but their positions go into `Scenario.locations` so those errors are located too.

Here: the scenario grammar (scenario, phases, rules, faults) and where scenario files are found.
Rule blocks that pull in other files are `includes.py`; the `match:` grammar is `match_spec.py`;
the located readers they all stand on are `located.py`. (A little over 400 lines: the grammar of
a scenario file is read top to bottom as one.)
"""

from __future__ import annotations

import os
from pathlib import Path

from yaml.nodes import MappingNode, Node, ScalarNode

from chaosproxy.common.errors import ConfigError, Problem
from chaosproxy.config.includes import RuleSetReader
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

SCENARIO_KEYS = (
    "name",
    "description",
    "seed",
    "repeat",
    "phases",
    "rules",
    "include",
    "presets",
    "max_duration",
    "max_active_faults",
    "abort_if",
)
PHASE_KEYS = ("name", "description", "duration", "rules", "include", "presets")
RULE_KEYS = (
    "name",
    "match",
    "probability",
    "when",
    "first",
    "every",
    "after",
    "fault",
    "outcomes",
    "continue",
)
WHEN_KEYS = ("inflight_above", "rps_above", "window")
RAMP_KEYS = ("from", "to")
OUTCOME_KEYS = ("weight", "fault")
ABORT_KEYS = ("error_rate_above", "p99_above", "window")
# Rules of one scenario, after includes and presets (a few lines of YAML can bring in
# thousands): each costs memory while the scenario is loaded, and a request may be walked past
# every rule of the phase in force.
MAX_RULES = 1000
# Rules summed over the phases, the scenario-wide ones counted in every phase (each phase holds
# them): bounds what many phases times many scenario-wide rules would build.
MAX_RULES_IN_PHASES = 10_000


def bundled_scenario_dir() -> Path:
    """The scenarios shipped inside the package (the top-level `scenarios/` links here)."""
    return Path(__file__).resolve().parent.parent / "data" / "scenarios"


# ---------------------------------------------------------------- public API


def load_scenario_file(path: str | os.PathLike[str]) -> Scenario:
    """Load and validate one scenario file; ConfigError lists every problem found."""
    source = os.fspath(path)
    return load_scenario_text(read_file(source), source)


def load_scenario_text(text: str, source: str = "<input>") -> Scenario:
    """Parse scenario YAML; relative `include` paths resolve against `source`'s directory."""
    col = Collector()
    doc = Doc.parse(text, source, col)
    scenario = None if doc is None else _Builder(col, doc).scenario(doc.root)
    if col.problems or scenario is None:
        raise ConfigError(sorted(col.problems, key=problem_order))
    return scenario


def resolve_scenario(name_or_file: str, scenario_dir: Path | None = None) -> Path:
    """A path (contains a separator or ends in .yaml/.yml) is used as is; a NAME is looked up."""
    directory = scenario_dir if scenario_dir is not None else bundled_scenario_dir()
    looks_like_path = (
        os.sep in name_or_file or "/" in name_or_file or name_or_file.endswith((".yaml", ".yml"))
    )
    if Path(name_or_file).is_dir() and not (directory / f"{name_or_file}.yaml").is_file():
        raise ConfigError(
            Problem("is a directory, expected a scenario file or NAME", file=name_or_file)
        )
    if looks_like_path or Path(name_or_file).is_file():
        p = Path(name_or_file)
        if p.is_file():
            return p
        if looks_like_path:
            raise ConfigError(Problem("no such scenario file", file=name_or_file))
    for ext in (".yaml", ".yml"):
        candidate = directory / f"{name_or_file}{ext}"
        if candidate.is_file():
            return candidate
    names = sorted({p.stem for p in scenario_files(directory)})
    hint = suggest(name_or_file, names)
    available = ", ".join(names) if names else "none"
    raise ConfigError(
        Problem(f"unknown scenario {name_or_file!r}{hint}; available in {directory}: {available}")
    )


def list_scenarios(directory: Path | None = None) -> list[Scenario]:
    """Every scenario file of a directory, loaded (a broken file raises its ConfigError)."""
    directory = directory if directory is not None else bundled_scenario_dir()
    return [load_scenario_file(p) for p in scenario_files(directory)]


def scenario_files(directory: Path) -> list[Path]:
    """The `.yaml`/`.yml` files of a directory that are scenario files: regular files that
    stay inside it. A symlink may point within the directory (a Kubernetes ConfigMap's
    `..data/` links), never out of it: `x.yaml -> /app/.env` would make the admin API read,
    and report on, a file nobody put there as a scenario."""
    if not directory.is_dir():
        return []
    return sorted(
        p
        for p in directory.iterdir()
        if p.suffix in (".yaml", ".yml") and in_directory(p, directory)
    )


def in_directory(path: Path, directory: Path) -> bool:
    """`path` is a regular file whose real location (symlinks followed) is inside
    `directory`'s."""
    try:
        real = path.resolve(strict=True)
        return real.is_file() and real.is_relative_to(directory.resolve(strict=True))
    except (OSError, RuntimeError):  # gone, unreadable, a symlink loop
        return False


# ---------------------------------------------------------------- plumbing


class _Builder(RuleSetReader):
    """Walks one scenario file's nodes into model objects, recording problems instead of
    stopping; includes and presets open further files with the same collector."""

    # ---------------- scenario

    def scenario(self, node: Node) -> Scenario | None:
        m = self.mapping(
            node, "", SCENARIO_KEYS, required=("name", "phases"), what="a scenario mapping"
        )
        if m is None:
            return None
        name = self.name(m["name"], "name") if "name" in m else None
        description = ""
        if "description" in m:
            description = (self.text(m["description"], "description", nonempty=False) or "").strip()
        seed = self.integer(m["seed"], "seed") if "seed" in m else None
        repeat: int | None = 1
        if "repeat" in m:
            repeat = self.repeat(m["repeat"])
        phases: list[PhaseSpec] = []
        if "phases" in m:
            phases = self.phases(m["phases"])
        rules = self.rule_block(m, "")
        max_duration = None
        if "max_duration" in m:
            max_duration = self.duration(m["max_duration"], "max_duration")
        max_active = None
        if "max_active_faults" in m:
            max_active = self.integer(m["max_active_faults"], "max_active_faults", lo=1)
        abort_if = self.abort_if(m["abort_if"]) if "abort_if" in m else None
        self.check_rule_ids(phases, rules)
        self.check_rule_count(phases, rules)
        return Scenario(
            name=name or "",
            description=description,
            phases=tuple(phases),
            rules=tuple(rules),
            seed=seed,
            repeat=repeat,
            max_duration=max_duration,
            max_active_faults=max_active,
            abort_if=abort_if,
            source=self.doc.source,
            locations=self.col.locations,
        )

    def repeat(self, node: Node) -> int | None:
        if isinstance(node, ScalarNode) and node.value == "forever":
            return None
        v = self.doc.value(node) if isinstance(node, ScalarNode) else None
        if isinstance(v, bool) or not isinstance(v, int):
            self.problem(node, "repeat", f"expected a count or 'forever', got {describe(node)}")
            return 1
        if v < 1:
            self.problem(node, "repeat", f"must be ≥ 1 or 'forever', got {v}")
            return 1
        return v

    def abort_if(self, node: Node) -> AbortIf | None:
        m = self.mapping(node, "abort_if", ABORT_KEYS)
        if m is None:
            return None
        err = p99 = None
        if "error_rate_above" in m:
            err = self.number(m["error_rate_above"], "abort_if.error_rate_above", lo=0, hi=1)
        if "p99_above" in m:
            p99 = self.duration(m["p99_above"], "abort_if.p99_above")
        window = 10.0
        if "window" in m:
            window = self.duration(m["window"], "abort_if.window") or window
        if "error_rate_above" not in m and "p99_above" not in m:
            self.problem(node, "abort_if", "needs error_rate_above or p99_above")
            return None
        return AbortIf(error_rate_above=err, p99_above=p99, window=window)

    def phases(self, node: Node) -> list[PhaseSpec]:
        items = self.seq(node, "phases")
        if items is None:
            return []
        if not items:
            self.problem(node, "phases", "needs at least one phase")
        out: list[PhaseSpec] = []
        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            path = f"phases[{i}]"
            m = self.mapping(item, path, PHASE_KEYS, required=("name", "duration"), what="a phase")
            if m is None:
                continue
            name = self.name(m["name"], f"{path}.name") if "name" in m else None
            if name is not None and name in seen:
                self.problem(
                    m["name"], f"{path}.name", f"duplicate phase name (also phases[{seen[name]}])"
                )
            elif name is not None:
                seen[name] = i
            dur = self.duration(m["duration"], f"{path}.duration") if "duration" in m else None
            rules = self.rule_block(m, path)
            out.append(PhaseSpec(name or f"phase-{i + 1}", dur or 0.0, path, tuple(rules)))
        return out

    def check_rule_ids(self, phases: list[PhaseSpec], scenario_rules: list[RuleSpec]) -> None:
        """Rule ids name a rule in stats and the journal: two rules active together can't share
        one."""
        for scope in [*(p.rules for p in phases), ()]:
            seen: dict[str, str] = {}
            for rule in (*scope, *scenario_rules):
                if rule.id in seen and seen[rule.id] != rule.path:
                    loc = self.col.locations.get(
                        join(rule.path, "name"), Loc(self.doc.source, 0, 0)
                    )
                    self.col.problems.append(
                        Problem(
                            f"duplicate rule name {rule.id!r} (also {seen[rule.id]})",
                            join(rule.path, "name"),
                            loc.file,
                            loc.line,
                            loc.col,
                        )
                    )
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
        m = self.mapping(node, path, RULE_KEYS, what="a rule")
        if m is None:
            return None
        rid = self.name(m["name"], f"{path}.name") if "name" in m else None
        match = MatchSpec()
        if "match" in m:
            fields = self.match_fields(m["match"], f"{path}.match")
            if fields is not None:
                match = self.match_spec(fields[1], f"{path}.match")
        probability: float | Ramp = 1.0
        if "probability" in m:
            probability = self.probability(m["probability"], f"{path}.probability")
        when = self.when(m["when"], f"{path}.when") if "when" in m else None
        counts = {}
        for key in ("first", "every", "after"):
            if key in m:
                counts[key] = self.integer(m[key], f"{path}.{key}", lo=1)
        counting = Counting(**counts) if counts else None
        outcomes: tuple[Outcome, ...] = ()
        if "fault" in m and "outcomes" in m:
            self.problem(
                m["outcomes"], f"{path}.outcomes", "use either fault or outcomes, not both"
            )
        elif "fault" in m:
            faults = self.faults(m["fault"], f"{path}.fault")
            outcomes = (Outcome(1.0, faults),) if faults else ()
        elif "outcomes" in m:
            outcomes = self.outcomes(m["outcomes"], f"{path}.outcomes")
        else:
            self.problem(node, path, "a rule needs a fault (or weighted outcomes)")
        cont = False
        if "continue" in m:
            cont = bool(self.boolean(m["continue"], f"{path}.continue"))
        return RuleSpec(
            id=rid or path,
            path=path,
            match=match,
            probability=probability,
            when=when,
            counting=counting,
            outcomes=outcomes,
            continue_=cont,
        )

    def probability(self, node: Node, path: str) -> float | Ramp:
        if isinstance(node, MappingNode):
            m = self.mapping(node, path, RAMP_KEYS, required=("from", "to"))
            if m is None or "from" not in m or "to" not in m:
                return 1.0
            start = self.number(m["from"], f"{path}.from", lo=0, hi=1)
            end = self.number(m["to"], f"{path}.to", lo=0, hi=1)
            if start is None or end is None:
                return 1.0
            return Ramp(start, end)
        v = self.number(node, path, lo=0, hi=1)
        return 1.0 if v is None else v

    def when(self, node: Node, path: str) -> When | None:
        m = self.mapping(node, path, WHEN_KEYS)
        if m is None:
            return None
        has_inflight, has_rps = "inflight_above" in m, "rps_above" in m
        if has_inflight == has_rps:
            self.problem(node, path, "needs exactly one of inflight_above or rps_above")
            return None
        if "window" in m and not has_rps:
            self.problem(m["window"], f"{path}.window", "window goes with rps_above")
        if has_inflight:
            n = self.integer(m["inflight_above"], f"{path}.inflight_above", lo=0)
            return None if n is None else When(inflight_above=n)
        rps = self.positive_number(m["rps_above"], f"{path}.rps_above")
        window = 5.0
        if "window" in m:
            window = self.duration(m["window"], f"{path}.window") or window
        return None if rps is None else When(rps_above=rps, window=window)

    def outcomes(self, node: Node, path: str) -> tuple[Outcome, ...]:
        items = self.seq(node, path)
        if items is None:
            return ()
        if not items:
            self.problem(node, path, "needs at least one outcome")
        out = []
        for i, item in enumerate(items):
            ipath = f"{path}[{i}]"
            m = self.mapping(item, ipath, OUTCOME_KEYS, required=("weight", "fault"))
            if m is None or "weight" not in m or "fault" not in m:
                continue
            weight = self.positive_number(m["weight"], f"{ipath}.weight")
            faults = self.faults(m["fault"], f"{ipath}.fault")
            if weight is not None and faults:
                out.append(Outcome(weight, faults))
        return tuple(out)

    def faults(self, node: Node, path: str) -> tuple[FaultSpec, ...]:
        from chaosproxy.faults import registry

        known = sorted(registry())
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
            spec = FaultSpec(name, {} if params is None else params, path)
            self.check_params(spec)
            out.append(spec)
        return tuple(out)

    def check_params(self, spec: FaultSpec) -> None:
        """Fault parameters are the fault's own business; asking it now means a file with
        both a misspelt key and a bad parameter reports both at once."""
        from chaosproxy.faults import build

        try:
            build(spec.name, spec.params, spec.path)
        except ConfigError as e:
            for p in e.problems:
                loc = locate(self.col.locations, p.path, self.doc.source)
                self.col.problems.append(Problem(p.message, p.path, loc.file, loc.line, loc.col))
