"""`chaosproxy experiment validate | list | report | compare` as a user types them: a bundled
experiment by name, a bad file told by file, line and key with exit 2, and a directory that
holds no run refused before anything is read. (`run` and `judge`: tests/experiment/.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from chaosproxy.cli import main
from chaosproxy.cli.experiment import bundled_dir

BUNDLED = sorted(p.stem for p in bundled_dir().glob("*.yaml"))


def test_list_names_every_bundled_experiment_with_a_line_of_description(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["experiment", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sorted(line.split()[0] for line in lines) == BUNDLED
    assert all(len(line.split(None, 1)) == 2 for line in lines)  # each has its description
    assert all(len(line.split(None, 1)[1]) <= 92 for line in lines)  # cut to one short line


def test_validate_takes_a_bundled_experiment_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["experiment", "validate", "demo-failover"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: demo-failover: scenario ")
    assert "check(s)" in out


def test_validate_of_a_bad_file_names_file_line_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = (bundled_dir() / "demo-failover.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.replace("  users: 10\n", "  users: 10\n  userz: 3\n"))
    (tmp_path / "scenarios").symlink_to(bundled_dir() / "scenarios")
    assert main(["experiment", "validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:" in err and "userz" in err
    line = next(i for i, text in enumerate(bad.read_text().splitlines(), 1) if "userz" in text)
    assert f"bad.yaml:{line}:" in err
    assert "Traceback" not in err


def test_validate_of_a_missing_file_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["experiment", "validate", "no-such-experiment"]) == 2
    assert "no-such-experiment: cannot read" in capsys.readouterr().err


def test_report_and_compare_refuse_a_directory_without_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["experiment", "report", str(tmp_path)]) == 2
    assert f"no results.json in {tmp_path}" in capsys.readouterr().err
    assert main(["experiment", "compare", str(tmp_path), str(tmp_path)]) == 2
    assert f"no results.json in {tmp_path}" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing written
