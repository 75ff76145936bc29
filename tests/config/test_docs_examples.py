"""Every ```yaml block of docs/scenarios.md is a valid scenario (or rule set): loader, fault
parameters and JSON Schema."""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from chaosproxy.cli.scenarios import compile_problems
from chaosproxy.common.errors import ConfigError
from chaosproxy.config.loader import bundled_scenario_dir, load_scenario_text
from chaosproxy.config.schema import ruleset_schema, scenario_schema

DOC = Path(__file__).resolve().parents[2] / "docs" / "scenarios.md"
BLOCKS = re.findall(r"^```yaml\n(.*?)^```", DOC.read_text(), flags=re.S | re.M)


def _id(text: str) -> str:
    m = re.search(r"^name: (\S+)", text, flags=re.M)
    return m.group(1) if m else "block"


def test_docs_have_an_example_per_feature() -> None:
    assert len(BLOCKS) >= 15


@pytest.mark.parametrize("text", BLOCKS, ids=[_id(b) for b in BLOCKS])
def test_docs_example_is_valid(text: str) -> None:
    data = yaml.safe_load(text)
    if "phases" not in data:  # a rule-set file: checked through an including scenario
        jsonschema.Draft202012Validator(ruleset_schema()).validate(data)
        rules = yaml.safe_dump(data["rules"], default_flow_style=True).strip()
        text = f"name: wrapper\nphases: [{{name: p, duration: 1s, rules: {rules}}}]\n"
    else:
        jsonschema.Draft202012Validator(scenario_schema()).validate(data)
    # Relative includes resolve as if the example sat in the bundled scenarios directory.
    source = str(bundled_scenario_dir() / "docs-example.yaml")
    try:
        scenario = load_scenario_text(text, source)
    except ConfigError as e:
        pytest.fail(str(e))
    assert compile_problems(scenario) == []


UA_ROWS = re.findall(
    r"^\| (`.+`)(?: \([^|]*\))? \| (mobile|desktop|bot|none) \|$", DOC.read_text(), flags=re.M
)


def test_user_agent_table_has_every_preset() -> None:
    assert {preset for _, preset in UA_ROWS} == {"mobile", "desktop", "bot", "none"}


@pytest.mark.parametrize(("agents", "preset"), UA_ROWS, ids=[p for _, p in UA_ROWS])
def test_user_agent_table_says_which_preset_matches(agents: str, preset: str) -> None:
    from chaosproxy.config.match_spec import USER_AGENT_PRESETS
    from chaosproxy.engine.matching import is_bot, is_desktop, is_mobile

    checks = {"mobile": is_mobile, "desktop": is_desktop, "bot": is_bot}
    for agent in re.findall(r"`([^`]+)`", agents):
        matched = [p for p in USER_AGENT_PRESETS if checks[p](agent)]
        assert matched == ([] if preset == "none" else [preset]), agent
