"""`proxy.args` checked as `chaosproxy run` would read them, at `validate` time: a flag the
runner passes itself (`model.RUNNER_FLAGS`), a flag `run` does not know, or a value it would
refuse is a located problem, not a proxy that fails 15 s into a run.

The parser is `run`'s own (`process.run_flags.add_run_arguments`), so the two cannot drift."""

from __future__ import annotations

import re
from typing import NoReturn

from chaosproxy.experiment.model import RUNNER_FLAGS


def run_args_problems(args: list[str]) -> list[tuple[int | None, str]]:
    """What is wrong with `proxy.args` as `chaosproxy run` would read them: (index, message).
    A flag the runner passes itself is refused (two values for one flag: the last would win
    and the run would wait on a proxy that is not where it looks); so is a flag `run` does not
    know, or a value it would refuse, so the mistake shows at `validate`, not 15 s into a run."""
    import argparse

    from chaosproxy.config.located import suggest
    from chaosproxy.process.run_flags import add_run_arguments

    class Refused(Exception):
        pass

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:
            raise Refused(message)

    parser = Parser(prog="chaosproxy run", add_help=False)
    add_run_arguments(parser)
    flags = sorted(o for a in parser._actions for o in a.option_strings)
    out: list[tuple[int | None, str]] = []
    for i, arg in enumerate(args):
        if not arg.startswith("-") or arg == "-" or _is_number(arg):
            continue
        given = arg.split("=", 1)[0]
        exact = given if given in flags else None
        prefixed = [f for f in flags if f.startswith(given)] if given.startswith("--") else []
        flag = exact or (prefixed[0] if len(prefixed) == 1 else None)
        if flag is None and len(prefixed) > 1:
            out.append((i, f"{given} is ambiguous: {', '.join(prefixed)}"))
        elif flag is None:
            mine = [f for f in flags if f not in RUNNER_FLAGS]
            hint = suggest(given, mine) or " (chaosproxy run --help lists them)"
            out.append((i, f"chaosproxy run has no flag {given!r}{hint}"))
        elif flag in RUNNER_FLAGS:
            out.append((i, f"{flag} is the runner's own flag: {RUNNER_FLAGS[flag]}"))
    if out:
        return out
    try:
        parser.parse_args(["--upstream", "http://127.0.0.1:1", *args])
    except Refused as e:
        # "argument --pool-size: expected ...": located at that flag when it is named
        named = re.match(r"argument (--[\w-]+)", str(e))
        at = next(
            (
                i
                for i in range(len(args) - 1, -1, -1)
                if named and args[i].split("=", 1)[0] == named.group(1)
            ),
            None,
        )
        return [(at, f"chaosproxy run would refuse this: {e}")]
    return []


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
