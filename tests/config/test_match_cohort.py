"""`match: {cohort: ...}`: membership by hash, the grammar with located errors, the one cohort
spec per scenario, the dump and the JSON Schema."""

from __future__ import annotations

import textwrap

import pytest

from chaosproxy.common.cohort import CONTROL, FAULT, cohort_of, label_of, position
from chaosproxy.common.errors import ConfigError
from chaosproxy.config.dump import scenario_to_yaml
from chaosproxy.config.loader import load_scenario_text
from chaosproxy.config.match_spec import scenario_cohort
from chaosproxy.config.model import CohortSpec, Scenario
from chaosproxy.config.schema import scenario_schema
from chaosproxy.engine.compile import compile_scenario


def load(text: str) -> Scenario:
    return load_scenario_text(textwrap.dedent(text), "s.yaml")


def problems(text: str, *, compile_too: bool = False) -> list[tuple[int, str, str]]:
    with pytest.raises(ConfigError) as info:
        sc = load(text)
        if compile_too:
            compile_scenario(sc)
    return [(p.line, p.path, p.message) for p in info.value.problems]


def rule_with(cohort: str) -> str:
    return f"""
        name: s
        phases:
          - name: p
            duration: 1m
            rules:
              - match: {{cohort: {cohort}}}
                fault: {{error: {{status: 503}}}}
        """


# ---------------------------------------------------------------- membership


def test_position_is_the_first_8_bytes_of_blake2b_of_seed_nul_value() -> None:
    import hashlib

    digest = hashlib.blake2b(b"7\x00user-1").digest()
    assert position(7, "user-1") == int.from_bytes(digest[:8], "big") / 2**64
    assert 0.0 <= position(0, "") < 1.0


def test_a_smaller_cohort_is_inside_a_larger_one_and_seeds_reshuffle() -> None:
    users = [f"user-{i}" for i in range(2000)]
    ten = {u for u in users if cohort_of(3, u, 0.10)}
    quarter = {u for u in users if cohort_of(3, u, 0.25)}
    assert ten < quarter
    assert {u for u in users if cohort_of(4, u, 0.25)} != quarter
    assert all(cohort_of(3, u, 1.0) for u in users)


def test_no_value_is_control_traffic() -> None:
    assert not cohort_of(1, None, 1.0) and not cohort_of(1, "", 1.0)
    assert label_of(1, None, 1.0) == CONTROL
    assert label_of(1, "someone", 1.0) == FAULT


# ---------------------------------------------------------------- grammar


def test_cohort_reads_share_and_by() -> None:
    sc = load(rule_with("{share: 0.25, by: header X-Chaos-User}"))
    assert sc.phases[0].rules[0].match.cohort == CohortSpec(0.25, "header X-Chaos-User")
    assert CohortSpec(0.25, "header X-Chaos-User").header == "X-Chaos-User"
    assert load(rule_with("{share: 1}")).phases[0].rules[0].match.cohort == CohortSpec(1.0)
    assert load(rule_with("{share: .5, by: address}")).phases[0].rules[
        0
    ].match.cohort == CohortSpec(0.5, "address")
    assert scenario_cohort(load(rule_with("{share: 0.1, by: client}"))) == CohortSpec(0.1)


@pytest.mark.parametrize(
    ("cohort", "path", "message"),
    [
        ("{share: 0}", "share", "must be > 0, got 0"),
        ("{share: 1.5}", "share", "must be ≤ 1, got 1.5"),
        ("{share: lots}", "share", "expected a finite number"),
        ("{by: client}", "", "missing required key 'share'"),
        ("{share: 0.2, by: user}", "by", "unknown 'user'"),
        ("{share: 0.2, by: headr X-A}", "by", "did you mean header?"),
        ("{share: 0.2, by: header}", "by", "by: header needs a header name, no name given"),
        ("{share: 0.2, by: 'header X A'}", "by", "needs a header name, got 'X A'"),
        ("{share: 0.2, by: address X}", "by", "by: address takes no name"),
        ("{share: 0.2, per: client}", "per", "unknown key"),
        ("0.25", "", "expected {share: ..., by: ...}"),
    ],
)
def test_bad_cohort_specs_are_located(cohort: str, path: str, message: str) -> None:
    found = problems(rule_with(cohort))
    assert len(found) == 1, found
    line, where, text = found[0]
    assert line == 7
    assert where == "phases[0].rules[0].match.cohort" + (f".{path}" if path else "")
    assert message in text


def test_a_scenario_has_one_cohort_spec() -> None:
    text = """
        name: s
        rules:
          - match: {cohort: {share: 0.25, by: header X-Chaos-User}}
            fault: {latency: {delay: 1s}}
        phases:
          - name: a
            duration: 1m
            rules:
              - match: {cohort: {share: 0.25, by: header X-Chaos-User}}
                fault: {error: {status: 503}}
          - name: b
            duration: 1m
            rules:
              - match: {cohort: {share: 0.5, by: header X-Chaos-User}}
                fault: {error: {status: 503}}
        """
    found = problems(text)  # the loader says it, before anything is compiled
    assert len(found) == 1
    line, path, message = found[0]
    assert (line, path) == (15, "phases[1].rules[0].match.cohort")
    assert "a scenario has one cohort spec: rules[0] has share 0.25" in message
    assert "this rule share 0.5" in message


def test_the_compiled_scenario_carries_its_cohort() -> None:
    compiled = compile_scenario(load(rule_with("{share: 0.3, by: header X-U}")))
    assert compiled.cohort == CohortSpec(0.3, "header X-U")
    assert compiled.rules[0].cohort == compiled.cohort
    assert compiled.rules[0].shown == "cohort 30% by header X-U"
    plain = rule_with("{share: 1}").replace("match: {cohort: {share: 1}}", "match: {path: /x}")
    assert compile_scenario(load(plain)).cohort is None


def test_the_dump_loads_back_to_the_same_cohort() -> None:
    sc = load(rule_with("{share: 0.25, by: header X-Chaos-User}"))
    again = load_scenario_text(scenario_to_yaml(sc), "again.yaml")
    assert again.phases[0].rules[0].match.cohort == CohortSpec(0.25, "header X-Chaos-User")


def test_the_json_schema_knows_the_cohort() -> None:
    import jsonschema

    schema = scenario_schema()
    doc = {
        "name": "s",
        "phases": [
            {
                "name": "p",
                "duration": "1m",
                "rules": [
                    {
                        "match": {"cohort": {"share": 0.25, "by": "header X-Chaos-User"}},
                        "fault": {"error": {"status": 503}},
                    }
                ],
            }
        ],
    }
    jsonschema.validate(doc, schema)
    for bad in ({"share": 0}, {"share": 0.2, "by": "header"}, {"by": "client"}):
        doc["phases"][0]["rules"][0]["match"]["cohort"] = bad  # type: ignore[index]
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(doc, schema)
