"""Real runs against gRPC services: a real chaosproxy subprocess (h2c in front of the primary),
real Locust with the bundled gRPC locustfile (grpcio under gevent), and the gRPC demo system
(a gateway with or without failover, a primary and a replica, all grpc.aio servers).

The bundled pair: the scenario aborts the primary's calls with UNAVAILABLE. With failover the
gateway's clients stay served (PASS); without, they see the UNAVAILABLE calls (FAIL, halted).
Either way the proxy saw the outage: gRPC calls answered UNAVAILABLE count as its errors, and
its per-second rows, metrics and journal name the protocol and the gRPC status.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chaosproxy.demo.grpc_system import GrpcDemoSystem
from chaosproxy.experiment.run_state import RunOptions
from chaosproxy.experiment.runner import Outcome, run_experiment
from chaosproxy.experiment.series import second_from_json
from chaosproxy.experiment.spec import load_experiment_file, load_experiment_text

pytestmark = pytest.mark.slow

BUNDLED = Path(__file__).resolve().parents[2] / "chaosproxy" / "data" / "experiments"


@pytest.fixture
async def system() -> AsyncIterator[GrpcDemoSystem]:
    s = GrpcDemoSystem()
    await s.start()
    yield s
    await s.stop()


def check(outcome: Outcome, name: str) -> dict[str, Any]:
    assert outcome.results is not None
    return next(c for c in outcome.results["checks"] if c["name"] == name)


@pytest.mark.parametrize(("failover", "verdict"), [(True, "PASS"), (False, "FAIL")])
async def test_the_bundled_grpc_pair_against_the_grpc_demo_system(
    system: GrpcDemoSystem,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failover: bool,
    verdict: str,
) -> None:
    target = await system.gateway(None, failover=failover)  # through the run's proxy
    monkeypatch.setenv("CHAOS_UPSTREAM", system.primary)
    monkeypatch.setenv("CHAOS_PROXY_LISTEN", "127.0.0.1:0")
    monkeypatch.setenv("CHAOS_TARGET", target)
    name = "demo-grpc-failover" if failover else "demo-grpc-no-failover"
    exp = load_experiment_file(BUNDLED / f"{name}.yaml")
    out = tmp_path / "out"
    opts = RunOptions(out=out, tty=False, on_proxy=system.on_proxy)
    outcome = await run_experiment(exp, opts)
    assert outcome.results is not None
    results = outcome.results
    assert results["problems"] == [], results["problems"]
    served = check(outcome, "clients stay served during the outage")
    assert served["status"] == verdict, results["checks"]
    assert outcome.verdict == verdict, results["reasons"]
    if failover:
        assert served["interval"][1] < 0.02
        assert results["halted"] is None
    else:
        assert served["interval"][0] > 0.5  # every call failed over to nothing
        assert results["halted"]["check"] == "clients stay served during the outage"
    # The proxy view: the run's own calls (the gateway passes x-chaos-run on), UNAVAILABLE
    # counted as errors although their HTTP status is 200.
    assert not any("all of the proxy's traffic" in n for n in results["notes"]), results["notes"]
    outage = next(p for p in results["phases"] if p["name"] == "outage")
    assert outage["client"]["requests"] >= 20 and outage["proxy"]["injected"] >= 20
    # every call the primary got failed while injecting (without failover, the phase runs on
    # three seconds past the halt, without faults)
    assert outage["proxy"]["error_rate"] > (0.99 if failover else 0.25)
    if failover:
        assert outage["resilience"]["absorbed_share"] == pytest.approx(1.0, abs=0.02)
    # Both views name the gRPC statuses: the clients' (Locust) and the proxy's (trailers-only
    # answers, injected), per phase in results.json, in the reports and the console's table.
    steady = next(p for p in results["phases"] if p["name"] == "steady")
    # on a busy machine (a second copy of the suite beside this one) a couple of the gateway's
    # calls to the primary were seen running past its deadline: the proxy names them too
    proxy = steady["proxy"]["grpc"]
    assert sum(proxy.values()) == steady["proxy"]["requests"]
    assert proxy["OK"] >= 0.98 * steady["proxy"]["requests"], proxy
    # The clients' view names every call's status, and dates a call by its start: a call begun
    # in the last moments of steady that reached the proxy after the outage began was injected
    # (seen with a second copy of the suite beside this one: 9 calls, all in steady's last
    # tenth of a second, at a p95 of 370 ms). Calls begun before its last 0.3 s are OK but
    # for the few the gateway's deadline cut on a busy machine (2 %, as in the proxy's view).
    client = steady["client"]["grpc"]
    assert sum(client.values()) == steady["client"]["requests"]
    rows = [
        second_from_json(json.loads(x)) for x in (out / "series.jsonl").read_text().splitlines()
    ]
    in_steady = [s for s in rows if s.phase == "steady"]
    boundary = sum(f for d, (_, f) in in_steady[-1].client.tenths.items() if d >= 7)
    assert (
        steady["client"]["requests"] - client.get("OK", 0) - boundary
        <= 0.02 * steady["client"]["requests"]
    ), (client, boundary)
    if failover:
        assert outage["proxy"]["grpc"] == {"UNAVAILABLE": outage["proxy"]["requests"]}
        assert outage["client"]["grpc"] == {"OK": outage["client"]["requests"]}
    else:
        assert outage["client"]["grpc"]["UNAVAILABLE"] == outage["client"]["failures"] > 0
        assert outage["proxy"]["grpc"]["UNAVAILABLE"] == outage["proxy"]["injected"]
    assert "UNAVAILABLE" in (out / "report.md").read_text()
    assert 'data-phase-grpc="outage"' in (out / "report.html").read_text()
    # Locust counted the calls as gRPC requests, failures by their status name.
    stats = json.loads((out / "locust.json").read_text())
    assert {s["method"] for s in stats} == {"grpc"}
    assert {s["name"] for s in stats} == {"/demo.Items/Get", "/demo.Items/List"}
    failures = (out / "locust_failures.csv").read_text()
    assert ("UNAVAILABLE" in failures) is not failover
    # The journal: each injected fault with the protocol it acted on.
    lines = [json.loads(x) for x in (out / "journal.jsonl").read_text().splitlines()]
    aborts = [x for x in lines if x["fault"] == "grpc_abort"]
    assert aborts and all(x["protocol"] == "h2" for x in aborts)
    assert all(x["grpc_status"] == "UNAVAILABLE" for x in aborts)


# ---------------------------------------------------------------- a control group, over gRPC

COHORT_SCENARIO = """\
name: grpc-cohort-outage
seed: 21                      # the users u1..u10 split 5 / 5
phases:
  - name: steady
    duration: 5s
  - name: outage
    duration: 16s             # enough calls in each cohort to show "no worse" on a busy machine
    rules:
      - name: items-unavailable-for-the-cohort
        match: {grpc: {service: demo.Items}, cohort: {share: 0.5, by: header x-chaos-user}}
        fault: {grpc_abort: {code: UNAVAILABLE, message: "primary draining"}}
  - name: after
    duration: 3s
"""

COHORT_EXPERIMENT = """\
name: grpc-control
scenario: grpc-cohort-outage.yaml
proxy:
  upstream: UPSTREAM
  listen: 127.0.0.1:0
target: TARGET
load:
  users: 10
  spawn_rate: 10
  wait: 100ms
  settle: 1s
  locustfile: grpc
  requests:
    - {path: /demo.Items/Get, body: "7", weight: 3}
    - {path: /demo.Items/List}
checks:
  - name: the fault cohort is served like the control group
    during_phase: outage
    metric: error_rate
    compare_to: control
    below: 0.02
  - name: the fault stays inside its cohort
    during_phase: outage
    metric: blast_radius
    below: 0.8
"""


@pytest.mark.parametrize(("failover", "verdict"), [(True, "PASS"), (False, "FAIL")])
async def test_a_control_group_over_grpc(
    system: GrpcDemoSystem, tmp_path: Path, failover: bool, verdict: str
) -> None:
    """The cohort reaches the proxy as `x-chaos-user` metadata (GrpcUser sends it, the gateway
    passes it on): half the users' calls to the primary are aborted. With failover the fault
    cohort is served like the control group in the same seconds (PASS); without, it sees
    UNAVAILABLE where the control group does not (FAIL). Either way the fault stayed in its
    cohort, and the client view counts each cohort's calls."""
    target = await system.gateway(None, failover=failover)
    (tmp_path / "grpc-cohort-outage.yaml").write_text(COHORT_SCENARIO)
    text = COHORT_EXPERIMENT.replace("UPSTREAM", system.primary).replace("TARGET", target)
    path = tmp_path / "experiment.yaml"
    path.write_text(text)
    exp = load_experiment_text(text, str(path))
    out = tmp_path / "out"
    outcome = await run_experiment(exp, RunOptions(out=out, tty=False, on_proxy=system.on_proxy))
    results = outcome.results
    assert results is not None
    assert results["problems"] == [], results["problems"]
    served = check(outcome, "the fault cohort is served like the control group")
    assert served["status"] == verdict, results["checks"]
    assert outcome.verdict == verdict, results["reasons"]
    if failover:
        assert served["interval"][1] < 0.02
    else:
        assert served["interval"][0] > 0.5  # the cohort's calls all failed, control's none
    radius = check(outcome, "the fault stays inside its cohort")
    assert radius["status"] == "PASS" and radius["value"] == pytest.approx(0.5, abs=0.1)
    outage = next(p for p in results["phases"] if p["name"] == "outage")
    assert outage["proxy"]["injected"] > 0
    # the journal: only the fault cohort's calls, each with the status its client read
    lines = [json.loads(x) for x in (out / "journal.jsonl").read_text().splitlines()]
    aborts = [x for x in lines if x["fault"] == "grpc_abort"]
    assert aborts and {(x["cohort"], x["grpc_status"]) for x in aborts} == {
        ("fault", "UNAVAILABLE")
    }
