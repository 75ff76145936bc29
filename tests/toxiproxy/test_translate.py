"""A toxic in Toxiproxy's units becomes a TCP rule in chaosproxy's, and the engine takes it."""

from __future__ import annotations

from typing import Any

import pytest

from chaosproxy.tcp.rules import tcp_rule
from chaosproxy.toxiproxy.errors import ToxiproxyError
from chaosproxy.toxiproxy.model import new_toxic, updated_toxic
from chaosproxy.toxiproxy.translate import rule_params


@pytest.mark.parametrize(
    ("toxic", "meaning"),
    [
        (
            {"type": "latency", "attributes": {"latency": 100, "jitter": 7}},
            ("latency", {"latency": "100ms", "jitter": "7ms", "direction": "downstream"}),
        ),
        (
            {"type": "bandwidth", "stream": "UPSTREAM", "attributes": {"rate": 64}},
            ("bandwidth", {"rate": 64_000, "direction": "upstream"}),
        ),
        ({"type": "bandwidth", "attributes": {"rate": 0}}, None),  # Toxiproxy: no limit
        (
            {"type": "slow_close", "attributes": {"delay": 250}},
            ("slow_close", {"delay": "250ms", "direction": "downstream"}),
        ),
        (
            {"type": "timeout", "stream": "upstream"},
            ("timeout", {"timeout": "0ms", "direction": "upstream"}),
        ),
        ({"type": "reset_peer", "attributes": {"timeout": 30}}, ("reset", {"timeout": "30ms"})),
        (
            {"type": "slicer", "attributes": {"average_size": 10, "size_variation": 2, "delay": 5}},
            (
                "slicer",
                {
                    "average_size": 10,
                    "size_variation": 2,
                    "delay": "5us",
                    "direction": "downstream",
                },
            ),
        ),
        (
            {"type": "limit_data", "attributes": {"bytes": 9}},
            ("limit_data", {"bytes": 9, "direction": "downstream"}),
        ),
        ({"type": "noop"}, None),
        (  # Toxiproxy takes both: the rule caps them where the TCP faults need it
            {"type": "latency", "attributes": {"latency": 10, "jitter": 100}},
            ("latency", {"latency": "10ms", "jitter": "10ms", "direction": "downstream"}),
        ),
        (
            {"type": "slicer", "attributes": {"average_size": 100, "size_variation": 100}},
            (
                "slicer",
                {
                    "average_size": 100,
                    "size_variation": 99,
                    "delay": "0us",
                    "direction": "downstream",
                },
            ),
        ),
    ],
)
def test_each_toxic_means_one_tcp_fault_in_chaosproxys_units(
    toxic: dict[str, Any], meaning: tuple[str, dict[str, Any]] | None
) -> None:
    parsed = new_toxic(toxic)
    assert rule_params(parsed) == meaning
    if meaning is not None:  # and the TCP rule compiler takes those parameters as they are
        tcp_rule(proxy="db", fault=meaning[0], params=meaning[1], probability=parsed.toxicity)


def test_defaults_and_updates_follow_toxiproxy() -> None:
    toxic = new_toxic({"type": "latency", "stream": "UPSTREAM"})
    assert toxic.to_json() == {
        "attributes": {"latency": 0, "jitter": 0},
        "name": "latency_UPSTREAM",  # the stream as written, as Toxiproxy names it
        "type": "latency",
        "stream": "UPSTREAM",
        "toxicity": 1,
    }
    changed = updated_toxic(toxic, {"attributes": {"jitter": 4}, "type": "x", "name": "y"})
    assert changed.to_json()["attributes"] == {"latency": 0, "jitter": 4}
    assert (changed.name, changed.type, changed.toxicity) == ("latency_UPSTREAM", "latency", 1.0)
    assert updated_toxic(changed, {"toxicity": 0.5}).to_json()["toxicity"] == 0.5


def test_a_toxic_the_tcp_faults_refuse_is_a_400_naming_it() -> None:
    from chaosproxy.toxiproxy.translate import EngineRules

    toxic = new_toxic({"type": "slicer", "attributes": {"average_size": 0}})
    with pytest.raises(ToxiproxyError) as refused:
        EngineRules(engine=None).prepare("db", toxic)  # type: ignore[arg-type]
    assert refused.value.status == 400
    assert refused.value.message.startswith("bad request body: toxic slicer_downstream:")
    assert "average_size" in refused.value.message
