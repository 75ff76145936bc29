"""The run's own bookkeeping (`RunState`): a proxy that goes silent or restarts, a Locust process
that exits, each a problem named once, with no Locust, no proxy and no clock."""

from __future__ import annotations

import io
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from chaosproxy.admin.client import Unreachable
from chaosproxy.experiment.integrity import Plan
from chaosproxy.experiment.model import Experiment, LoadSpec
from chaosproxy.experiment.processes import Child, Load, SetupError
from chaosproxy.experiment.run_state import RunOptions, RunState

AT = 1000.0
PHASES = (("steady", 3.0), ("outage", 4.0), ("after", 6.0))


def ev(seq: int, t: float, kind: str, phase: str = "", **details: Any) -> dict[str, Any]:
    return {"seq": seq, "t": t, "kind": kind, "scenario": "s", "phase": phase, "details": details}


class FakeAdmin:
    """An admin client whose `/events` answers are scripted (an exception: that failure)."""

    url = "http://a:1"

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)

    async def events(self, since: int = 0, limit: int = 500) -> dict[str, Any]:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return dict(answer)


def bare_run(tmp_path: Path, *answers: Any) -> RunState:
    exp = Experiment("x", "s.yaml", LoadSpec(), ())
    run = RunState(exp, RunOptions(out=tmp_path, stream=io.StringIO(), tty=False))
    run.plan = Plan(time.time() - 4.2, PHASES, (5, 5.0))
    run.clients = [cast(Any, FakeAdmin(*answers))]
    run.instances = {FakeAdmin.url: "h:1"}
    run.cursors = {FakeAdmin.url: 0}
    run.events = {FakeAdmin.url: []}
    return run


def answer(instance: str = "h:1", *events: dict[str, Any]) -> dict[str, Any]:
    return {"events": list(events), "next": len(events), "instance": instance}


GONE = Unreachable(FakeAdmin.url, "refused")


async def test_a_proxy_silent_twice_in_a_row_is_a_problem_once(tmp_path: Path) -> None:
    run = bare_run(tmp_path, GONE, answer(), GONE, GONE, GONE)
    for _ in range(2):
        await run.poll_events()
    assert run.problems == []  # one failed poll, then an answer: a blip
    for _ in range(3):
        await run.poll_events()
    assert run.problems == [
        "the proxy at http://a:1 stopped answering 4s into the scenario, during phase outage "
        "(refused)"
    ]


async def test_a_restarted_proxy_is_a_problem_and_its_events_are_not_the_runs(
    tmp_path: Path,
) -> None:
    later = ev(1, AT, "scenario_started")
    run = bare_run(tmp_path, answer("h:1", ev(7, AT, "phase_changed")), answer("h:2", later))
    await run.poll_events()
    await run.poll_events()
    assert len(run.events[FakeAdmin.url]) == 1
    (problem,) = run.problems
    assert problem.startswith("the proxy at http://a:1 restarted 4s into the scenario")
    assert "(instance h:1, now h:2)" in problem


def fake_child(name: str, code: int | None) -> Child:
    return Child(name, cast(Any, SimpleNamespace(returncode=code)), Path("/nonexistent.log"))


def test_locust_gone_before_the_end_is_a_problem_and_ends_the_run(tmp_path: Path) -> None:
    run = bare_run(tmp_path)
    run.scenario_at = AT
    run.load = Load(fake_child("locust", -9))
    assert run._check_load_alive(time.time(), time.time() + 60) is False
    assert run.load_lost_at is not None
    (problem,) = run.problems
    assert problem.startswith("Locust exited (code -9) 4s into the scenario, during phase outage")
    assert run.notes == ["locust's log (/nonexistent.log) is empty"]
    run._check_load_alive(time.time(), time.time() + 60)
    assert len(run.problems) == 1  # named once


def test_locust_done_at_the_planned_end_and_a_dead_worker(tmp_path: Path) -> None:
    run = bare_run(tmp_path)
    run.scenario_at = AT
    run.load = Load(fake_child("locust-master", 0), [fake_child("locust-worker-0", None)])
    assert run._check_load_alive(time.time(), time.time() - 0.1) is False
    assert run.problems == []  # the shape's own stop at the end
    run.load = Load(fake_child("locust-master", None), [fake_child("locust-worker-0", -9)])
    assert run._check_load_alive(time.time(), time.time() + 60) is True
    (problem,) = run.problems
    assert problem.startswith("Locust worker 0 exited (code -9)") and "fewer users" in problem


def test_locust_failing_in_the_warm_up_is_a_setup_error(tmp_path: Path) -> None:
    run = bare_run(tmp_path)
    run.load = Load(fake_child("locust", 1))
    with pytest.raises(SetupError, match="locust exited"):
        run._check_load_alive(time.time())
