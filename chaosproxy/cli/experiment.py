"""`chaosproxy experiment run | validate | list | report | compare`.

Exit codes of `run`: 0 every check passed; 1 a check failed, was inconclusive, or the run was
interrupted; 2 the experiment file is invalid or the experiment could not start.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

from chaosproxy.cli.common import host_port, positive_int


def register(sub: Any) -> None:
    from chaosproxy.cli import env_defaults

    exp = sub.add_parser(
        "experiment",
        help="replay a scenario under Locust load and judge whether the system recovered",
        description="Experiments: a scenario, load, and checks that decide PASS / FAIL / "
        "INCONCLUSIVE (see docs/experiments.md).",
    )
    ops = exp.add_subparsers(dest="exp_op", metavar="OPERATION", required=True)

    run = ops.add_parser("run", help="run an experiment file (or a bundled experiment's name)")
    run.add_argument("file", metavar="FILE")
    run.add_argument("--out", type=Path, help="results directory (default reports/NAME-TIME/)")
    run.add_argument(
        "--workers",
        type=positive_int,
        default=0,
        help="Locust workers (distributed mode on this machine: one master, N workers)",
    )
    run.add_argument(
        "--remote-workers",
        type=positive_int,
        default=0,
        metavar="N",
        help="also wait for N Locust workers on other hosts (they connect to --master-bind)",
    )
    run.add_argument(
        "--master-bind",
        type=host_port,
        metavar="HOST:PORT",
        help="where the Locust master listens for workers (default 127.0.0.1, a free port)",
    )
    run.add_argument("--seed", type=int, help="seed for the scenario and the load's choices")
    run.add_argument("--token", help="admin bearer token for `admin:` sidecars")
    env_defaults(run)
    run.set_defaults(func=run_command)

    val = ops.add_parser("validate", help="check an experiment file and the scenario it names")
    val.add_argument("file", metavar="FILE")
    val.set_defaults(func=validate_command)

    lst = ops.add_parser("list", help="the bundled experiments")
    lst.set_defaults(func=list_command)

    rep = ops.add_parser("report", help="write report.html, report.md and junit.xml again")
    rep.add_argument("dir", type=Path, metavar="DIR")
    rep.set_defaults(func=report_command)

    jdg = ops.add_parser(
        "judge",
        help="judge a saved run again (same or edited checks) without rerunning it; "
        "exit 0 on PASS, 1 otherwise",
    )
    jdg.add_argument("dir", type=Path, metavar="DIR", help="a run's results directory")
    jdg.add_argument(
        "--experiment",
        metavar="FILE",
        help="judge with this experiment file's checks (default: the file the run used)",
    )
    jdg.add_argument("--json", action="store_true", help="print the verdict as JSON")
    jdg.add_argument(
        "--out", type=Path, metavar="DIR", help="also write results.json and the reports there"
    )
    jdg.set_defaults(func=judge_command)

    cmp = ops.add_parser("compare", help="what changed between two runs; exit 1 on PASS -> FAIL")
    cmp.add_argument("a", type=Path, metavar="RUN_A")
    cmp.add_argument("b", type=Path, metavar="RUN_B")
    cmp.add_argument("--markdown", action="store_true", help="print Markdown instead")
    cmp.set_defaults(func=compare_command)


def bundled_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "data" / "experiments"


def resolve(file: str) -> Path:
    """A path as given, else a bundled experiment's name."""
    p = Path(file)
    if p.exists() or "/" in file or file.endswith((".yaml", ".yml")):
        return p
    candidate = bundled_dir() / f"{file}.yaml"
    return candidate if candidate.is_file() else p


def _load(file: str) -> Any:
    from chaosproxy.common.errors import ConfigError
    from chaosproxy.experiment.spec import load_experiment_file
    from chaosproxy.experiment.spec_scenario import resolve_experiment_scenario

    try:
        exp = load_experiment_file(resolve(file))
        scenario = resolve_experiment_scenario(exp)
    except ConfigError as e:
        for p in e.problems:
            print(p, file=sys.stderr)
        return None
    return exp, scenario


def validate_command(args: argparse.Namespace) -> int:
    loaded = _load(args.file)
    if loaded is None:
        return 2
    exp, scenario = loaded
    phases = " -> ".join(f"{p.name} ({p.duration:g}s)" for p in scenario.phases)
    print(f"ok: {exp.name}: scenario {scenario.name}: {phases}; {len(exp.checks)} check(s)")
    return 0


def list_command(args: argparse.Namespace) -> int:
    from chaosproxy.common.errors import ConfigError
    from chaosproxy.experiment.spec import load_experiment_file

    paths = sorted(bundled_dir().glob("*.yaml"))
    width = max((len(p.stem) for p in paths), default=0)
    for path in paths:
        try:
            exp = load_experiment_file(path)
            first = " ".join(exp.description.split())
            if len(first) > 90:
                first = first[:89].rsplit(" ", 1)[0] + " …"
            print(f"{path.stem:<{width}}  {first}")
        except ConfigError:
            print(f"{path.stem:<{width}}  (needs its environment: see the file)")
    return 0


def run_command(args: argparse.Namespace) -> int:
    from chaosproxy.experiment.processes import SetupError
    from chaosproxy.experiment.run_state import RunOptions
    from chaosproxy.experiment.runner import run_experiment

    loaded = _load(args.file)
    if loaded is None:
        return 2
    exp, _ = loaded
    import importlib.util

    if importlib.util.find_spec("locust") is None:  # say so now, not when Locust fails to start
        print(
            "chaosproxy experiment: Locust is not installed here; experiments need the "
            "loadtest extra: pip install 'chaosproxy[loadtest]'",
            file=sys.stderr,
        )
        return 2
    command = "chaosproxy " + " ".join(shlex.quote(a) for a in sys.argv[1:])

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        opts = RunOptions(
            out=args.out,
            workers=args.workers,
            remote_workers=args.remote_workers,
            master_bind=args.master_bind,
            seed=args.seed,
            token=args.token,
            command=command,
            stop=stop,
        )
        try:
            outcome = await run_experiment(exp, opts)
        except SetupError as e:
            print(f"chaosproxy experiment: cannot run {exp.name}: {e}", file=sys.stderr)
            return 2
        if outcome.results and outcome.results.get("interrupted"):
            print("interrupted: results written for what was collected", file=sys.stderr)
        return outcome.exit_code

    return asyncio.run(main())


def report_command(args: argparse.Namespace) -> int:
    if not (args.dir / "results.json").is_file():
        print(f"chaosproxy experiment report: no results.json in {args.dir}", file=sys.stderr)
        return 2
    from chaosproxy.experiment.report import write_reports

    for path in write_reports(args.dir):
        print(path)
    return 0


def compare_command(args: argparse.Namespace) -> int:
    for d in (args.a, args.b):
        if not (d / "results.json").is_file():
            print(f"chaosproxy experiment compare: no results.json in {d}", file=sys.stderr)
            return 2
    from chaosproxy.experiment.report.compare import compare_runs

    comparison = compare_runs(args.a, args.b)
    print(comparison.markdown() if args.markdown else comparison.text())
    return int(comparison.exit_code)


def judge_command(args: argparse.Namespace) -> int:
    import json

    from chaosproxy.common.errors import ConfigError
    from chaosproxy.experiment import rejudge
    from chaosproxy.experiment.results import checks_table, rejudged_document, write_json
    from chaosproxy.experiment.spec import load_experiment_file, load_experiment_text

    try:
        saved = rejudge.load(args.dir)
        if args.experiment:
            exp = load_experiment_file(resolve(args.experiment))
        else:
            about = saved.doc.get("experiment") or {}
            text = about.get("text") if isinstance(about, dict) else None
            if not isinstance(text, str) or not text:
                print(
                    f"chaosproxy experiment judge: {args.dir}/results.json keeps no experiment "
                    "text: pass --experiment FILE",
                    file=sys.stderr,
                )
                return 2
            exp = load_experiment_text(text, str(about.get("file") or "<saved run>"))
    except ConfigError as e:
        for p in e.problems:
            print(p, file=sys.stderr)
        return 2
    except rejudge.SavedRunError as e:
        print(f"chaosproxy experiment judge: {e}", file=sys.stderr)
        return 2
    verdict = rejudge.judge_run(exp, saved)
    doc = rejudged_document(saved.doc, exp, verdict)
    if args.out:
        from chaosproxy.experiment.report import write_reports

        args.out.mkdir(parents=True, exist_ok=True)
        about = saved.doc.get("run")
        first = saved.rows[0].t if saved.rows else 0.0
        started = float(about.get("started") or first) if isinstance(about, dict) else first
        rejudge.write_rows(args.out, saved.rows, exp, started)  # the report draws its charts
        write_json(args.out / "results.json", doc)
        write_reports(args.out)
    if args.json:
        keep = ("verdict", "reasons", "confidence", "false_alarm", "checks")
        print(json.dumps({k: doc[k] for k in keep}, indent=2, ensure_ascii=False))
    else:
        halted = doc.get("halted")
        print(checks_table(verdict, halted if isinstance(halted, dict) else None))
    return 0 if verdict.status == "PASS" else 1
