"""The flags of `chaosproxy run`, made from the options declared on `Settings`
(chaosproxy/process/settings.py): the argparse arguments in their `--help` groups, the typed
`Settings` from parsed arguments, and the markdown table of run options in the README.

Nothing here names a particular option: a new one is declared on `Settings` and appears on the
command line, in CHAOSPROXY_<FLAG>, in `--help` and (after `--write README.md`) in the docs.

    python -m chaosproxy.process.run_flags --markdown          # print the table
    python -m chaosproxy.process.run_flags --write README.md   # replace it between the markers
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from chaosproxy.process.option_values import METAVARS, OneOf, argtype
from chaosproxy.process.options import Declared, Option, construct, declared
from chaosproxy.process.settings import Settings

S = TypeVar("S")

RUN_OPTIONS = declared(Settings)


def metavar(opt: Option[Any]) -> str | None:
    if opt.metavar:
        return opt.metavar
    if isinstance(opt.parse, OneOf):
        return "{" + ",".join(opt.parse.words) + "}"
    return METAVARS.get(opt.parse)


def add_run_arguments(
    p: argparse.ArgumentParser, options: Sequence[Declared] = RUN_OPTIONS
) -> None:
    """One argument per declared option, in its group (groups in the order first declared)."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for d in options:
        opt = d.option
        if opt.group not in groups:
            groups[opt.group] = p.add_argument_group(opt.group)
        g = groups[opt.group]
        if opt.parse is None:
            g.add_argument(
                opt.flag,
                dest=opt.dest,
                action="store_false" if opt.negated else "store_true",
                help=opt.help,
            )
            continue
        if opt.repeat:
            g.add_argument(
                opt.flag,
                dest=opt.dest,
                type=argtype(opt.parse),
                action="append",
                metavar=metavar(opt),
                help=opt.help,
            )
            continue
        g.add_argument(
            opt.flag,
            dest=opt.dest,
            type=argtype(opt.parse),
            default=opt.default,  # text, parsed by `type` as a value given would be
            required=opt.required,
            metavar=metavar(opt),
            help=opt.help,
        )


def settings_of(
    args: argparse.Namespace, cls: Callable[..., S], options: Sequence[Declared] = RUN_OPTIONS
) -> S:
    """The typed settings from parsed arguments (each already checked by its parser)."""
    return construct(cls, list(options), vars(args))


# ---------------------------------------------------------------- the docs table

BEGIN = "<!-- run-options:begin: python -m chaosproxy.process.run_flags --write README.md -->"
END = "<!-- run-options:end -->"

_FLAG = re.compile(r"(?<![\w`-])(--[a-z][a-z0-9-]*)")
_DOC = re.compile(r"(?<![\w/])(docs/[\w-]+\.md(?:#[\w-]+)?)")


def _cell(text: str) -> str:
    """Help text as a table cell: flags in code, docs pages as links, no stray `|`."""
    text = _FLAG.sub(r"`\1`", text.replace("|", "\\|"))
    return _DOC.sub(lambda m: f"[{m[1].partition('#')[0]}]({m[1]})", text)


def shown_default(opt: Option[Any]) -> str:
    if opt.required:
        return "(required)"
    if opt.parse is None:
        return "off"
    return f"`{opt.default}`" if opt.default is not None else "none"


def markdown(options: Sequence[Declared] = RUN_OPTIONS) -> str:
    """The table of run options: one row per option, a bold row per `--help` group."""
    lines = ["| flag | variable | default | meaning |", "|---|---|---|---|"]
    group = None
    for d in options:
        opt = d.option
        if opt.group != group:
            group = opt.group
            lines.append(f"| **{group}** | | | |")
        mv = metavar(opt)
        flag = f"`{opt.flag} {mv}`" if mv else f"`{opt.flag}`"
        flag = flag.replace("|", "\\|")  # GitHub tables split on a pipe even inside code
        lines.append(f"| {flag} | `{opt.env}` | {shown_default(opt)} | {_cell(opt.help)} |")
    return "\n".join(lines) + "\n"


def between_markers(doc: str) -> str:
    """What a document holds between the markers (ValueError when it has none)."""
    start, end = doc.index(BEGIN) + len(BEGIN), doc.index(END)
    return doc[start:end].strip("\n") + "\n"


def with_table(doc: str, table: str) -> str:
    start, end = doc.index(BEGIN) + len(BEGIN), doc.index(END)
    return f"{doc[:start]}\n{table}{doc[end:]}"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m chaosproxy.process.run_flags", description="The table of run options."
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--markdown", action="store_true", help="print the table")
    what.add_argument("--write", metavar="FILE", help="replace the table between its markers")
    args = p.parse_args(argv)
    if args.markdown:
        sys.stdout.write(markdown())
        return 0
    path = Path(args.write)
    path.write_text(with_table(path.read_text(encoding="utf-8"), markdown()), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
