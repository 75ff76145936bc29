"""compile_scenario: faults built, matchers compiled, every problem located at once."""

from __future__ import annotations

import pytest

from chaosproxy.common.errors import ConfigError
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


@pytest.mark.parametrize("budget", [16_384, 0])
def test_candidate_lookup_never_drops_a_rule_that_matches(
    budget: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """decide() looks only at the rules indexed for the request's first path segment (a
    literal glob segment, or a `^/seg/` regex): for every request, those must be the matching
    rules' superset, in order — with candidate lists precomputed, and merged per request (past
    the index's memory budget)."""
    import itertools
    import random

    from chaosproxy.engine import compile as compile_module
    from tests.engine.helpers import View

    monkeypatch.setattr(compile_module, "MERGE_BUDGET", budget)
    rng = random.Random(5)
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
    paths = ["/api/**", "/api/items/*", "/static/**", "/**", "/*/x", "/svc1/**", "/svc2/a"]
    regexes = ["^/api/", "^/svc1$", "^/static/.*\\.js$", "^/api/*x", "^/svc2/?$", "items"]
    rules = []
    for i in range(40):
        m = rng.sample(methods, rng.randint(0, 2))
        match = {"path": rng.choice(paths)} if rng.random() < 0.6 else {}
        if rng.random() < 0.4:
            match["path_regex"] = rng.choice(regexes)
        if m:
            match["methods"] = m
        rules.append(f"- {{name: r{i}, match: {match!r}, fault: {{error: {{}}}}}}")
    text = "name: idx\nphases:\n  - name: p\n    duration: 1h\n    rules:\n" + "\n".join(
        "      " + r for r in rules
    )
    phase = compile_scenario(scenario(text)).phases[0]
    requests = ["/api", "/api/items/1", "/static/a.js", "/svc1/z", "/svc2/a", "/q/x", "/", "x"]
    requests += ["/svc1", "/svc2/", "/apix", "/api/", "/api//x"]
    for method, path in itertools.product([*methods, "OPTIONS"], requests):
        view = View(method=method, path=path)
        matching = [
            r
            for r in phase.rules
            if (r.match is None or r.match(view)) and (r.methods is None or method in r.methods)
        ]
        candidates = phase.candidates(method, path)
        assert [r for r in candidates if r in matching] == matching, (method, path)
        assert list(candidates) == [r for r in phase.rules if r in candidates]  # order kept


def test_a_request_is_walked_past_only_the_rules_its_first_segment_can_match() -> None:
    """A thousand rules on a thousand routes: a request meets one of them (and the rules that
    name no route), not the thousand; the index holds each rule once per list it is in."""
    lines = [
        f"      - {{name: r{i}, match: {{path: /svc{i}/**}}, fault: {{error: {{}}}}}}"
        for i in range(999)
    ]
    lines.append("      - {name: any, match: {headers: {x-t: a}}, fault: {error: {}}}")
    text = "name: big\nphases:\n  - name: p\n    duration: 1h\n    rules:\n" + "\n".join(lines)
    phase = compile_scenario(scenario(text)).phases[0]
    assert [r.id for r in phase.candidates("GET", "/svc7/items/3")] == ["r7", "any"]
    assert [r.id for r in phase.candidates("GET", "/svc998")] == ["r998", "any"]
    assert [r.id for r in phase.candidates("GET", "/other")] == ["any"]


def test_a_path_regex_with_a_literal_first_segment_is_indexed_by_it() -> None:
    from chaosproxy.engine.compile import _regex_segment

    indexed = {"^/api/v[0-9]+/items": "api", "^/api$": "api", "^/api\\/x": "api", "^/a-b/": "a-b"}
    for pattern, segment in indexed.items():
        assert _regex_segment(pattern) == segment, pattern
    for pattern in ["^/api", "^/api/*x", "^/api/?$", "^/a.b/", "(?i)^/api/", "^/a/|^/b/", "/api/"]:
        assert _regex_segment(pattern) is None, pattern
