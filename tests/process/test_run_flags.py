"""A run option is declared once (on its `Settings` field) and everything a user meets comes
from that declaration: the flag, CHAOSPROXY_<FLAG>, the default, `--help`, the README's table
and the typed value the proxy reads."""

from __future__ import annotations

import argparse
import functools
import pickle
from dataclasses import dataclass
from pathlib import Path

import pytest
import yarl

from chaosproxy.cli import Parser, build_parser, env_defaults, main
from chaosproxy.cli.common import DefaultsHelpFormatter
from chaosproxy.cli.run import settings_from_args
from chaosproxy.engine.guardrails import DEFAULT_MAX_FAULT_DURATION
from chaosproxy.engine.journal import DEFAULT_KEEP, DEFAULT_MAX_SIZE
from chaosproxy.process.option_values import duration, host_port, http_url
from chaosproxy.process.options import Declared, Option, declared, option, required, switch
from chaosproxy.process.run_flags import (
    BEGIN,
    END,
    RUN_OPTIONS,
    add_run_arguments,
    between_markers,
    markdown,
    settings_of,
    with_table,
)
from chaosproxy.process.settings import Settings
from tests.examples.helpers import run_env_names

README = Path(__file__).resolve().parents[2] / "README.md"
LOCAL = ("--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")

# ---------------------------------------------------------------- a throwaway option

_BIND = Option("--bind", host_port, "127.0.0.1:7000", "where to bind", "test group")


@dataclass(frozen=True)
class Throwaway:
    """Stands for `Settings` with options no real command has: nothing below names it but the
    declarations, so what the test sees can only come from them."""

    target: yarl.URL = required(  # noqa: RUF009 (a dataclasses.Field)
        "--target", http_url, help="where to send", group="test group"
    )
    burst_window: float = option(
        "--burst-window",
        "250ms",
        duration,
        help="how long a burst of requests may last",
        group="test group",
    )
    quiet: bool = switch("--quiet", help="say less", group="other group")
    chatter: bool = switch("--no-chatter", help="do not chatter", group="other group")
    bind_host: str = _BIND.field(0)
    bind_port: int = _BIND.field(1)
    internal: int = 7  # no declaration: never a flag


THROWAWAY = declared(Throwaway)


def throwaway_parser() -> argparse.ArgumentParser:
    p = Parser(prog="throwaway", formatter_class=DefaultsHelpFormatter)
    add_run_arguments(p, THROWAWAY)
    env_defaults(p)
    return p


def throwaway(*argv: str) -> Throwaway:
    return settings_of(throwaway_parser().parse_args(argv), Throwaway, THROWAWAY)


def test_only_declared_fields_become_options() -> None:
    flags = [d.option.flag for d in THROWAWAY]
    assert flags == ["--target", "--burst-window", "--quiet", "--no-chatter", "--bind"]
    assert [d.option.env for d in THROWAWAY] == [
        "CHAOSPROXY_TARGET",
        "CHAOSPROXY_BURST_WINDOW",
        "CHAOSPROXY_QUIET",
        "CHAOSPROXY_CHATTER",
        "CHAOSPROXY_BIND",
    ]


def test_the_flag_sets_the_typed_field() -> None:
    s = throwaway("--target", "http://t:1", "--burst-window", "2s", "--quiet", "--no-chatter")
    assert s == Throwaway(
        target=yarl.URL("http://t:1"), burst_window=2.0, quiet=True, chatter=False
    )
    assert throwaway("--target", "http://t:1", "--bind", "0.0.0.0:99").bind_port == 99


def test_the_declared_default_is_the_dataclass_default_and_the_flags() -> None:
    built = Throwaway(target=yarl.URL("http://t:1"))
    parsed = throwaway("--target", "http://t:1")
    assert parsed == built
    assert (built.burst_window, built.quiet, built.chatter) == (0.25, False, True)
    assert (built.bind_host, built.bind_port, built.internal) == ("127.0.0.1", 7000, 7)


def test_the_variable_sets_the_field_and_the_flag_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAOSPROXY_TARGET", "http://from-env:2")
    monkeypatch.setenv("CHAOSPROXY_BURST_WINDOW", "3s")
    monkeypatch.setenv("CHAOSPROXY_QUIET", "yes")
    monkeypatch.setenv("CHAOSPROXY_CHATTER", "off")
    monkeypatch.setenv("CHAOSPROXY_BIND", "10.0.0.1:8")
    s = throwaway()
    assert s == Throwaway(
        target=yarl.URL("http://from-env:2"),
        burst_window=3.0,
        quiet=True,
        chatter=False,
        bind_host="10.0.0.1",
        bind_port=8,
    )
    assert throwaway("--burst-window", "1s").burst_window == 1.0


def test_a_bad_variable_names_the_variable_and_the_flag(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHAOSPROXY_BURST_WINDOW", "soon")
    with pytest.raises(SystemExit) as e:
        throwaway("--target", "http://t:1")
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "argument --burst-window: from $CHAOSPROXY_BURST_WINDOW:" in err
    assert "expected a duration" in err and "'soon'" in err
    # The command line wins over a bad variable: nothing to complain about then.
    assert throwaway("--target", "http://t:1", "--burst-window", "1s").burst_window == 1.0


def test_help_shows_each_declaration_in_its_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAOSPROXY_QUIET", "1")
    text = " ".join(throwaway_parser().format_help().split())
    assert "test group: --target URL where to send" in text
    assert "--burst-window DURATION how long a burst of requests may last (default: 250ms)" in text
    assert "other group: --quiet say less [from $CHAOSPROXY_QUIET] (default: off)" in text
    assert "--bind HOST:PORT where to bind (default: 127.0.0.1:7000)" in text


def test_the_docs_row_comes_from_the_declaration() -> None:
    rows = markdown(THROWAWAY).splitlines()
    assert rows[2:] == [
        "| **test group** | | | |",
        "| `--target URL` | `CHAOSPROXY_TARGET` | (required) | where to send |",
        "| `--burst-window DURATION` | `CHAOSPROXY_BURST_WINDOW` | `250ms` | how long a burst of "
        "requests may last |",
        "| **other group** | | | |",
        "| `--quiet` | `CHAOSPROXY_QUIET` | off | say less |",
        "| `--no-chatter` | `CHAOSPROXY_CHATTER` | off | do not chatter |",
        "| **test group** | | | |",
        "| `--bind HOST:PORT` | `CHAOSPROXY_BIND` | `127.0.0.1:7000` | where to bind |",
    ]


def test_a_docs_table_is_replaced_between_its_markers_only() -> None:
    doc = f"intro\n{BEGIN}\nold table\n{END}\noutro\n"
    new = with_table(doc, "| new |\n")
    assert new == f"intro\n{BEGIN}\n| new |\n{END}\noutro\n"
    assert between_markers(new) == "| new |\n"


# ---------------------------------------------------------------- the real options


def test_the_readme_table_is_the_generated_one() -> None:
    """Run `python -m chaosproxy.process.run_flags --write README.md` when this fails."""
    assert between_markers(README.read_text(encoding="utf-8")) == markdown()


@functools.cache
def run_help() -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return " ".join(sub.choices["run"].format_help().split())


@pytest.mark.parametrize("d", RUN_OPTIONS, ids=lambda d: d.option.flag)
def test_every_declared_option_is_a_flag_a_variable_a_help_line_and_a_docs_row(
    d: Declared,
) -> None:
    opt = d.option
    assert f"{opt.flag} " in run_help() and " ".join(opt.help.split()) in run_help()
    assert opt.env in run_env_names()
    row = next(r for r in markdown().splitlines() if r.startswith(f"| `{opt.flag}"))
    assert f"| `{opt.env}` |" in row
    if opt.default is not None and opt.parse is not None:
        # The same text as a flag and as a variable gives the same settings.
        base = ["run", "--upstream", "http://127.0.0.1:9"]
        by_flag = settings_from_args(build_parser().parse_args([*base, opt.flag, opt.default]))
        assert by_flag == Settings(upstream=yarl.URL("http://127.0.0.1:9"))


def test_the_variables_are_exactly_the_declared_ones() -> None:
    assert run_env_names() == {d.option.env for d in RUN_OPTIONS}


def test_declared_defaults_agree_with_the_engines_own() -> None:
    s = Settings(upstream=yarl.URL("http://x"))
    assert s.journal_max_size == DEFAULT_MAX_SIZE
    assert s.journal_keep == DEFAULT_KEEP
    assert s.max_fault_duration == DEFAULT_MAX_FAULT_DURATION


def test_settings_from_variables_reach_a_worker_as_plain_values(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # `--workers` pickles Settings to each worker process.
    monkeypatch.setenv("CHAOSPROXY_JOURNAL", str(tmp_path / "j.jsonl"))
    monkeypatch.setenv("CHAOSPROXY_SEND_TIMEOUT", "off")
    monkeypatch.setenv("CHAOSPROXY_JOURNAL_FAULTS", "error,reset")
    args = build_parser().parse_args(["run", "--upstream", "http://127.0.0.1:9", *LOCAL])
    s = settings_from_args(args)
    assert type(s.journal) is str and s.send_timeout is None
    assert s.journal_faults == frozenset({"error", "reset"})
    assert pickle.loads(pickle.dumps(s)) == s


@pytest.mark.parametrize(
    ("variable", "value", "flag"),
    [
        ("CHAOSPROXY_SEND_TIMEOUT", "soon", "--send-timeout"),
        ("CHAOSPROXY_LOG_LEVEL", "verbose", "--log-level"),
        ("CHAOSPROXY_LOG_FORMAT", "xml", "--log-format"),
        ("CHAOSPROXY_WORKERS", "400", "--workers"),
        ("CHAOSPROXY_ADMIN", "nowhere", "--admin"),
        ("CHAOSPROXY_TCP", "pg=1:2:3:4,bad", "--tcp"),  # repeatable: a comma list
    ],
)
def test_a_bad_variable_stops_run_with_one_line_naming_it_and_its_flag(
    variable: str,
    value: str,
    flag: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(variable, value)
    started: list[argparse.Namespace] = []
    monkeypatch.setattr("chaosproxy.cli.run.run_command", started.append)  # never serve
    try:
        code = main(["run", "--upstream", "http://127.0.0.1:9"])
    except SystemExit as e:  # argparse's own exit
        code = e.code  # type: ignore[assignment]
    assert code == 2 and started == []
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert f"argument {flag}: from ${variable}: " in lines[0]
    assert value.rsplit(",", 1)[-1] in lines[0]  # the bad item of a comma list
