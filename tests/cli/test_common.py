"""What every subcommand's `--help` and bad arguments look like: defaults shown once, switches
shown as off, no flag name split at its dashes, and a bad value one line naming its flag."""

from __future__ import annotations

import argparse

import pytest

from chaosproxy.cli.common import DefaultsHelpFormatter, duration, host_port, positive_int, size


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="x", formatter_class=DefaultsHelpFormatter, exit_on_error=False
    )
    p.add_argument("--grace", type=duration, default=30.0, help="how long to drain")
    p.add_argument("--rate", type=float, default=2.5, help="requests per second")
    p.add_argument("--ratio", default="50%", help="a share")
    p.add_argument("--quiet", action="store_true", help="say less")
    p.add_argument("--token", default=None, help="a token; none means open")
    p.add_argument("--keep", type=int, default=3, help="files kept (default: three)")
    p.add_argument("--client-id-header", help=" or ".join(["X-Chaos-Client-Id"] * 12))
    p.add_argument("--listen", type=host_port, default=("0.0.0.0", 8080))
    p.add_argument("--workers", type=positive_int, default=1)
    p.add_argument("--max-body", type=size, default=1024)
    return p


def help_text() -> str:
    return " ".join(parser().format_help().split())


def test_defaults_are_shown_once_and_whole_floats_without_a_point() -> None:
    text = help_text()
    assert "how long to drain (default: 30)" in text
    assert "requests per second (default: 2.5)" in text
    assert "a share (default: 50%)" in text
    assert "say less (default: off)" in text
    assert "a token; none means open --keep" in text  # no `(default: None)`
    assert "files kept (default: three)" in text and "(default: 3)" not in text


def test_long_help_is_wrapped_at_spaces_never_inside_a_dashed_word(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    out = parser().format_help()
    assert out.count("X-Chaos-Client-Id") == 12  # each one whole on its line


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--listen", "db:port"], "argument --listen: expected HOST:PORT, got 'db:port'"),
        (["--workers", "0"], "argument --workers: expected a number > 0, got '0'"),
    ],
)
def test_a_bad_value_is_one_line_naming_its_flag(argv: list[str], message: str) -> None:
    with pytest.raises(argparse.ArgumentError) as caught:
        parser().parse_args(argv)
    assert str(caught.value) == message


def test_values_are_typed() -> None:
    args = parser().parse_args(
        ["--grace", "250ms", "--listen", "127.0.0.1:9", "--max-body", "2KiB"]
    )
    assert (args.grace, args.listen, args.max_body) == (0.25, ("127.0.0.1", 9), 2048)
