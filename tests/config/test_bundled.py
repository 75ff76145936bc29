"""Every bundled scenario and preset validates: structure, fault parameters and the JSON Schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from chaosproxy.cli.scenarios import check_scenario_file
from chaosproxy.config.includes import bundled_preset_dir
from chaosproxy.config.loader import bundled_scenario_dir
from chaosproxy.config.schema import ruleset_schema, scenario_schema

BUNDLED_NAMES = {
    "post-deploy-breakage",
    "mobile-only-failures",
    "peak-traffic-spikes",
    "dependency-timeout",
    "flapping-upstream",
    "slow-network-3g",
    "failover-primary-outage",
    "stale-cdn-error",
}
SCENARIOS = sorted(bundled_scenario_dir().glob("*.yaml"))
RULE_SETS = sorted(bundled_preset_dir().glob("*.yaml")) + sorted(
    (bundled_scenario_dir() / "shared").glob("*.yaml")
)


def _validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema)


def test_the_eight_documented_scenarios_ship() -> None:
    assert {p.stem for p in SCENARIOS} == BUNDLED_NAMES


def test_top_level_scenarios_dir_is_the_packaged_one() -> None:
    top = Path(__file__).resolve().parents[2] / "scenarios"
    assert top.resolve() == bundled_scenario_dir()


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_bundled_scenario_validates_with_its_faults(path: Path) -> None:
    scenario, problems = check_scenario_file(path)
    assert problems == []
    assert scenario.name == path.stem
    assert scenario.description
    assert scenario.total_duration is not None and scenario.total_duration <= 300


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_bundled_scenario_validates_against_the_schema(path: Path) -> None:
    _validator(scenario_schema()).validate(yaml.safe_load(path.read_text()))


@pytest.mark.parametrize("path", RULE_SETS, ids=lambda p: p.stem)
def test_bundled_rule_set_validates_against_the_rule_set_schema(path: Path) -> None:
    _validator(ruleset_schema()).validate(yaml.safe_load(path.read_text()))


def test_schemas_are_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(scenario_schema())
    jsonschema.Draft202012Validator.check_schema(ruleset_schema())
