"""An experiment checked against the scenario it names: the scenario found (bundled, or a path
relative to the experiment file), every phase named exists, a custom locustfile exists. The
control-group rules (`compare_to: control`) are in test_control_spec.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaosproxy.common.errors import ConfigError
from chaosproxy.experiment.spec import load_experiment_file
from chaosproxy.experiment.spec_scenario import resolve_experiment_scenario
from tests.experiment.support_spec import GOOD, problems


def test_phases_must_exist_in_the_scenario() -> None:
    found = problems(GOOD.replace("compare_to: steady", "compare_to: calm"))
    assert found == [
        "exp.yaml:29:5: checks[2].compare_to: scenario 'post-deploy-breakage' has no phase "
        "'calm'; its phases: steady, broken-release, rollback"
    ]


def test_an_unknown_scenario_names_the_key() -> None:
    found = problems(GOOD.replace("scenario: post-deploy-breakage", "scenario: post-deploy"))
    assert found[0].startswith("exp.yaml:2:1: scenario: unknown scenario 'post-deploy'")


def test_a_scenario_path_resolves_against_the_experiment_file(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text(
        "name: mine\nphases: [{name: steady, duration: 1s}, {name: broken-release, duration: 1s}]\n"
    )
    exp_file = tmp_path / "exp.yaml"
    exp_file.write_text(
        GOOD.replace("scenario: post-deploy-breakage", "scenario: mine.yaml").replace(
            "    compare_to: steady\n", ""
        )
    )
    assert resolve_experiment_scenario(load_experiment_file(exp_file)).name == "mine"


def test_a_locustfile_that_does_not_exist_is_located(tmp_path: Path) -> None:
    text = GOOD.replace("  requests:\n", "  locustfile: users/checkout.py\n  requests:\n", 1)
    text = text.replace(
        "    - {path: /api/items, weight: 5}\n"
        "    - {path: /api/items/1, weight: 2, user_agent: mobile, method: GET}\n",
        "",
    ).replace("  requests:\n", "")
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        resolve_experiment_scenario(load_experiment_file(path))
    (found,) = [str(p) for p in e.value.problems]
    assert "load.locustfile: no such file" in found and "users/checkout.py" in found
    (tmp_path / "users").mkdir()
    (tmp_path / "users" / "checkout.py").write_text("# a locustfile\n")
    resolve_experiment_scenario(load_experiment_file(path))  # relative to the file: found


def test_the_bundled_grpc_locustfile_takes_requests_and_a_custom_one_does_not(
    tmp_path: Path,
) -> None:
    """`locustfile: grpc` is a bundled name, not a path: its requests are the calls; a path's
    locustfile brings its own tasks, so `requests` beside it is a located error."""
    text = GOOD.replace("  requests:\n", "  locustfile: grpc\n  requests:\n", 1)
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    exp = load_experiment_file(path)
    resolve_experiment_scenario(exp)  # no such file is looked for
    assert exp.load.locustfile == "grpc" and exp.load.requests[0].path == "/api/items"
    found = problems(GOOD.replace("  requests:\n", "  locustfile: mine.py\n  requests:\n", 1))
    assert any(
        "load.requests: requests are for the bundled locustfiles only (default, grpc)" in p
        for p in found
    ), found
