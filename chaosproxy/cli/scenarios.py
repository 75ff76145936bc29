"""`chaosproxy validate`, `chaosproxy scenarios [show NAME]` and `chaosproxy schema`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chaosproxy.common.errors import ConfigError, Problem

if TYPE_CHECKING:
    from chaosproxy.config.model import Scenario


def register(sub: Any) -> None:
    v = sub.add_parser(
        "validate",
        help="check scenario files (structure and fault parameters)",
        description="Check scenario files. Exit 0 when all are valid; otherwise print every "
        "problem as file:line:col: key.path: message and exit 2.",
    )
    v.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="scenario file, bundled NAME, or directory (every *.yaml/*.yml file in it)",
    )
    v.add_argument("--scenario-dir", type=Path, help="where a NAME is looked up")
    v.set_defaults(func=validate_command)

    s = sub.add_parser(
        "scenarios",
        help="list scenarios, or show one with includes and presets resolved",
        description="List the scenarios of a directory (default: the bundled ones).",
    )
    s.add_argument("--dir", type=Path, help="scenario directory (default: bundled)")
    actions = s.add_subparsers(dest="action", metavar="ACTION")
    show = actions.add_parser("show", help="print the effective scenario as YAML")
    show.add_argument("name", metavar="NAME|FILE")
    show.add_argument("--dir", dest="show_dir", type=Path, help="scenario directory")
    s.set_defaults(func=scenarios_command)

    sc = sub.add_parser(
        "schema",
        help="print the JSON Schema of scenario files (for editors)",
        description="Print the JSON Schema (draft 2020-12) of scenario files.",
    )
    which = sc.add_mutually_exclusive_group()
    which.add_argument(
        "--rule-set", action="store_true", help="the schema of an included rule-set file instead"
    )
    which.add_argument(
        "--experiment", action="store_true", help="the schema of experiment files instead"
    )
    sc.set_defaults(func=schema_command)


# ---------------------------------------------------------------- validate


def check_scenario_file(path: Path) -> tuple[Any, list[Problem]]:
    """Load, then build every fault (through the engine's compile step when available)."""
    from chaosproxy.config.loader import load_scenario_file

    try:
        scenario = load_scenario_file(path)
    except ConfigError as e:
        return None, e.problems
    return scenario, compile_problems(scenario)


def compile_problems(scenario: Scenario) -> list[Problem]:
    """What only compiling finds (matchers, weights), located by the engine's compile step."""
    from chaosproxy.engine.compile import compile_scenario

    try:
        compile_scenario(scenario)
    except ConfigError as e:
        return e.problems
    return []


def summary(scenario: Any) -> str:
    from chaosproxy.config.dump import human_duration

    n = len(scenario.phases)
    parts = [scenario.name, f"{n} phase{'s' if n != 1 else ''}"]
    if scenario.repeat is None:
        parts.append("repeats forever")
    elif scenario.repeat != 1:
        parts.append(f"repeated {scenario.repeat} times")
    parts.append(f"{human_duration(scenario.total_duration)} total")
    return ", ".join(parts)


def validate_command(args: argparse.Namespace) -> int:
    from chaosproxy.config.loader import resolve_scenario, scenario_files

    if args.scenario_dir is not None and not args.scenario_dir.is_dir():
        print(
            f"chaosproxy validate: error: --scenario-dir: no such directory: {args.scenario_dir}",
            file=sys.stderr,
        )
        return 2
    failed = False
    names: list[str] = []
    for name in args.files:
        if Path(name).is_dir():
            found = scenario_files(Path(name))
            if not found:
                print(
                    f"{name}: a directory without scenario files (*.yaml, *.yml)", file=sys.stderr
                )
                failed = True
            names.extend(str(p) for p in found)
        else:
            names.append(name)
    for name in names:
        try:
            path = resolve_scenario(name, args.scenario_dir)
        except ConfigError as e:
            for p in e.problems:
                print(p if p.file != "<input>" else f"{name}: {p.message}", file=sys.stderr)
            failed = True
            continue
        scenario, problems = check_scenario_file(path)
        if problems:
            failed = True
            for p in problems:
                print(p, file=sys.stderr)
        else:
            print(f"ok: {path} ({summary(scenario)})")
    return 2 if failed else 0


# ---------------------------------------------------------------- scenarios


def first_line(text: str, limit: int = 80) -> str:
    """The description's first line; a long one is cut to its first sentence or clause."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    if len(line) > limit:
        cuts = [i for i in (line.find(". "), line.find(": ")) if i > 0]
        if cuts:
            line = line[: min(cuts)] + "."
    if len(line) > limit:
        line = line[: limit - 1].rstrip() + "…"
    return line


def scenarios_command(args: argparse.Namespace) -> int:
    from chaosproxy.config.dump import human_duration
    from chaosproxy.config.loader import bundled_scenario_dir, load_scenario_file, scenario_files

    if args.action == "show":
        return show_command(args.name, args.show_dir or args.dir)
    directory = args.dir if args.dir is not None else bundled_scenario_dir()
    if not directory.is_dir():
        print(f"chaosproxy scenarios: error: no such directory: {directory}", file=sys.stderr)
        return 2
    rows: list[tuple[str, str, str]] = []
    failed = False
    for path in scenario_files(directory):
        try:
            s = load_scenario_file(path)
        except ConfigError as e:
            failed = True
            for p in e.problems:
                print(p, file=sys.stderr)
            continue
        rows.append((s.name, human_duration(s.total_duration), first_line(s.description)))
    if not rows and not failed:
        print(f"no scenarios in {directory}", file=sys.stderr)
    width = max((len(r[0]) for r in rows), default=0)
    dwidth = max((len(r[1]) for r in rows), default=0)
    for name, total, desc in rows:
        print(f"{name:<{width}}  {total:>{dwidth}}  {desc}".rstrip())
    return 2 if failed else 0


def show_command(name: str, directory: Path | None) -> int:
    from chaosproxy.config.dump import scenario_to_yaml
    from chaosproxy.config.loader import resolve_scenario

    try:
        path = resolve_scenario(name, directory)
    except ConfigError as e:
        for p in e.problems:
            print(p if p.file != "<input>" else f"{name}: {p.message}", file=sys.stderr)
        return 2
    scenario, problems = check_scenario_file(path)
    if problems:
        for p in problems:
            print(p, file=sys.stderr)
        return 2
    print(f"# {path}: effective scenario (includes and presets resolved)")
    sys.stdout.write(scenario_to_yaml(scenario))
    return 0


# ---------------------------------------------------------------- schema


def schema_command(args: argparse.Namespace) -> int:
    from chaosproxy.config.schema import ruleset_schema, scenario_schema

    if args.experiment:
        from chaosproxy.experiment.schema import experiment_schema

        schema = experiment_schema()
    else:
        schema = ruleset_schema() if args.rule_set else scenario_schema()
    print(json.dumps(schema, indent=2, ensure_ascii=False))
    return 0
