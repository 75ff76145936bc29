"""TCP rules in scenarios: the loader's located errors, the engine keeping HTTP and TCP rules
apart, phases that start and end faults on live connections, seeded per-connection dice, and
the journal and metrics that record them."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

from chaosproxy.common.clock import FakeClock
from chaosproxy.common.errors import ConfigError
from chaosproxy.config.dump import scenario_to_yaml
from chaosproxy.config.loader import load_scenario_file, load_scenario_text
from chaosproxy.config.schema import scenario_schema
from chaosproxy.engine.core import Engine
from chaosproxy.engine.journal import Journal
from chaosproxy.faults.tcp.latency import TcpLatency
from chaosproxy.observe.metrics import Metrics
from chaosproxy.tcp.listener import ConnectionView
from tests.engine.helpers import View
from tests.examples.helpers import EXAMPLES
from tests.tcp.conftest import MakeRig, Upstream


def load(text: str) -> object:
    return load_scenario_text(textwrap.dedent(text), "tcp.yaml")


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load(text)
    return [str(p) for p in e.value.problems]


def test_a_tcp_rule_takes_tcp_faults_only() -> None:
    found = problems(
        """
        name: s
        phases:
          - name: p
            duration: 1s
            rules:
              - match: {tcp: pg}
                fault: {error: {status: 503}}
              - fault: {bandwidth: {rate: 1000}}
        """
    )
    assert found == [
        "tcp.yaml:8:17: phases[0].rules[0].fault.error: 'error' is an HTTP fault; a rule for TCP "
        "proxy 'pg' takes TCP faults: bandwidth, half_open, latency, limit_data, refused, reset, "
        "slicer, slow_close, timeout",
        "tcp.yaml:9:17: phases[0].rules[1].fault.bandwidth: 'bandwidth' is a TCP fault: its rule "
        "needs match: {tcp: NAME} (docs/tcp.md)",
    ]


def test_a_tcp_rule_refuses_http_match_keys_and_bad_parameters() -> None:
    found = problems(
        """
        name: s
        phases:
          - name: p
            duration: 1s
            rules:
              - match: {tcp: pg, path: /x}
                fault: {latency: {latency: 50ms, direction: sideways}}
        """
    )
    assert any("match.path: path does not apply to a TCP connection" in p for p in found)
    assert any(
        "fault.latency.direction: must be one of upstream, downstream, both" in p for p in found
    )


def test_latency_means_each_registry_s_own_fault() -> None:
    sc = load(
        """
        name: s
        phases:
          - name: p
            duration: 1s
            rules:
              - match: {tcp: pg}
                fault: {latency: {latency: 50ms}}
              - fault: {latency: {delay: 50ms}}
        """
    )
    engine = Engine()
    engine.start_scenario(sc)  # type: ignore[arg-type]
    http = engine.decide(View())
    tcp = engine.decide(ConnectionView("tcp:pg", "127.0.0.1"))
    assert http is not None and type(http.faults[0]).__name__ == "LatencyFault"
    assert tcp is not None and isinstance(tcp.faults[0], TcpLatency)


def test_http_requests_never_meet_tcp_rules_and_connections_never_meet_http_rules() -> None:
    engine = Engine()
    engine.start_scenario(
        load(  # type: ignore[arg-type]
            """
            name: s
            phases:
              - name: p
                duration: 1s
                rules:
                  - match: {tcp: pg}
                    fault: {reset: {}}
            """
        )
    )
    for path in ("/", "/tcp:pg", "tcp:pg"):
        assert engine.decide(View(path=path)) is None
    assert engine.decide(ConnectionView("tcp:redis", "127.0.0.1")) is None
    assert engine.decide(ConnectionView("tcp:pg", "127.0.0.1")) is not None
    engine.stop_scenario()
    engine.start_scenario(
        load(  # type: ignore[arg-type]
            """
            name: h
            phases:
              - name: p
                duration: 1s
                rules:
                  - fault: {error: {status: 503}}
            """
        )
    )
    assert engine.decide(ConnectionView("tcp:pg", "127.0.0.1")) is None
    assert engine.decide(View()) is not None


async def test_phases_start_and_end_faults_on_live_connections(
    make_rig: MakeRig, upstream: Upstream, tmp_path: Path
) -> None:
    clock = FakeClock()
    rig = await make_rig(clock)
    journal = Journal(tmp_path / "journal.jsonl", clock)
    journal.attach(rig.bus)
    metrics = Metrics()
    metrics.attach(rig.bus)
    await rig.proxies.add("db", "127.0.0.1:0", upstream.address)
    reader, writer = await rig.connect("db")
    writer.write(b"a")
    assert await reader.readexactly(1) == b"a"
    rig.engine.start_scenario(
        load(  # type: ignore[arg-type]
            """
            name: outage
            phases:
              - {name: calm, duration: 10s}
              - name: cut
                duration: 10s
                rules:
                  - name: partition
                    match: {tcp: db}
                    fault: {timeout: {timeout: 0}}
              - {name: healed, duration: 10s}
            """
        )
    )
    (relay,) = rig.proxy("db").relays
    assert relay.up.flow is None
    clock.advance(10)
    rig.engine.tick()  # phase `cut`: the open connection is partitioned
    assert relay.up.flow is not None and relay.up.flow.stall
    writer.write(b"b")
    clock.advance(10)
    rig.engine.tick()  # phase `healed`: the held byte goes through
    assert await reader.readexactly(1) == b"b"
    assert relay.up.flow is None
    writer.close()
    journal.close()
    lines = [json.loads(x) for x in (tmp_path / "journal.jsonl").read_text().splitlines()]
    assert [(x["scenario"], x["phase"], x["rule"], x["fault"], x["request_id"]) for x in lines] == [
        ("outage", "cut", "partition", "timeout", relay.id)
    ]
    text = metrics.exposition().decode()
    assert (
        'chaosproxy_faults_injected_total{fault="timeout",phase="cut",rule="partition",'
        'scenario="outage"} 1.0' in text
    )


async def test_seeded_runs_pick_the_same_connections(make_rig: MakeRig, upstream: Upstream) -> None:
    scenario = load(
        """
        name: flaky
        seed: 7
        phases:
          - name: p
            duration: 1h
            rules:
              - match: {tcp: db}
                probability: 0.5
                fault: {refused: {}}
        """
    )

    async def run() -> list[bool]:
        rig = await make_rig()
        await rig.proxies.add("db", "127.0.0.1:0", upstream.address)
        rig.engine.start_scenario(scenario)  # type: ignore[arg-type]
        out = []
        for _ in range(16):
            reader, writer = await rig.connect("db")
            writer.write(b"?")
            try:
                out.append(await reader.readexactly(1) == b"?")
            except (ConnectionResetError, asyncio.IncompleteReadError):
                out.append(False)
            writer.close()
        await rig.proxies.close()
        return out

    first = await run()
    assert 0 < first.count(True) < 16
    assert await run() == first


def test_a_tcp_scenario_passes_the_json_schema_and_dumps_back_the_same() -> None:
    path = EXAMPLES / "compose" / "db-failover.scenario.yaml"
    schema = scenario_schema()
    jsonschema.validate(yaml.safe_load(path.read_text()), schema)
    scenario = load_scenario_file(path)
    again = load_scenario_text(scenario_to_yaml(scenario), "dumped.yaml")
    assert (again.phases, again.rules) == (scenario.phases, scenario.rules)
    bad = {
        "name": "x",
        "phases": [
            {
                "name": "p",
                "duration": 1,
                "rules": [{"match": {"tcp": "pg"}, "fault": {"bandwidth": {"rat": 1}}}],
            }
        ],
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
