"""`chaosproxy validate`, `scenarios`, `scenarios show` and `schema` through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from chaosproxy.cli import main
from chaosproxy.config.loader import bundled_scenario_dir, load_scenario_text

GOOD = """\
name: good
description: |
  First line of the story.
  More detail here.
repeat: 2
phases:
  - name: calm
    duration: 30s
  - name: storm
    duration: 1m
    rules:
      - match: {path: /api/*}
        fault: {error: {status: 502}}
"""

BAD = """\
name: bad
phases:
  - name: a
    duration: 1s
    rules:
      - probabilty: 0.5
        fault: {error: {status: 200}}
  - name: a
    duration: 1s
"""


@pytest.fixture
def good(tmp_path: Path) -> Path:
    f = tmp_path / "good.yaml"
    f.write_text(GOOD)
    return f


@pytest.fixture
def bad(tmp_path: Path) -> Path:
    f = tmp_path / "bad.yaml"
    f.write_text(BAD)
    return f


def test_validate_valid_file_prints_summary_and_exits_0(
    good: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(good)]) == 0
    assert capsys.readouterr().out == (f"ok: {good} (good, 2 phases, repeated 2 times, 3m total)\n")


def test_validate_prints_every_problem_located_and_exits_2(
    bad: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{bad}:6:9: phases[0].rules[0].probabilty: unknown key; did you mean probability?",
        f"{bad}:7:25: phases[0].rules[0].fault.error.status: must be ≥ 400, got 200",
        f"{bad}:8:11: phases[1].name: duplicate phase name (also phases[0])",
    ]


def test_validate_reports_fault_parameter_errors_with_location(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "params.yaml"
    f.write_text(GOOD.replace("status: 502", "status: 200"))
    assert main(["validate", str(f)]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"{f}:13:25: phases[1].rules[0].fault.error.status: ")
    assert "200" in line


def test_validate_checks_every_file_and_fails_if_one_fails(
    good: Path, bad: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(good), str(bad)]) == 2
    out = capsys.readouterr()
    assert out.out.startswith(f"ok: {good}")
    assert str(bad) in out.err


def test_validate_accepts_a_bundled_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "post-deploy-breakage"]) == 0
    assert "post-deploy-breakage, 3 phases" in capsys.readouterr().out


def test_validate_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert "no such scenario file" in capsys.readouterr().err


def test_scenarios_lists_name_duration_and_first_description_line(
    good: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scenarios", "--dir", str(good.parent)]) == 0
    assert capsys.readouterr().out == "good  3m  First line of the story.\n"


def test_scenarios_lists_the_bundled_scenarios_by_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["scenarios"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == sorted(p.stem for p in bundled_scenario_dir().glob("*.yaml"))


def test_scenarios_show_prints_effective_scenario_that_loads_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "inc.yaml").write_text("rules:\n  - name: inc\n    fault: {error: {}}\n")
    f = tmp_path / "s.yaml"
    f.write_text(GOOD + "    include: [inc.yaml]\n")
    assert main(["scenarios", "show", str(f)]) == 0
    out = capsys.readouterr().out
    assert "include" not in yaml.safe_load(out)["phases"][1]
    again = load_scenario_text(out)
    assert [r.id for r in again.phases[1].rules] == ["phases[1].rules[0]", "inc"]
    assert again.repeat == 2


def test_scenarios_show_unknown_name_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenarios", "show", "post-deploy-brekage"]) == 2
    assert "did you mean post-deploy-breakage?" in capsys.readouterr().err


def test_schema_is_valid_json_schema_that_accepts_a_scenario(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load(GOOD), schema, cls=jsonschema.Draft202012Validator)


def test_schema_rejects_a_misspelt_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(yaml.safe_load(BAD), schema, cls=jsonschema.Draft202012Validator)


def test_validate_as_a_subprocess_exits_2_on_bad_file(bad: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "chaosproxy", "validate", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert f"{bad}:6:9: phases[0].rules[0].probabilty" in proc.stderr


def test_long_description_line_is_cut_to_its_first_clause() -> None:
    from chaosproxy.cli.scenarios import first_line

    text = "The pool runs dry at peak: " + "details " * 20
    assert first_line(text) == "The pool runs dry at peak."


def test_scenarios_show_keeps_whole_numbers_whole(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenarios", "show", "mobile-only-failures"]) == 0
    out = capsys.readouterr().out
    assert "weight: 70\n" in out and "weight: 30\n" in out
    assert ".0\n" not in out
