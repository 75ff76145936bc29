"""A cache cut under real load: a service that reads a Redis cache through chaosproxy's TCP
proxy keeps serving while Redis is cut if it falls back to computing its answers, and its
clients see the cut if it does not. A real redis-server, a real `chaosproxy run` subprocess
(started by the experiment runner with `--tcp`), a real Locust; the verdicts must match what
each service was built to do, and the cut must show in the journal and the results."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chaosproxy.common.address_file import split
from chaosproxy.experiment.processes import StartedProxy
from chaosproxy.experiment.run_state import RunOptions
from chaosproxy.experiment.runner import Outcome, run_experiment
from chaosproxy.experiment.spec import load_experiment_text
from chaosproxy.experiment.spec_scenario import resolve_experiment_scenario
from tests.tcp import databases
from tests.tcp.cache_service import CacheService

DOC = Path(__file__).resolve().parents[2] / "docs" / "tcp.md"


def doc_yaml(marker: str) -> str:
    """The YAML block after `<!-- marker -->` in docs/tcp.md: the test runs what the page shows."""
    text = DOC.read_text()
    at = text.index(f"<!-- {marker} -->")
    body = text[text.index("```yaml\n", at) + len("```yaml\n") :]
    return body[: body.index("```")]


def test_the_documented_experiment_validates_with_its_placeholders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its defaults give a valid file, and `proxy.args` is read as `chaosproxy run` reads it."""
    for name in ("CHAOS_SERVICE", "CHAOS_REDIS_LISTEN", "CHAOS_REDIS"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "cache-cut.yaml").write_text(doc_yaml("cache-cut-scenario"))
    path = tmp_path / "experiment.yaml"
    path.write_text(doc_yaml("cache-cut-experiment"))
    exp = load_experiment_text(path.read_text(), str(path))
    assert exp.proxy is not None and exp.target == "http://127.0.0.1:8000"
    assert exp.proxy.args == ("--tcp", "redis=127.0.0.1:6380:127.0.0.1:6379")
    scenario = resolve_experiment_scenario(exp)  # and the scenario beside it, phases checked
    (rule,) = scenario.phases[1].rules
    assert rule.match.tcp == "redis" and scenario.phases[1].name == "redis-down"


@pytest.fixture
async def redis_server() -> AsyncIterator[databases.Server]:
    async with databases.redis() as server:
        yield server


def write(
    tmp: Path, monkeypatch: pytest.MonkeyPatch, service: str, listen: int, redis: int
) -> Path:
    """The documented scenario and experiment, its placeholders set as a CI job would."""
    monkeypatch.setenv("CHAOS_SERVICE", service)
    monkeypatch.setenv("CHAOS_REDIS_LISTEN", f"127.0.0.1:{listen}")
    monkeypatch.setenv("CHAOS_REDIS", f"127.0.0.1:{redis}")
    (tmp / "cache-cut.yaml").write_text(doc_yaml("cache-cut-scenario"))
    path = tmp / "experiment.yaml"
    path.write_text(doc_yaml("cache-cut-experiment"))
    return path


async def run_cut(
    tmp: Path, monkeypatch: pytest.MonkeyPatch, redis_port: int, *, fallback: bool
) -> tuple[Outcome, CacheService]:
    service = CacheService(None, fallback=fallback)  # Redis through the run's TCP proxy
    url = await service.start()

    def on_proxy(proxy: StartedProxy) -> None:  # bound now: the kernel chose its port
        service.use_redis(split(proxy.tcp["redis"])[1])

    try:
        path = write(tmp, monkeypatch, url, 0, redis_port)
        exp = load_experiment_text(path.read_text(), str(path))
        opts = RunOptions(out=tmp / "out", tty=False, on_proxy=on_proxy)
        outcome = await run_experiment(exp, opts)
    finally:
        await service.stop()
    return outcome, service


def check(outcome: Outcome, name: str) -> dict[str, Any]:
    assert outcome.results is not None
    return next(c for c in outcome.results["checks"] if c["name"] == name)


def phase(outcome: Outcome, name: str) -> dict[str, Any]:
    assert outcome.results is not None
    return next(p for p in outcome.results["phases"] if p["name"] == name)


def tcp_faults(out: Path) -> list[dict[str, Any]]:
    """The journal's lines for faults on the Redis proxy's connections."""
    lines = (out / "journal.jsonl").read_text().splitlines()
    return [j for j in map(json.loads, lines) if j.get("path") == "tcp:redis"]


def numbers(outcome: Outcome) -> str:
    """The checks as the report prints them, for the test's output."""
    assert outcome.results is not None
    down = phase(outcome, "redis-down")
    return "\n".join(
        [
            f"{c['name']}: {c['status']} {c['value']} {c['interval']} {c.get('recovered_after_s')}"
            for c in outcome.results["checks"]
        ]
        + [f"redis-down: {down['client']['requests']} requests, {down['proxy']['tcp_faults']} cut"]
    )


@pytest.mark.slow
async def test_with_a_fallback_the_service_keeps_serving_while_redis_is_cut(
    redis_server: databases.Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcome, service = await run_cut(tmp_path, monkeypatch, redis_server.port, fallback=True)
    assert outcome.results is not None
    assert outcome.verdict == "PASS" and outcome.exit_code == 0, outcome.results["reasons"]
    served = check(outcome, "served while redis is down")
    assert served["value"] < 0.05 and served["interval"][1] < 0.05
    # Not "nothing happened": the cut acted on Redis connections, only in its phase, and the
    # service fell back (it served from the cache before and after).
    down = phase(outcome, "redis-down")
    assert down["resilience"]["tcp_faults"] > 0 and down["proxy"]["tcp_faults"] > 0
    assert phase(outcome, "steady")["proxy"]["tcp_faults"] == 0
    cut = tcp_faults(tmp_path / "out")
    assert cut and {(j["phase"], j["fault"]) for j in cut} == {("redis-down", "reset")}
    assert service.counts.fallbacks > 20 and service.counts.hits > 20, service.counts
    print(
        numbers(outcome), service.counts.hits, service.counts.fallbacks, service.counts.unavailable
    )


@pytest.mark.slow
async def test_without_a_fallback_the_cut_reaches_the_clients_and_it_fails(
    redis_server: databases.Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcome, service = await run_cut(tmp_path, monkeypatch, redis_server.port, fallback=False)
    assert outcome.results is not None
    assert outcome.verdict == "FAIL" and outcome.exit_code == 1, outcome.results["reasons"]
    served = check(outcome, "served while redis is down")
    assert served["status"] == "FAIL" and served["interval"][0] > 0.5 and served["margin"] < 0
    # Redis back, the pool reconnects: the clients are served again.
    assert check(outcome, "recovers after redis is back")["status"] == "PASS"
    assert phase(outcome, "redis-down")["resilience"]["tcp_faults"] > 0
    assert tcp_faults(tmp_path / "out")
    assert service.counts.unavailable > 20 and service.counts.hits > 20, service.counts
    print(
        numbers(outcome), service.counts.hits, service.counts.fallbacks, service.counts.unavailable
    )
