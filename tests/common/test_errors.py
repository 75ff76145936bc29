"""Errors a user meets: a located problem reads `file:line:col: key: message`, a config error
holds every problem, and what leaves the proxy never shows where its disk keeps a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaosproxy.common.errors import (
    MAX_PROBLEM_CHARS,
    MAX_SHOWN_PROBLEMS,
    ChaosProxyError,
    ConfigError,
    Problem,
    UpstreamError,
    UsageError,
    shown_path,
    shown_problems,
)


def test_a_problem_names_file_line_column_and_key() -> None:
    p = Problem("must be a number", path="phases[0].duration", file="s.yaml", line=4, col=7)
    assert str(p) == "s.yaml:4:7: phases[0].duration: must be a number"
    assert str(Problem("empty file", file="s.yaml")) == "s.yaml: empty file"


def test_a_config_error_keeps_every_problem_and_says_them_all() -> None:
    problems = [Problem("a", file="x.yaml", line=1, col=1), Problem("b", file="x.yaml", line=2)]
    err = ConfigError(problems)
    assert err.problems == problems
    assert str(err).splitlines() == ["x.yaml:1:1: a", "x.yaml:2:0: b"]
    assert ConfigError("plain words").problems == [Problem("plain words")]
    assert ConfigError(problems[0]).problems == [problems[0]]


def test_every_deliberate_error_is_a_chaosproxy_error() -> None:
    for err in (UsageError("x"), ConfigError("x"), UpstreamError("refused", "no")):
        with pytest.raises(ChaosProxyError):
            raise err
    up = UpstreamError("timeout", "no answer in 5s", injected=True)
    assert (up.reason, up.details, up.injected) == ("timeout", "no answer in 5s", True)
    assert str(up) == "timeout: no answer in 5s"


def test_a_shown_path_is_relative_to_the_scenario_directory_or_just_the_name(
    tmp_path: Path,
) -> None:
    inside = tmp_path / "team" / "s.yaml"
    assert shown_path(tmp_path, str(inside)) == "team/s.yaml"
    assert shown_path(tmp_path / "other", str(inside)) == "s.yaml"
    assert shown_path(None, str(inside)) == "s.yaml"
    assert shown_path(tmp_path, "<upload x>") == "<upload x>"
    assert shown_path(tmp_path, "") == ""


def test_shown_problems_are_bounded_in_number_and_length(tmp_path: Path) -> None:
    where = str(tmp_path / "deep" / "s.yaml")
    many = [Problem(f"bad {i}", file=where, line=i + 1) for i in range(MAX_SHOWN_PROBLEMS + 5)]
    shown = shown_problems(many, tmp_path)
    assert len(shown) == MAX_SHOWN_PROBLEMS + 1
    assert shown[0] == "deep/s.yaml:1:0: bad 0"
    assert shown[-1] == "… and 5 more problems"
    assert not any(str(tmp_path) in s for s in shown)
    [long] = shown_problems([Problem("x" * 5000, file=where)], tmp_path)
    assert len(long) == MAX_PROBLEM_CHARS + 1 and long.endswith("…")
