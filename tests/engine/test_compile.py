"""compile_scenario: faults built, matchers compiled, every problem located at once."""

from __future__ import annotations

import pytest

from chaosproxy.config.model import (
    FaultSpec,
    Loc,
    MatchSpec,
    Outcome,
    PhaseSpec,
    RuleSpec,
    Scenario,
)
from chaosproxy.engine.compile import compile_scenario
from chaosproxy.errors import ConfigError
from tests.engine.helpers import scenario


def test_compiles_phases_offsets_and_rule_order() -> None:
    c = compile_scenario(
        scenario(
            """
            name: s
            rules: [{name: wide, fault: {error: {}}}]
            phases:
              - {name: a, duration: 5s}
              - name: b
                duration: 7s
                rules: [{name: own, fault: {error: {status: 503}}}]
            """
        )
    )
    assert [(p.name, p.start, p.end) for p in c.phases] == [("a", 0, 5), ("b", 5, 12)]
    assert [r.id for r in c.phases[0].rules] == ["wide"]
    assert [r.id for r in c.phases[1].rules] == ["own", "wide"]
    assert c.cycle_duration == 12


def test_bad_fault_parameters_are_located_in_the_file() -> None:
    text = """\
name: s
phases:
  - name: p
    duration: 1s
    rules:
      - fault: {error: {status: 700}}
      - fault: {error: {stauts: 500}}
"""
    with pytest.raises(ConfigError) as e:
        compile_scenario(scenario(text, "bad.yaml"))
    lines = [str(p) for p in e.value.problems]
    assert len(lines) == 2
    assert lines[0].startswith("bad.yaml:6:")
    assert "phases[0].rules[0].fault.error.status: must be ≤ 599" in lines[0]
    assert lines[1].startswith("bad.yaml:7:")
    assert "phases[0].rules[1].fault.error.stauts: unknown key; did you mean status?" in lines[1]


def test_model_built_by_hand_reports_every_problem_with_locations() -> None:
    rule_path = "phases[0].rules[0]"
    sc = Scenario(
        name="s",
        description="",
        phases=(
            PhaseSpec(
                "p",
                1.0,
                "phases[0]",
                rules=(
                    RuleSpec(
                        id="r",
                        path=rule_path,
                        match=MatchSpec(path_regex="("),
                        outcomes=(Outcome(1, (FaultSpec("nope", {}, f"{rule_path}.fault.nope"),)),),
                    ),
                ),
            ),
        ),
        source="hand.yaml",
        locations={rule_path: Loc("hand.yaml", 9, 7)},
    )
    with pytest.raises(ConfigError) as e:
        compile_scenario(sc)
    assert [(p.path, p.line, p.col) for p in e.value.problems] == [
        (f"{rule_path}.match.path_regex", 9, 7),
        (f"{rule_path}.fault.nope", 9, 7),
    ]
    assert "unknown fault 'nope'" in e.value.problems[1].message
