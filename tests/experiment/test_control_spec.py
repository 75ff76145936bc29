"""`compare_to: control` and `metric: blast_radius` in the experiment file: accepted where they
mean something, every misuse located; the load learns the cohort it labels its users with."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from chaosproxy.common.cohort import label_of
from chaosproxy.common.errors import ConfigError
from chaosproxy.experiment.plan import load_cohort, write_plan
from chaosproxy.experiment.schema import experiment_schema
from chaosproxy.experiment.spec import load_experiment_file, load_experiment_text
from chaosproxy.experiment.spec_scenario import resolve_experiment_scenario

BUNDLED = Path(__file__).resolve().parents[2] / "chaosproxy" / "data" / "experiments"

SCENARIO = """\
name: half
seed: 5
phases:
  - name: {first}
    duration: 5s
  - name: outage
    duration: 10s
    rules:
      - match: {{path: "/api/**", cohort: {{share: 0.25, by: {by}}}}}
        fault: {{error: {{status: 500}}}}
"""

EXPERIMENT = """\
name: cohorts
scenario: half.yaml
proxy:
  upstream: http://127.0.0.1:3000
checks:
  - name: fault cohort served like control
    during_phase: outage
    metric: {metric}
    compare_to: control
    {bound}
  - name: radius
    during_phase: outage
    metric: blast_radius
    below: 0.3
"""


def write(
    tmp_path: Path,
    *,
    first: str = "steady",
    by: str = "header X-Chaos-User",
    metric: str = "error_rate",
    bound: str = "below: 0.01",
    extra: str = "",
    scenario: str | None = None,
) -> Path:
    (tmp_path / "half.yaml").write_text(scenario or SCENARIO.format(first=first, by=by))
    path = tmp_path / "exp.yaml"
    path.write_text(EXPERIMENT.format(metric=metric, bound=bound) + extra)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as e:
        resolve_experiment_scenario(load_experiment_file(path))
    return [str(p) for p in e.value.problems]


def test_compare_to_control_and_blast_radius_load(tmp_path: Path) -> None:
    exp = load_experiment_file(write(tmp_path, metric="served", bound="above: -0.01"))
    resolve_experiment_scenario(exp)
    c, radius = exp.checks
    assert c.compare_to == "control" and c.bound == -0.01 and c.comparison == "above"
    assert radius.metric == "blast_radius" and radius.source == "proxy"
    doc = yaml.safe_load((tmp_path / "exp.yaml").read_text())
    jsonschema.validate(doc, experiment_schema())


def test_a_scenario_without_cohort_is_refused_where_compare_to_stands(tmp_path: Path) -> None:
    plain = SCENARIO.format(first="steady", by="x").replace(", cohort: {share: 0.25, by: x}", "")
    found = problems(write(tmp_path, scenario=plain))
    assert len(found) == 1
    assert found[0].startswith(f"{tmp_path / 'exp.yaml'}:9:5: checks[0].compare_to: ")
    assert "has no control group" in found[0] and "cohort" in found[0]


def test_a_phase_named_control_is_refused_as_ambiguous(tmp_path: Path) -> None:
    found = problems(write(tmp_path, first="control"))
    assert len(found) == 1 and "checks[0].compare_to" in found[0]
    assert "ambiguous" in found[0] and "rename that phase" in found[0]


@pytest.mark.parametrize(
    ("metric", "bound", "extra", "message"),
    [
        ("throughput", "below: 2", "", "compare_to: control compares the cohorts'"),
        ("error_rate", "below: 1.5", "", "between -1 and 1"),
        ("latency_p95", "below: 2\n    halt: true", "", "cannot halt a run"),
        (
            "error_rate",
            "below: 0.01",
            "    compare_to: steady\n",
            "blast_radius is a share of clients on its own",
        ),
        ("error_rate", "below: 0.01", "    halt: true\n", "cannot halt one"),
        ("error_rate", "below: 0.01", "    source: client\n", "measured at the proxy"),
    ],
)
def test_misuses_are_located(
    tmp_path: Path, metric: str, bound: str, extra: str, message: str
) -> None:
    text = EXPERIMENT.format(metric=metric, bound=bound) + extra
    with pytest.raises(ConfigError) as e:
        load_experiment_text(text, "exp.yaml")
    found = [str(p) for p in e.value.problems]
    assert any(message in p and p.startswith("exp.yaml:") for p in found), found


def test_the_load_labels_users_with_the_proxys_hash_and_seed(tmp_path: Path) -> None:
    exp = load_experiment_file(write(tmp_path))
    scenario = resolve_experiment_scenario(exp)
    cohort, note = load_cohort(exp, scenario, None)
    assert cohort == {"seed": 5, "share": 0.25} and note is None  # the scenario's seed
    assert load_cohort(exp, scenario, 9)[0] == {"seed": 9, "share": 0.25}  # --seed wins
    plan = tmp_path / "plan.json"
    write_plan(plan, (5, 1.0), [], None, cohort)
    assert '"cohort": {"seed": 5, "share": 0.25}' in plan.read_text()
    # the same label the proxy computes for the same user
    assert label_of(5, "u3", 0.25) in ("fault", "control")


def test_a_client_view_comparison_on_a_split_the_load_cannot_name_is_refused(
    tmp_path: Path,
) -> None:
    found = problems(write(tmp_path, by="address"))
    assert len(found) == 1 and "checks[0].compare_to" in found[0]
    assert "splits clients by address" in found[0] and "source: proxy" in found[0]


def test_a_split_the_load_cannot_name_is_a_note_not_a_label(tmp_path: Path) -> None:
    exp = load_experiment_file(write(tmp_path, by="address", extra=""))
    exp = load_experiment_text(
        (tmp_path / "exp.yaml")
        .read_text()
        .replace("compare_to: control", "compare_to: control\n    source: proxy"),
        str(tmp_path / "exp.yaml"),
    )
    scenario = resolve_experiment_scenario(exp)
    cohort, note = load_cohort(exp, scenario, None)
    assert cohort is None and note is not None
    assert "client view has no cohort split" in note and "proxy view has it" in note
    # by: client is X-Chaos-User when the runner starts the proxy
    exp = load_experiment_file(write(tmp_path, by="client"))
    assert load_cohort(exp, resolve_experiment_scenario(exp), None)[0] is not None


@pytest.mark.parametrize("name", ["demo-control-failover", "demo-control-no-failover"])
def test_the_bundled_control_pair_validates(name: str) -> None:
    exp = load_experiment_file(BUNDLED / f"{name}.yaml")
    scenario = resolve_experiment_scenario(exp)
    assert {c.compare_to for c in exp.checks} >= {"control"}
    cohort, _ = load_cohort(exp, scenario, None)
    assert cohort is not None
    users = [f"u{i}" for i in range(1, exp.load.users + 1)]
    fault = [u for u in users if label_of(int(cohort["seed"]), u, cohort["share"]) == "fault"]
    assert len(fault) == len(users) // 2  # the seed splits the demo's users evenly
