"""Command-line entry point. Each subcommand lives in its own module and imports lazily."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from chaosproxy import __version__, native

# Subcommand modules, each with `register(subparsers)`; they set `func(args) -> int`.
COMMANDS = ("run", "demo", "scenarios", "ctl", "experiment")


class Parser(argparse.ArgumentParser):
    """Bad input: one line on stderr, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


class _EnvAppendAction(argparse._AppendAction):
    """A repeatable option whose default came from the environment: values given on the command
    line replace that default instead of adding to it (`ctl --admin URL` inside the sidecar image,
    where CHAOSPROXY_ADMIN is set for `run`, must call URL only)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if getattr(namespace, self.dest, None) is self.default:
            setattr(namespace, self.dest, [])
        super().__call__(parser, namespace, values, option_string)


BOOLEANS = "1/0, true/false, yes/no, on/off"


def env_bool(raw: str) -> bool | None:
    """The usual spellings of a boolean, case-insensitive; None for anything else."""
    v = raw.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    return None


class EnvText(str):
    """A default read from CHAOSPROXY_<FLAG>: argparse parses it like a value given on the
    command line, and an error then names the variable as well as the flag."""

    variable: str


def _from_env(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(value: str) -> Any:
        try:
            return convert(str(value))  # a plain str: nothing downstream sees EnvText
        except (argparse.ArgumentTypeError, ValueError, TypeError) as e:
            if not isinstance(value, EnvText):
                raise
            message = str(e) or f"invalid value {value!r}"
            raise argparse.ArgumentTypeError(f"from ${value.variable}: {message}") from None

    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


def env_defaults(parser: argparse.ArgumentParser) -> None:
    """Every `--flag` of `parser` also reads CHAOSPROXY_<FLAG> (`env_name`) from the
    environment. Only a default: a value given on the command line wins, and a bad variable
    stops only the command it is for, with a message naming it."""
    from chaosproxy.process.options import env_name

    for action in parser._actions:
        if not action.option_strings or action.dest in ("help",):
            continue
        name = env_name(action.dest)
        raw = os.environ.get(name)
        if raw is None:
            continue
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            value = env_bool(raw)
            if value is None:
                # Reported when this command runs (`main`), not while other commands register.
                parser.set_defaults(env_error=f"${name}: {raw!r} is not a boolean ({BOOLEANS})")
                continue
            action.default = value
        elif isinstance(action, argparse._AppendAction):
            # argparse never converts a list default: each item is parsed here, and a bad one
            # is reported when this command runs, as for a boolean.
            items: list[Any] = [v for v in raw.split(",") if v]
            if callable(action.type):
                try:
                    items = [action.type(v) for v in items]
                except (argparse.ArgumentTypeError, ValueError, TypeError) as e:
                    flag = action.option_strings[0]
                    parser.set_defaults(env_error=f"argument {flag}: from ${name}: {e}")
                    continue
            action.default = items
            action.__class__ = _EnvAppendAction
        else:
            text = EnvText(raw)
            text.variable = name
            action.default = text
            action.type = _from_env(action.type if callable(action.type) else str)
        action.required = False
        if action.help and "$" not in action.help:
            action.help += f" [from ${name}]"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="chaosproxy", description="Fault-injection HTTP proxy for chaos testing.")
    parser.add_argument(
        "--version", action="version", version=f"chaosproxy {__version__}, {native.state}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    import importlib

    for name in COMMANDS:
        importlib.import_module(f"chaosproxy.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    if getattr(args, "env_error", None):
        print(f"{parser.prog} {args.command}: error: {args.env_error}", file=sys.stderr)
        return 2
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _closed_pipe()


SIGPIPE_EXIT = 141  # 128 + SIGPIPE: what a shell shows for a command a closed pipe ended


def _closed_pipe() -> int:
    """The reader went away (`... | head`): stop quietly, as a C tool killed by SIGPIPE would.
    stdout points at /dev/null from here on, so the interpreter's final flush of what is still
    buffered cannot raise again (the Python docs' recipe, `signal` module notes)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no file descriptor behind stdout (tests, embedding)
        pass
    return SIGPIPE_EXIT
