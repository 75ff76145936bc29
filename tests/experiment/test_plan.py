"""The load plan: what Locust's shape follows, second by second. Over recorded real runs
(`fixtures/`: the plan file each left) and the shapes no recording has."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import pytest

from chaosproxy.experiment import align, integrity
from chaosproxy.experiment.model import Stage
from chaosproxy.experiment.plan import plan_stages, write_plan
from tests.experiment.fixtures.replay import NAMES, recording


@pytest.mark.parametrize("name", NAMES)
def test_the_stages_are_the_plan_the_real_run_wrote(name: str) -> None:
    rec = recording(name)
    plan = rec.run["plan"]
    warm, stages = plan_stages(rec.exp, rec.scenario, rec.at)
    assert [warm[0], warm[1]] == plan["warmup"] and stages == plan["stages"]
    # The end: the scenario and the cool-down, or three seconds after a halt.
    halted = rec.run["halted"]
    if halted:
        assert plan["end"] == pytest.approx(halted["at"] + 3.0, abs=0.01)
    else:
        assert plan["end"] == rec.at + rec.scenario.cycle_duration + rec.exp.load.cooldown


def test_a_steady_load_is_the_warm_up_throughout() -> None:
    rec = recording("failover")
    assert plan_stages(rec.exp, rec.scenario, rec.at) == ((5, 10.0), [])


def test_a_spike_runs_the_full_users_in_the_phases_with_faults() -> None:
    rec = recording("spike")
    at = rec.at
    warm, stages = plan_stages(rec.exp, rec.scenario, at)
    assert warm == (3, 10.0)
    assert stages == [
        [at, 3.0, 10.0],
        [at + 3, 8.0, 10.0],
        [at + 7, 3.0, 10.0],
        [at + 13, 3.0, 10.0],
    ]
    # ... and Locust followed it: 8 users reported within the outage phase, 3 around it.
    data = align.ClientData(rec.client_path)
    data.poll()
    users = data.users_at
    during = [u for t, u in users.items() if at + 4 <= t < at + 7]
    assert during and set(during) == {8}
    assert users[int(at) + 1] == 3


def test_without_base_users_a_spike_starts_from_a_fifth() -> None:
    rec = recording("spike")
    load = dataclasses.replace(rec.exp.load, base_users=None, users=20)
    warm, stages = plan_stages(dataclasses.replace(rec.exp, load=load), rec.scenario, 0.0)
    assert warm == (4, 10.0) and [s[1] for s in stages] == [4.0, 20.0, 4.0, 4.0]


def test_a_ramp_climbs_a_step_a_second_from_a_tenth() -> None:
    rec = recording("failover")
    load = dataclasses.replace(rec.exp.load, shape="ramp", users=50)
    warm, stages = plan_stages(dataclasses.replace(rec.exp, load=load), rec.scenario, 100.0)
    assert warm == (5, 10.0)
    assert len(stages) == 13 and stages[0] == [101.0, 8.0, 10.0] and stages[-1][1:] == [50.0, 10.0]
    assert [s[0] for s in stages] == [100.0 + i for i in range(1, 14)]
    assert all(a[1] <= b[1] for a, b in itertools.pairwise(stages))


def test_stages_start_with_their_phases_and_the_first_sets_the_warm_up() -> None:
    rec = recording("failover")
    load = dataclasses.replace(
        rec.exp.load,
        shape="stages",
        stages=(Stage("after", 2, 1.0), Stage("steady", 6), Stage("outage", 12)),
    )
    warm, stages = plan_stages(dataclasses.replace(rec.exp, load=load), rec.scenario, 100.0)
    assert warm == (6, 10.0)
    assert stages == [[100.0, 6.0, 10.0], [103.0, 12.0, 10.0], [107.0, 2.0, 1.0]]
    # Without a stage for the first phase the warm-up is the experiment's users.
    load = dataclasses.replace(load, stages=(Stage("outage", 12),))
    warm, _ = plan_stages(dataclasses.replace(rec.exp, load=load), rec.scenario, 100.0)
    assert warm == (5, 10.0)


def test_what_locust_could_reach_following_the_recorded_plan() -> None:
    """integrity's reading of the same plan: the spike's 3 -> 8 users at 10/s (and back) are
    reachable from the second after each stage begins."""
    rec = recording("spike")
    plan = rec.run["plan"]
    p = integrity.Plan(
        rec.at,
        tuple((ph.name, ph.duration) for ph in rec.scenario.phases),
        (plan["warmup"][0], plan["warmup"][1]),
        tuple((s[0], s[1], s[2]) for s in plan["stages"]),
    )
    at = int(rec.at)
    can = p.reachable(at, at + 12)
    assert [can[at + i] for i in range(12)] == [3, 3, 3, 3, 8, 8, 8, 8, 3, 3, 3, 3]


def test_the_plan_file_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    write_plan(path, (5, 10.0), [], None)
    assert json.loads(path.read_text()) == {"warmup": [5, 10.0], "stages": [], "end": None}
    write_plan(path, (5, 10.0), [[100.0, 8.0, 10.0]], 113.0)
    assert json.loads(path.read_text()) == {
        "warmup": [5, 10.0],
        "stages": [[100.0, 8.0, 10.0]],
        "end": 113.0,
    }
    assert [p.name for p in tmp_path.iterdir()] == ["plan.json"]  # no half-written file left
