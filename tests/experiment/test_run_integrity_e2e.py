"""A run that did not go as planned is never a PASS: real runs (a real upstream, a real proxy,
a real Locust subprocess) in which Locust or the proxy is killed while the fault phase runs.
Each must end INCONCLUSIVE, exit code 1, with a reason that names what died."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from chaosproxy.admin.client import AdminClient
from chaosproxy.cli.demo import DemoSystem
from chaosproxy.common.address_file import Addresses, split
from chaosproxy.common.address_file import read as read_addresses
from chaosproxy.common.errors import ChaosProxyError
from chaosproxy.experiment.run_state import RunOptions
from chaosproxy.experiment.runner import Outcome, run_experiment
from chaosproxy.experiment.spec import load_experiment_text
from tests.experiment.test_run_e2e import gateway, system

pytestmark = pytest.mark.slow
__all__ = ["system"]  # the fixture (a demo system; `gateway` calls it through the proxy)

SCENARIO = """\
name: outage
phases:
  - name: steady
    duration: 3s
  - name: outage
    duration: 6s
    rules:
      - match: {path: "/api/**"}
        fault: {error: {status: 500}}
  - name: after
    duration: 6s
"""

EXPERIMENT = """\
name: integrity
scenario: outage.yaml
WHERE
target: TARGET
load:
  users: 5
  spawn_rate: 5
  wait: 100ms
  settle: 1s
  requests:
    - {path: /api/items}
checks:
  - name: served
    during_phase: outage
    metric: error_rate
    below: 0.05
  - name: recovers
    after_phase: outage
    metric: error_rate
    below: 0.01
    within: 10s
    for: 2s
"""


def experiment(tmp: Path, where: str, target: str, halt: bool = False) -> Path:
    (tmp / "outage.yaml").write_text(SCENARIO)
    text = EXPERIMENT.replace("WHERE", where).replace("TARGET", target)
    if halt:
        text = text.replace("    below: 0.05\n", "    below: 0.05\n    halt: true\n", 1)
    path = tmp / "experiment.yaml"
    path.write_text(text)
    return path


def start_run(path: Path, out: Path, system: DemoSystem | None = None) -> asyncio.Task[Outcome]:
    """The run, under way; `system`: its gateways call through the proxy the run starts."""
    exp = load_experiment_text(path.read_text(), str(path))
    on_proxy = system.on_proxy if system is not None else None
    opts = RunOptions(out=out, tty=False, stream=io.StringIO(), on_proxy=on_proxy)
    return asyncio.create_task(run_experiment(exp, opts))


async def wait_for(
    task: asyncio.Task[Outcome] | None, ready: Callable[[], Awaitable[bool]], what: str
) -> None:
    """Until `ready()` (observable state, polled), failing fast if the run ended first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 90
    while not await ready():
        if task is not None and task.done():
            task.result()  # its exception, if any
            pytest.fail(f"the run ended before {what}")
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def in_outage(admin: str) -> bool:
    """The proxy at `admin` has run the scenario's fault phase for two seconds."""
    async with AdminClient(admin, timeout=2.0) as c:
        try:
            sc = (await c.status()).get("scenario") or {}
        except ChaosProxyError:
            return False
    running = sc.get("state") == "running" and sc.get("phase") == "outage"
    return running and float(sc.get("phase_elapsed", 0.0)) >= 2.0


def descendants() -> dict[int, list[str]]:
    """Every process under this one (the runner runs in it) with its command line, from /proc."""
    parents: dict[int, int] = {}
    argv: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
        argv[int(entry)] = cmdline.decode(errors="replace").split("\0")
    found: set[int] = set()
    frontier = {os.getpid()}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return {p: argv[p] for p in found}


def child(*words: str) -> int:
    """The one process under this test whose command line has all of `words`: its pid."""
    found = [p for p, argv in descendants().items() if all(w in argv for w in words)]
    assert len(found) == 1, found
    return found[0]


def settled(outcome: Outcome, out: Path) -> dict[str, Any]:
    """The run's results: INCONCLUSIVE, exit 1, the problems in results.json and its reasons."""
    results: dict[str, Any] = json.loads((out / "results.json").read_text())
    assert outcome.results == results
    assert outcome.verdict == "INCONCLUSIVE" and outcome.exit_code == 1, results["reasons"]
    assert results["verdict"] == "INCONCLUSIVE" and results["problems"]
    for p in results["problems"]:
        assert f"the run did not go as planned: {p}" in results["reasons"]
    return results


async def test_locust_killed_mid_fault_is_inconclusive_and_says_so(
    system: DemoSystem, tmp_path: Path, start_proxy: Any
) -> None:
    rt = await start_proxy(system.primary)
    target = await gateway(system, rt.proxy_port)
    path = experiment(tmp_path, f"admin: {rt.admin_url}", target)
    task = start_run(path, tmp_path / "out")
    await wait_for(task, lambda: in_outage(rt.admin_url), "the outage phase")
    os.kill(child("locust", "--headless"), signal.SIGKILL)
    outcome = await asyncio.wait_for(task, 90)

    results = settled(outcome, tmp_path / "out")
    first = results["problems"][0]
    assert first.startswith("Locust exited (code -9) ") and "during phase outage" in first
    assert "the rest of the scenario (outage, after) had no load" in first
    assert any(n.startswith("locust's log") for n in results["notes"])
    # The run stopped at once, and left no scenario running on the proxy.
    assert rt.engine.current() is None and rt.engine.scheduled is None
    assert "after" not in {p["name"] for p in results["phases"] if p["seconds"]}


async def test_an_admin_proxy_killed_mid_fault_is_inconclusive_and_named(
    system: DemoSystem, tmp_path: Path
) -> None:
    where = tmp_path / "proxy-address.json"
    with (tmp_path / "proxy.log").open("wb") as log:
        proxy = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chaosproxy",
            "run",
            "--upstream",
            system.primary,
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--address-file",
            str(where),
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:

        async def bound() -> bool:
            assert proxy.returncode is None, (tmp_path / "proxy.log").read_text()
            return read_addresses(str(where)) is not None

        await wait_for(None, bound, "the proxy to bind its ports")
        addresses = read_addresses(str(where))
        assert addresses is not None
        admin = f"http://{addresses.admin}"

        async def healthy() -> bool:
            assert proxy.returncode is None, (tmp_path / "proxy.log").read_text()
            async with AdminClient(admin, timeout=1.0) as c:
                try:
                    return await c.health()
                except ChaosProxyError:
                    return False

        target = await gateway(system, split(addresses.listen)[1])
        path = experiment(tmp_path, f"admin: {admin}", target)
        await wait_for(None, healthy, "the proxy to answer")
        task = start_run(path, tmp_path / "out")
        await wait_for(task, lambda: in_outage(admin), "the outage phase")
        proxy.kill()
        await proxy.wait()
        outcome = await asyncio.wait_for(task, 90)
    finally:
        if proxy.returncode is None:
            proxy.kill()
            await proxy.wait()

    results = settled(outcome, tmp_path / "out")
    first = results["problems"][0]
    assert first.startswith(f"the proxy at {admin} stopped answering "), first
    assert "during phase outage" in first
    assert len(results["problems"]) == 1, results["problems"]  # named once, not per symptom


async def test_the_proxy_the_run_started_killed_mid_fault_ends_the_run_inconclusive(
    system: DemoSystem, tmp_path: Path
) -> None:
    target = await gateway(system)
    where = f"proxy:\n  upstream: {system.primary}\n  listen: 127.0.0.1:0"
    task = start_run(experiment(tmp_path, where, target), tmp_path / "out", system)
    bound: list[Addresses] = []

    async def outage() -> bool:
        if not bound:  # where it listens, from its address file once it has bound
            found = read_addresses(str(tmp_path / "out" / "proxy-address.json"))
            if found is None:
                return False
            bound.append(found)
        return await in_outage(f"http://{bound[0].admin}")

    await wait_for(task, outage, "the outage phase")
    os.kill(child("chaosproxy", "--journal"), signal.SIGKILL)
    outcome = await asyncio.wait_for(task, 90)

    results = settled(outcome, tmp_path / "out")
    assert results["problems"][0].startswith(
        f"the proxy the run started (http://{bound[0].listen}) exited (code -9) "
    )
    assert "during phase outage" in results["problems"][0]
    assert len(results["problems"]) == 1, results["problems"]
    assert any(n.startswith("the proxy's log") for n in results["notes"])


async def test_a_halt_is_not_a_problem_the_halted_check_is_judged_up_to_it(
    system: DemoSystem, tmp_path: Path
) -> None:
    """Without failover the outage breaks `served`, which halts the run: the scenario stops
    early and Locust exits early, as the halt asked; the run went as planned, so FAIL."""
    target = await gateway(system, failover=False)
    where = f"proxy:\n  upstream: {system.primary}\n  listen: 127.0.0.1:0"
    path = experiment(tmp_path, where, target, halt=True)
    outcome = await asyncio.wait_for(start_run(path, tmp_path / "out", system), 120)
    assert outcome.results is not None
    results = outcome.results
    assert results["problems"] == [], results["problems"]
    assert results["halted"]["check"] == "served"
    assert outcome.verdict == "FAIL" and outcome.exit_code == 1, results["reasons"]
    served = next(c for c in results["checks"] if c["name"] == "served")
    assert served["status"] == "FAIL" and served["halted"] is True
