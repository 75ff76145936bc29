"""The experiment file: every mistake located (file:line:col: key.path), all in one pass;
phases checked against the scenario; ${VAR}s from the environment; the JSON Schema agrees."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from chaosproxy.common.errors import ConfigError
from chaosproxy.experiment.model import PROMETHEUS_METRIC, RUNNER_FLAGS
from chaosproxy.experiment.schema import experiment_schema
from chaosproxy.experiment.spec import (
    load_experiment_file,
    load_experiment_text,
    resolve_experiment_scenario,
)

BUNDLED = Path(__file__).resolve().parents[2] / "chaosproxy" / "data" / "experiments"

GOOD = """\
name: checkout
scenario: post-deploy-breakage
proxy:
  upstream: http://127.0.0.1:3000
target: http://127.0.0.1:8000
load:
  users: 50
  spawn_rate: 10
  shape: steady
  requests:
    - {path: /api/items, weight: 5}
    - {path: /api/items/1, weight: 2, user_agent: mobile, method: GET}
checks:
  - name: recovers after rollback
    after_phase: broken-release
    metric: error_rate
    source: client
    below: 0.01
    within: 30s
    for: 5s
  - name: clients stay served
    during_phase: broken-release
    metric: error_rate
    below: 0.02
    halt: true
  - name: p95 no worse than 1.5x
    during_phase: broken-release
    metric: latency_p95
    compare_to: steady
    below: 1.5
"""


def problems(text: str, source: str = "exp.yaml") -> list[str]:
    with pytest.raises(ConfigError) as e:
        exp = load_experiment_text(text, source)
        resolve_experiment_scenario(exp)
    return [str(p) for p in e.value.problems]


def test_the_documented_example_loads() -> None:
    exp = load_experiment_text(GOOD)
    assert [c.name for c in exp.checks] == [
        "recovers after rollback",
        "clients stay served",
        "p95 no worse than 1.5x",
    ]
    rec = exp.checks[0]
    assert rec.within == 30.0 and rec.for_ == 5.0 and rec.comparison == "below"
    assert exp.checks[1].halt and exp.checks[1].for_ == 3.0  # the default `for`
    assert exp.checks[2].compare_to == "steady"
    assert exp.load.requests[1].user_agent == "mobile"
    assert resolve_experiment_scenario(exp).name == "post-deploy-breakage"


def test_every_problem_is_located_and_reported_in_one_pass() -> None:
    text = GOOD.replace(
        "metric: error_rate\n    source: client", "metric: eror_rate\n    source: client"
    )
    text = text.replace("users: 50", "users: lots").replace("within: 30s", "within: soon")
    found = problems(text)
    assert (
        "exp.yaml:16:13: checks[0].metric: unknown metric 'eror_rate'; did you mean error_rate?"
        in found
    )
    assert any(p.startswith("exp.yaml:7:10: load.users: expected an integer") for p in found)
    assert any(p.startswith("exp.yaml:19:13: checks[0].within: expected a duration") for p in found)


def test_misspelt_keys_suggest_the_right_one() -> None:
    found = problems(
        GOOD.replace(
            "during_phase: broken-release\n    metric: error_rate\n    below: 0.02",
            "during_phse: broken-release\n    metric: error_rate\n    below: 0.02",
        )
    )
    assert any("checks[1].during_phse: unknown key; did you mean during_phase?" in p for p in found)


def test_phases_must_exist_in_the_scenario() -> None:
    found = problems(GOOD.replace("compare_to: steady", "compare_to: calm"))
    assert found == [
        "exp.yaml:29:5: checks[2].compare_to: scenario 'post-deploy-breakage' has no phase "
        "'calm'; its phases: steady, broken-release, rollback"
    ]


def test_an_unknown_scenario_names_the_key() -> None:
    found = problems(GOOD.replace("scenario: post-deploy-breakage", "scenario: post-deploy"))
    assert found[0].startswith("exp.yaml:2:1: scenario: unknown scenario 'post-deploy'")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            (
                "target: http://127.0.0.1:8000\n",
                "target: http://127.0.0.1:8000\nadmin: http://x:1\n",
            ),
            "either proxy",
        ),
        (("proxy:\n  upstream: http://127.0.0.1:3000\n", ""), "missing 'proxy'"),
        (("    within: 30s\n", ""), "needs 'within'"),
        (("    halt: true\n", "    halt: true\n    within: 3s\n"), "within is for after_phase"),
        (("    below: 0.02\n", "    below: 0.02\n    above: 0.5\n"), "exactly one bound"),
        (("    below: 0.02\n", "    below: 2\n"), "share between 0 and 1"),
        (("source: client", "source: prometheus"), "needs {url, query}"),
        (("checks:\n", "checks: []\nx:\n"), "at least one check"),
    ],
)
def test_contradictions_are_refused(change: tuple[str, str], message: str) -> None:
    found = problems(GOOD.replace(*change, 1))
    assert any(message in p for p in found), found


def test_retry_metrics_are_measured_at_the_proxy() -> None:
    text = GOOD.replace(
        "metric: latency_p95\n    compare_to: steady\n    below: 1.5",
        "metric: retry_amplification\n    below: 1.5",
    )
    exp = load_experiment_text(text)
    assert exp.checks[2].source == "proxy"
    found = problems(
        text.replace(
            "metric: retry_amplification", "metric: retry_amplification\n    source: client"
        )
    )
    assert any("measured at the proxy" in p for p in found)


def test_latency_bounds_take_durations() -> None:
    text = GOOD.replace("compare_to: steady\n    below: 1.5", "below: 250ms")
    assert load_experiment_text(text).checks[2].bound == 0.25


def test_environment_variables_fill_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUT", "http://127.0.0.1:8123")
    text = GOOD.replace("target: http://127.0.0.1:8000", "target: ${SUT}")
    text = text.replace(
        "upstream: http://127.0.0.1:3000", "upstream: ${DEP:-http://127.0.0.1:3999}"
    )
    exp = load_experiment_text(text)
    assert exp.target == "http://127.0.0.1:8123"
    assert exp.proxy is not None and exp.proxy.upstream == "http://127.0.0.1:3999"
    monkeypatch.delenv("SUT")
    assert any("environment variable SUT is not set" in p for p in problems(text))


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


@pytest.mark.parametrize("path", sorted(BUNDLED.glob("*.yaml")), ids=lambda p: p.stem)
def test_bundled_experiments_load_and_match_the_schema(path: Path) -> None:
    exp = load_experiment_file(path)
    resolve_experiment_scenario(exp)
    jsonschema.validate(yaml.safe_load(path.read_text()), experiment_schema())


def test_the_schema_rejects_what_the_reader_rejects() -> None:
    schema = experiment_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    doc = yaml.safe_load(GOOD)
    jsonschema.validate(doc, schema)
    doc["checks"][0]["metric"] = "eror_rate"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)


def test_schema_command_prints_the_experiment_schema() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "chaosproxy", "schema", "--experiment"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(out)["title"] == "chaosproxy experiment"


def test_validate_command_exits_2_with_located_problems(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("compare_to: steady", "compare_to: calm"))
    proc = subprocess.run(
        [sys.executable, "-m", "chaosproxy", "experiment", "validate", str(bad)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and f"{bad}:29:5: checks[2].compare_to" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "chaosproxy", "experiment", "run", str(bad)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "checks[2].compare_to" in proc.stderr


def test_run_against_an_unreachable_sidecar_exits_2_naming_it(
    tmp_path: Path, refused_url: str
) -> None:
    text = GOOD.replace("proxy:\n  upstream: http://127.0.0.1:3000\n", f"admin: {refused_url}\n")
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "chaosproxy",
            "experiment",
            "run",
            str(path),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and refused_url in proc.stderr and "unreachable" in proc.stderr


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


@pytest.mark.parametrize(
    ("name", "code"),
    [('"bad\\x01name"', "U+0001"), ('"esc \\e[31mred"', "U+001B"), ('"lone \\ud800"', "U+D800"),
     ('"bidi \\u202e flip"', "U+202E")],
)  # fmt: skip
def test_check_names_are_printable_text(name: str, code: str) -> None:
    found = problems(GOOD.replace("  - name: recovers after rollback", f"  - name: {name}"))
    assert any("checks[0].name: character" in p and code in p for p in found), found


# ---------------------------------------------------------------- proxy.admin, proxy.args

PROXY = "proxy:\n  upstream: http://127.0.0.1:3000\n"


def with_proxy(lines: str) -> str:
    return GOOD.replace(PROXY, PROXY + lines, 1)


def test_proxy_admin_chooses_the_started_proxys_admin_address() -> None:
    exp = load_experiment_text(with_proxy("  admin: 127.0.0.1:9464\n"))
    assert exp.proxy is not None and exp.proxy.admin == "127.0.0.1:9464"
    assert load_experiment_text(GOOD).proxy.admin is None  # type: ignore[union-attr]
    found = problems(with_proxy("  admin: localhost\n"))
    assert found == ["exp.yaml:5:10: proxy.admin: expected HOST:PORT, got 'localhost'"]


@pytest.mark.parametrize("flag", sorted(RUNNER_FLAGS))
@pytest.mark.parametrize("form", ["apart", "joined"])
def test_the_runners_own_flags_are_refused_in_proxy_args(flag: str, form: str) -> None:
    args = f"    - {flag}\n    - x\n" if form == "apart" else f"    - {flag}=x\n"
    found = problems(with_proxy("  args:\n    - --access-log\n" + args))
    assert found == [f"exp.yaml:7:7: proxy.args[1]: {flag} is the runner's own flag: "
                     f"{RUNNER_FLAGS[flag]}"]  # fmt: skip


def test_every_flag_the_runner_passes_is_one_proxy_args_refuses(tmp_path: Path) -> None:
    from chaosproxy.experiment.processes import proxy_argv

    exp = load_experiment_text(with_proxy("  args: [--access-log]\n"))
    argv = proxy_argv(exp, tmp_path, ("127.0.0.1", 1), ("127.0.0.1", 2), tmp_path)
    own = [a for a in argv[: argv.index("--access-log")] if a.startswith("--")]
    assert own and set(own) <= set(RUNNER_FLAGS)
    assert argv[-1] == "--access-log"  # the experiment's own flags come last


def test_proxy_args_are_read_as_chaosproxy_run_reads_them() -> None:
    ok = load_experiment_text(with_proxy("  args: [--pool-size, '64', --seed, '-3']\n"))
    assert ok.proxy is not None and ok.proxy.args == ("--pool-size", "64", "--seed", "-3")
    assert problems(with_proxy("  args: [--pool-sise, '3']\n")) == [
        "exp.yaml:5:10: proxy.args[0]: chaosproxy run has no flag '--pool-sise'; "
        "did you mean --pool-size?"
    ]
    assert problems(with_proxy("  args: [--journ, x]\n")) == [
        "exp.yaml:5:10: proxy.args[0]: --journ is ambiguous: --journal, --journal-faults, "
        "--journal-keep, --journal-max-size"
    ]
    (found,) = problems(with_proxy("  args: [--access-log, --pool-size, lots]\n"))
    assert found.startswith("exp.yaml:5:24: proxy.args[1]: chaosproxy run would refuse this: ")
    assert "--pool-size" in found and "lots" in found


def test_the_schema_knows_proxy_admin_and_refuses_runner_flags() -> None:
    schema = experiment_schema()
    doc = yaml.safe_load(with_proxy("  admin: 0.0.0.0:9464\n  args: [--pool-size, '8']\n"))
    jsonschema.validate(doc, schema)
    for flag in ("--admin", "--listen=0.0.0.0:1", "--journal"):
        doc["proxy"]["args"] = [flag]
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(doc, schema)


# ---------------------------------------------------------------- Prometheus checks

PROM_CHECK = """\
  - name: healthy before (prometheus)
    during_phase: steady
    source: prometheus
    prometheus:
      url: http://127.0.0.1:9090
      query: (sum(rate(x{code=~"5.."}[5s])) or vector(0)) / sum(rate(x[5s]))
    below: 0.01
"""


def test_a_prometheus_check_needs_no_metric_and_judges_its_querys_value() -> None:
    exp = load_experiment_text(GOOD + PROM_CHECK)
    prom = exp.checks[-1]
    assert prom.source == "prometheus" and prom.metric == PROMETHEUS_METRIC == "value"
    assert prom.prometheus is not None and "or vector(0)" in prom.prometheus.query
    jsonschema.validate(yaml.safe_load(GOOD + PROM_CHECK), experiment_schema())


def test_a_metric_on_a_prometheus_check_is_refused_where_it_stands() -> None:
    text = GOOD + PROM_CHECK.replace("    source:", "    metric: error_rate\n    source:")
    assert problems(text) == [
        "exp.yaml:33:13: checks[3].metric: a Prometheus check judges the value its query "
        "returns: remove metric (write the error rate, latency ... into the query)"
    ]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(yaml.safe_load(text), experiment_schema())
    # Every other check still needs one.
    no_metric = GOOD.replace("    metric: latency_p95\n", "")
    assert any("checks[2]: missing required key 'metric'" in p for p in problems(no_metric))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(yaml.safe_load(no_metric), experiment_schema())


def test_a_prometheus_check_cannot_halt_the_run() -> None:
    # the live halt never looked at Prometheus (its points lag the run): say so, located
    (found,) = problems(GOOD + PROM_CHECK + "    halt: true\n")
    assert found.startswith("exp.yaml:38:11: checks[3].halt: a Prometheus check cannot halt")


def test_the_documented_prometheus_example_validates(tmp_path: Path) -> None:
    """docs/experiments.md's worked example, as written there."""
    doc = (BUNDLED.parents[2] / "docs" / "experiments.md").read_text()
    block = doc.split("<!-- prometheus-example -->", 1)[1].split("```yaml\n", 1)[1]
    text = block.split("```", 1)[0]
    path = tmp_path / "checkout-prometheus.yaml"
    path.write_text(text)
    exp = load_experiment_file(path)
    resolve_experiment_scenario(exp)
    jsonschema.validate(yaml.safe_load(text), experiment_schema())
    assert exp.proxy is not None and exp.proxy.admin
    queries = [c.prometheus.query for c in exp.checks if c.prometheus is not None]
    assert queries and all("or vector(0)" in q for q in queries)
