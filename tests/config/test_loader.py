"""The loader: YAML text to the scenario model, every problem located."""

from __future__ import annotations

import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from chaosproxy.common.errors import ConfigError
from chaosproxy.config.loader import (
    bundled_scenario_dir,
    list_scenarios,
    load_scenario_file,
    load_scenario_text,
    resolve_scenario,
)
from chaosproxy.config.model import FieldCond, Loc, Ramp, When


def load(text: str, source: str = "s.yaml") -> object:
    return load_scenario_text(textwrap.dedent(text), source)


def problems(text: str) -> list[tuple[int, int, str, str]]:
    with pytest.raises(ConfigError) as info:
        load(text)
    return [(p.line, p.col, p.path, p.message) for p in info.value.problems]


MINIMAL = """\
name: demo
phases:
  - name: only
    duration: 10s
"""


def test_minimal_scenario_has_defaults() -> None:
    s = load_scenario_text(MINIMAL)
    assert s.name == "demo"
    assert [(p.name, p.duration) for p in s.phases] == [("only", 10.0)]
    assert s.repeat == 1 and s.seed is None and s.rules == ()


def test_the_issue_example_loads_into_the_model() -> None:
    s = load_scenario_text((bundled_scenario_dir() / "post-deploy-breakage.yaml").read_text())
    assert [p.name for p in s.phases] == ["steady", "broken-release", "rollback"]
    rollback = s.phases[2].rules[0]
    assert rollback.probability == Ramp(0.3, 0.0)
    assert rollback.match.path == "/api/**"
    assert rollback.outcomes[0].faults[0].name == "error"
    assert rollback.outcomes[0].faults[0].params == {"status": 503}
    assert rollback.outcomes[0].faults[0].path == "phases[2].rules[0].fault"


def test_unnamed_rule_id_is_its_key_path() -> None:
    s = load(
        """
        name: x
        phases:
          - name: a
            duration: 1s
            rules:
              - fault: {error: {}}
              - name: named
                fault: {error: {}}
        """
    )
    assert [r.id for r in s.phases[0].rules] == ["phases[0].rules[0]", "named"]


def test_locations_name_the_position_of_fault_parameters() -> None:
    s = load(
        """
        name: x
        phases:
          - name: a
            duration: 1s
            rules:
              - fault:
                  error: {status: 503}
        """
    )
    assert s.locate("phases[0].rules[0].fault.error.status") == Loc("s.yaml", 8, 19)
    assert s.locate("phases[0].rules[0].fault.error.nothing.deeper") == Loc("s.yaml", 8, 11)


def test_misspelt_keys_and_bad_fault_parameters_are_reported_together() -> None:
    with pytest.raises(ConfigError) as e:
        load(
            """
            name: x
            phases:
              - name: a
                duration: 1s
                rules:
                  - probabilty: 0.5
                    fault:
                      latency: {delay: 200ms, jiter: 50ms}
            """
        )
    assert [str(p) for p in e.value.problems] == [
        "s.yaml:7:9: phases[0].rules[0].probabilty: unknown key; did you mean probability?",
        "s.yaml:9:35: phases[0].rules[0].fault.latency.jiter: unknown key; did you mean jitter?",
    ]


def test_match_fields_all_parse() -> None:
    s = load(
        """
        name: x
        phases:
          - name: a
            duration: 1s
            rules:
              - match:
                  method: post
                  path: /api/*
                  path_regex: "^/api/v[0-9]+/"
                  host: "*.example.com"
                  headers: {X-Canary: "1", X-Trace: {regex: "^abc"}, X-Debug: {present: false}}
                  query: {page: 2}
                  user_agent: mobile
                  client_ip: [10.0.0.0/8, "192.168.1.7"]
                fault: {error: {}}
        """
    )
    m = s.phases[0].rules[0].match
    assert m.methods == ("POST",)
    assert m.headers == (
        FieldCond("X-Canary", equals="1"),
        FieldCond("X-Trace", regex="^abc"),
        FieldCond("X-Debug", present=False),
    )
    assert m.query == (FieldCond("page", equals="2"),)
    assert m.user_agent == "mobile"
    assert m.client_ip == ("10.0.0.0/8", "192.168.1.7")


def test_when_counting_outcomes_continue_and_guardrails_parse() -> None:
    s = load(
        """
        name: x
        repeat: forever
        seed: 3
        max_duration: 2m
        max_active_faults: 5
        abort_if: {error_rate_above: 0.5, p99_above: 2s, window: 10s}
        rules:
          - when: {rps_above: 100, window: 2s}
            first: 3
            every: 2
            after: 1
            continue: true
            outcomes:
              - {weight: 60, fault: {error: {status: 500}}}
              - {weight: 40, fault: {error: {status: 503}}}
        phases:
          - {name: a, duration: 250ms}
        """
    )
    r = s.rules[0]
    assert r.when == When(rps_above=100.0, window=2.0)
    assert r.counting is not None and (r.counting.first, r.counting.every, r.counting.after) == (
        3,
        2,
        1,
    )
    assert [o.weight for o in r.outcomes] == [60.0, 40.0]
    assert r.continue_ is True
    assert s.repeat is None and s.total_duration is None
    assert s.max_duration == 120.0 and s.max_active_faults == 5
    assert s.abort_if is not None and s.abort_if.p99_above == 2.0


def test_several_faults_in_one_mapping_combine() -> None:
    s = load(
        """
        name: x
        phases:
          - name: a
            duration: 1s
            rules:
              - fault: {error: {status: 500}, upstream_down: {}}
        """
    )
    assert [f.name for f in s.phases[0].rules[0].outcomes[0].faults] == ["error", "upstream_down"]


INVALID = [
    pytest.param(
        """\
        name: x
        phases:
          - name: a
            duration: 1s
            rules:
              - probabilty: 0.5
                fault: {error: {}}
        """,
        (6, 9, "phases[0].rules[0].probabilty", "unknown key; did you mean probability?"),
        id="unknown-key-suggests",
    ),
    pytest.param(
        """\
        name: x
        phases:
          - name: a
            duration: -5s
        """,
        (4, 15, "phases[0].duration", "duration must not be negative, got -5s"),
        id="negative-duration",
    ),
    pytest.param(
        """\
        name: x
        phases:
          - name: a
            duration: soon
        """,
        (4, 15, "phases[0].duration", "expected a duration like 250ms, 1.5s or 2m, got 'soon'"),
        id="bad-duration",
    ),
    pytest.param(
        "name: x\nphases: []\n",
        (2, 9, "phases", "needs at least one phase"),
        id="empty-phases",
    ),
    pytest.param(
        """\
        name: x
        phases:
          - {name: a, duration: 1s}
          - {name: a, duration: 1s}
        """,
        (4, 12, "phases[1].name", "duplicate phase name (also phases[0])"),
        id="duplicate-phase",
    ),
    pytest.param(
        """\
        name: x
        phases:
          - name: a
            duration: 1s
            rules:
              - probability: {from: 1.5, to: 0}
                fault: {error: {}}
        """,
        (6, 29, "phases[0].rules[0].probability.from", "must be between 0 and 1, got 1.5"),
        id="ramp-out-of-range",
    ),
    pytest.param(
        """\
        name: x
        phases:
          - name: a
            duration: 1s
            rules:
              - match: {path_regex: "(unclosed"}
                fault: {error: {}}
        """,
        (
            6,
            29,
            "phases[0].rules[0].match.path_regex",
            "invalid regular expression (RE2 syntax): missing ): (",
        ),
        id="bad-regex",
    ),
    pytest.param(
        """\
        name: x
        phases:
          - name: a
            duration: 1s
            rules:
              - match: {client_ip: [10.0.0.300/8]}
                fault: {error: {}}
        """,
        (
            6,
            29,
            "phases[0].rules[0].match.client_ip[0]",
            "invalid CIDR: '10.0.0.300/8' does not appear to be an IPv4 or IPv6 network",
        ),
        id="bad-cidr",
    ),
    pytest.param(
        """\
        name: x
        phases:
          - name: a
            duration: 1s
            rules:
              - fault: {latensy: {}}
        """,
        (6, 17, "phases[0].rules[0].fault.latensy", "unknown fault 'latensy'"),
        id="unknown-fault",
    ),
    pytest.param(
        """\
        name: x
        phases:
          - name: a
            duration: 1s
            rules:
              - match: {path: /x}
        """,
        (6, 9, "phases[0].rules[0]", "a rule needs a fault (or weighted outcomes)"),
        id="rule-without-fault",
    ),
    pytest.param(
        """\
        name: x
        repeat: 0
        phases: [{name: a, duration: 1s}]
        """,
        (2, 9, "repeat", "must be ≥ 1 or 'forever', got 0"),
        id="repeat-zero",
    ),
    pytest.param(
        """\
        name: x
        phases:
          - name: a
            duration: 1s
            rules:
              - every: 0
                fault: {error: {}}
        """,
        (6, 16, "phases[0].rules[0].every", "must be ≥ 1, got 0"),
        id="every-zero",
    ),
    pytest.param(
        """\
        name: x
        phases:
          - name: a
            duration: 1s
            rules:
              - when: {inflight_above: many}
                fault: {error: {}}
        """,
        (6, 32, "phases[0].rules[0].when.inflight_above", "expected an integer, got 'many'"),
        id="when-wrong-type",
    ),
    pytest.param(
        """\
        name: x
        phases:
          - name: a
            duration: 1s
        presets: [mobile-4g]
        """,
        (5, 11, "presets[0]", "unknown preset 'mobile-4g'; did you mean mobile-3g?"),
        id="unknown-preset",
    ),
    pytest.param(
        """\
        name: x
        name: y
        phases: [{name: a, duration: 1s}]
        """,
        (2, 1, "name", "duplicate key"),
        id="duplicate-key",
    ),
    pytest.param(
        "name: x\nphases: [{name: a, duration: 1s}\n",
        (3, 1, "", "invalid YAML"),
        id="yaml-syntax",
    ),
    pytest.param(
        "phases: [{name: a, duration: 1s}]\n",
        (1, 1, "<top>", "missing required key 'name'"),
        id="missing-name",
    ),
]


@pytest.mark.parametrize(("text", "expected"), INVALID)
def test_invalid_file_reports_located_problem(
    text: str, expected: tuple[int, int, str, str]
) -> None:
    got = problems(text)
    line, col, path, message = expected
    assert any(
        (g_line, g_col, g_path) == (line, col, path) and g_msg.startswith(message)
        for g_line, g_col, g_path, g_msg in got
    ), got


def test_every_problem_is_reported_at_once() -> None:
    got = problems(
        """\
        name: x
        seed: abc
        phases:
          - name: a
            duration: 1s
            rules:
              - probabilty: 2
                fault: {error: {}}
              - probability: 2
                fault: {error: {}}
          - name: b
            duration: forever
        """
    )
    assert [(line, path) for line, _col, path, _msg in got] == [
        (2, "seed"),
        (7, "phases[0].rules[0].probabilty"),
        (9, "phases[0].rules[1].probability"),
        (12, "phases[1].duration"),
    ]


def test_problem_renders_as_file_line_col_path_message(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("name: x\nphases:\n  - {name: a, duration: 1s, colour: red}\n")
    with pytest.raises(ConfigError) as info:
        load_scenario_file(f)
    assert str(info.value).startswith(f"{f}:3:29: phases[0].colour: unknown key; known keys: ")


def test_include_resolves_relative_to_the_including_file(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "errors.yaml").write_text(
        "rules:\n  - name: shared-500\n    fault: {error: {status: 500}}\n"
    )
    (tmp_path / "s.yaml").write_text(
        "name: x\nphases:\n  - name: a\n    duration: 1s\n    include: [shared/errors.yaml]\n"
    )
    s = load_scenario_file(tmp_path / "s.yaml")
    rule = s.phases[0].rules[0]
    assert (rule.id, rule.path) == ("shared-500", "phases[0].include[0].rules[0]")
    loc = s.locate("phases[0].include[0].rules[0].fault.error.status")
    assert (Path(loc.file).name, loc.line) == ("errors.yaml", 3)


def test_problem_in_included_file_names_that_file(tmp_path: Path) -> None:
    (tmp_path / "inc.yaml").write_text("rules:\n  - fault: {error: {}}\n    contnue: true\n")
    (tmp_path / "s.yaml").write_text(
        "name: x\ninclude: inc.yaml\nphases: [{name: a, duration: 1s}]\n"
    )
    with pytest.raises(ConfigError) as info:
        load_scenario_file(tmp_path / "s.yaml")
    [p] = info.value.problems
    assert (Path(p.file).name, p.line, p.col, p.path) == (
        "inc.yaml",
        3,
        5,
        "include.rules[0].contnue",
    )
    assert p.message == "unknown key; did you mean continue?"


def test_missing_include_is_located_at_the_include(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        "name: x\ninclude: [nowhere.yaml]\nphases: [{name: a, duration: 1s}]\n"
    )
    with pytest.raises(ConfigError) as info:
        load_scenario_file(tmp_path / "s.yaml")
    [p] = info.value.problems
    assert (p.line, p.col, p.path) == (2, 11, "include[0]")
    assert "cannot read included file 'nowhere.yaml'" in p.message


def test_include_cycle_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("rules: []\ninclude: b.yaml\n")
    (tmp_path / "b.yaml").write_text("rules: []\ninclude: a.yaml\n")
    (tmp_path / "s.yaml").write_text(
        "name: x\ninclude: a.yaml\nphases: [{name: p, duration: 1s}]\n"
    )
    with pytest.raises(ConfigError, match="includes itself"):
        load_scenario_file(tmp_path / "s.yaml")


def test_preset_rules_are_inlined_and_narrowed_by_its_match() -> None:
    s = load(
        """
        name: x
        phases: [{name: a, duration: 1s}]
        presets:
          - {preset: flaky-backend, match: {path: "/api/**"}}
        """
    )
    assert [r.id for r in s.rules] == ["flaky-backend-slow", "flaky-backend-fail"]
    assert {r.match.path for r in s.rules} == {"/api/**"}


def test_own_rules_come_before_included_and_preset_rules() -> None:
    s = load(
        """
        name: x
        phases: [{name: a, duration: 1s}]
        presets: [timeout-storm]
        rules:
          - {name: mine, fault: {error: {}}}
        """
    )
    assert [r.id for r in s.rules] == ["mine", "timeout-storm"]


def test_duplicate_rule_names_in_one_phase_are_a_problem() -> None:
    got = problems(
        """\
        name: x
        phases:
          - name: a
            duration: 1s
            rules:
              - {name: r, fault: {error: {}}}
              - {name: r, fault: {error: {}}}
        """
    )
    assert got == [
        (7, 10, "phases[0].rules[1].name", "duplicate rule name 'r' (also phases[0].rules[0])")
    ]


def test_merge_keys_and_anchors_work() -> None:
    s = load(
        """
        name: x
        phases:
          - name: a
            duration: 1s
            rules:
              - &api {match: {path: /api/*}, fault: {error: {status: 500}}}
              - {<<: *api, name: second, probability: 0.5}
        """
    )
    assert s.phases[0].rules[1].match.path == "/api/*"
    assert s.phases[0].rules[1].probability == 0.5


def test_resolve_name_finds_bundled_file() -> None:
    assert resolve_scenario("post-deploy-breakage", None).name == "post-deploy-breakage.yaml"


def test_resolve_unknown_name_lists_available_names(tmp_path: Path) -> None:
    (tmp_path / "alpha.yaml").write_text(MINIMAL)
    with pytest.raises(ConfigError) as info:
        resolve_scenario("alpah", tmp_path)
    assert "unknown scenario 'alpah'; did you mean alpha?" in str(info.value)
    assert "available in" in str(info.value)


def test_resolve_path_is_used_as_is(tmp_path: Path) -> None:
    f = tmp_path / "mine.yml"
    f.write_text(MINIMAL)
    assert resolve_scenario(str(f), None) == f


def test_list_scenarios_loads_every_file_of_a_directory(tmp_path: Path) -> None:
    (tmp_path / "one.yaml").write_text(MINIMAL)
    (tmp_path / "two.yml").write_text(MINIMAL.replace("demo", "two"))
    (tmp_path / "notes.txt").write_text("not a scenario")
    assert [s.name for s in list_scenarios(tmp_path)] == ["demo", "two"]


@pytest.mark.parametrize("value", [".nan", ".inf"])
def test_a_duration_that_is_not_finite_is_a_located_problem(value: str) -> None:
    with pytest.raises(ConfigError) as e:
        load(
            f"""
            name: x
            phases:
              - name: a
                duration: {value}
            """
        )
    [problem] = e.value.problems
    assert problem.path == "phases[0].duration" and "expected a duration" in problem.message


# ---------------------------------------------------------------- user_agent presets


def ua_scenario(value: str) -> str:
    return (
        "name: ua\nphases:\n  - name: p\n    duration: 1s\n    rules:\n"
        f"      - match: {{user_agent: {value}}}\n        fault: {{error: {{}}}}\n"
    )


def test_misspelt_user_agent_preset_is_a_located_error_with_a_suggestion() -> None:
    with pytest.raises(ConfigError) as info:
        load_scenario_text(ua_scenario("mobil"), "s.yaml")
    assert str(info.value) == (
        "s.yaml:6:29: phases[0].rules[0].match.user_agent: unknown preset 'mobil'; "
        "did you mean mobile? (presets: mobile, desktop, bot; for a regular expression "
        'write {regex: "mobil"})'
    )


def test_tablet_is_not_a_preset_and_points_at_mobile() -> None:
    with pytest.raises(ConfigError, match=r"unknown preset 'tablet'; did you mean mobile\?"):
        load_scenario_text(ua_scenario("tablet"), "s.yaml")


def test_explicit_regex_user_agent_takes_any_word() -> None:
    from chaosproxy.engine.matching import compile_match

    s = load_scenario_text(ua_scenario("{regex: okhttp}"), "s.yaml")
    spec = s.phases[0].rules[0].match
    assert spec.user_agent == "okhttp"
    view = SimpleNamespace(
        method="GET", path="/", query_string="", headers={"User-Agent": "okhttp/4.12"}, client_ip=""
    )
    pred = compile_match(spec)
    assert pred is not None and pred(view)  # type: ignore[arg-type]


def test_a_regex_spelt_like_a_preset_stays_a_regex() -> None:
    from chaosproxy.engine.matching import compile_match

    s = load_scenario_text(ua_scenario("{regex: mobile}"), "s.yaml")
    spec = s.phases[0].rules[0].match
    phone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile/15E148"
    for agent, expected in (("a mobile browser", True), (phone, False)):
        view = SimpleNamespace(
            method="GET", path="/", query_string="", headers={"User-Agent": agent}, client_ip=""
        )
        pred = compile_match(spec)
        assert pred is not None and pred(view) is expected  # type: ignore[arg-type]


def test_a_word_regex_is_dumped_as_an_explicit_regex_and_loads_back() -> None:
    from chaosproxy.config.dump import scenario_to_yaml

    s = load_scenario_text(ua_scenario("{regex: okhttp}"), "s.yaml")
    again = load_scenario_text(scenario_to_yaml(s), "again.yaml")
    assert again.phases[0].rules[0].match.user_agent == "okhttp"


def expanding(phases: int, per_phase: int = 50, wide: int = 0) -> str:
    """A few kilobytes of YAML whose aliases make `phases` times `per_phase` rules (and `wide`
    scenario-wide ones): how 64 small uploads once held 5,000 rules each."""
    rules = ", ".join(["&r {fault: {error: {status: 503}}}", *["*r"] * (per_phase - 1)])
    lines = ["name: many", "phases:", f"  - {{name: p0, duration: 1s, rules: &rs [{rules}]}}"]
    lines += [f"  - {{name: p{i}, duration: 1s, rules: *rs}}" for i in range(1, phases)]
    if wide:
        lines.append("rules: [" + ", ".join(["*r"] * wide) + "]")
    return "\n".join(lines) + "\n"


def test_a_scenario_may_hold_at_most_a_thousand_rules_after_expansion() -> None:
    from chaosproxy.config.loader import MAX_RULES

    text = expanding(100)  # 5,000 rules from 4.5 KB of YAML
    assert len(text) < 5000
    got = problems(text)  # at the 1,001st rule's key; its position is the anchored rule's
    assert got == [
        (3, 42, "phases[20].rules[0]", f"too many rules: 5000 after includes and presets, "
         f"at most {MAX_RULES} in a scenario"),
    ]  # fmt: skip
    assert len(load(expanding(20)).phases) == 20  # 1,000 is fine


def test_scenario_wide_rules_count_once_per_phase_in_force() -> None:
    from chaosproxy.config.loader import MAX_RULES_IN_PHASES

    got = problems(expanding(400, per_phase=1, wide=30))  # 430 rules, 12,400 in force
    assert [(path, message) for _, _, path, message in got] == [
        (
            "rules[0]",
            f"too many rules in force: 400 phases times 30 scenario-wide rules and the phases' "
            f"own come to 12400, at most {MAX_RULES_IN_PHASES}",
        )
    ]
