"""Hostile YAML is refused before any value is built: alias bombs, deep nesting, huge files —
each as a located problem, through every door (file, upload, experiment file)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chaosproxy.common.errors import ConfigError
from chaosproxy.config.loader import load_scenario_text
from chaosproxy.experiment.spec import load_experiment_text

BOMB = """\
name: bomb
a: &a [x, x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
phases: [{name: p, duration: 1s, rules: [{fault: {error: {status: 500, body: *g}}}]}]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load_scenario_text(text, "s.yaml")
    return [str(p) for p in e.value.problems]


def test_an_alias_bomb_is_refused_with_its_position() -> None:
    assert problems(BOMB) == [
        "s.yaml:6:4: too large: aliases expand this document to more than 100000 values"
    ]


def test_aliases_that_stay_small_still_work() -> None:
    text = """\
name: anchors
common: &rule {match: {path: /api/**}, fault: {error: {status: 503}}}
phases:
  - {name: a, duration: 1s, rules: [*rule]}
  - {name: b, duration: 1s, rules: [*rule]}
"""
    with pytest.raises(ConfigError) as e:  # `common` is no scenario key: located as such
        load_scenario_text(text, "s.yaml")
    assert [p.path for p in e.value.problems] == ["common"]


def test_deep_nesting_is_refused() -> None:
    deep = "[" * 100 + "]" * 100
    found = problems(f"name: deep\nphases: {deep}\n")
    assert (
        found == ["s.yaml:2:9: nested too deeply: more than 64 levels"]
        or "nested too deeply" in found[0]
    )


def test_a_self_referencing_alias_is_refused() -> None:
    found = problems("name: loop\nphases: &p [*p]\n")
    assert found == ["s.yaml:2:9: a YAML alias refers to itself"]


def test_a_huge_file_is_refused_by_size() -> None:
    found = problems("name: big\n" + "#" * (1024 * 1024) + "\nphases: []\n")
    assert found[0].startswith("s.yaml: file too large")


def test_experiment_files_are_bounded_the_same_way() -> None:
    text = BOMB.replace("phases:", "scenario: x\nchecks:")
    with pytest.raises(ConfigError, match="aliases expand"):
        load_experiment_text(text, "e.yaml")


def test_object_tags_build_nothing_and_are_refused_where_they_stand() -> None:
    found = problems("name: !!python/object/apply:os.system [echo pwned]\nphases: []\n")
    assert found == [
        "s.yaml:1:7: YAML tag '!!python/object/apply:os.system' is not allowed: configuration "
        "holds plain text, numbers, true/false, lists and mappings"
    ]


def test_non_utf8_files_are_refused_naming_the_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from chaosproxy.config.loader import load_scenario_file

    f = tmp_path / "latin1.yaml"
    f.write_bytes(b"name: caf\xe9\nphases: []\n")
    with pytest.raises(ConfigError, match=r"latin1\.yaml:1:10: not UTF-8 text"):
        load_scenario_file(f)


@pytest.mark.parametrize("raw", ["9" * 400, "99999999999999h"])
def test_absurd_durations_are_refused_not_infinite(raw: str) -> None:
    found = problems(f"name: x\nphases: [{{name: p, duration: '{raw}'}}]\n")
    assert "too large (at most a year)" in found[0]


def test_absurd_sizes_are_refused_not_a_crash() -> None:
    text = (
        "name: x\nphases: [{name: p, duration: 1s, rules: [{fault: {throttle: {rate: '"
        + "9" * 400
        + "/s'}}}]}]\n"
    )
    with pytest.raises(ConfigError) as e:
        from chaosproxy.cli.scenarios import compile_problems

        sc = load_scenario_text(text, "s.yaml")
        raise ConfigError(compile_problems(sc))
    assert "expected a rate like 16KiB/s" in str(e.value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a named pipe")
def test_a_stream_that_may_not_end_is_refused_before_any_read(tmp_path: Path) -> None:
    """A named pipe could stream without end, and opening one waits for a writer: only regular
    files are read, so it is refused at once (a reload worker never hangs on it)."""
    from chaosproxy.config.located import read_file

    fifo = tmp_path / "endless.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="cannot read: not a regular file"):
        read_file(str(fifo))


def test_a_file_past_the_limit_is_refused_by_its_size(tmp_path: Path) -> None:
    """A sparse 1 GiB file: refused from its size, before a byte of it is read."""
    from chaosproxy.config.located import read_file

    big = tmp_path / "big.yaml"
    with open(big, "wb") as f:
        f.truncate(1 << 30)
    with pytest.raises(ConfigError, match="file too large"):
        read_file(str(big))


def test_a_directory_is_named_as_one(tmp_path: Path) -> None:
    from chaosproxy.config.located import read_file

    with pytest.raises(ConfigError, match="cannot read: Is a directory"):
        read_file(str(tmp_path))
