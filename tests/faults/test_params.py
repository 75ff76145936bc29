"""A fault declares its parameters once: the loader's checks and the JSON Schema agree, and the
registry finds every fault file without a list to keep."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest

from chaosproxy.common.errors import ConfigError
from chaosproxy.config.schema import scenario_schema
from chaosproxy.faults import build, registry

FAULTS_DIR = Path(__file__).resolve().parents[2] / "chaosproxy" / "faults"


def _schema_accepts(fault: str, params: dict[str, Any]) -> bool:
    doc = {
        "name": "s",
        "phases": [{"name": "p", "duration": "1s", "rules": [{"fault": {fault: params}}]}],
    }
    return jsonschema.Draft202012Validator(scenario_schema()).is_valid(doc)


def _loader_accepts(fault: str, params: dict[str, Any]) -> bool:
    try:
        build(fault, params, "fault")
    except ConfigError:
        return False
    return True


def test_every_module_of_the_faults_package_registers_a_fault() -> None:
    modules = {p.stem for p in FAULTS_DIR.glob("*.py")} - {"__init__", "base", "params"}
    files = {Path(c.__module__.replace(".", "/")).name for c in registry().values()}
    assert files == modules


@pytest.mark.parametrize(
    ("fault", "params"),
    [
        ("rate_limit", {"rps": 5, "burst": 0}),
        ("rate_limit", {"rps": 0}),
        ("rate_limit", {"burst": 3}),
        ("throttle", {"rate": "1KiB/s", "chunk": 0}),
        ("throttle", {}),
        ("pool_exhaustion", {"size": 0}),
        ("pool_exhaustion", {"hold": "1s"}),
        ("hang", {"then": "error", "status": 399}),
        ("error", {"after_upstream": "yes"}),
        ("latency", {"at": "body"}),
        ("malformed", {"kind": "odd"}),
        ("truncate", {"bytes": -1}),
        ("reset", {"after_bytes": "ten"}),
        ("upstream_down", {"x": 1}),
    ],
)
def test_loader_and_schema_both_reject(fault: str, params: dict[str, Any]) -> None:
    assert not _loader_accepts(fault, params)
    assert not _schema_accepts(fault, params)


@pytest.mark.parametrize(
    ("fault", "params"),
    [
        ("rate_limit", {"rps": 5, "burst": 1}),
        ("throttle", {"rate": "1KiB/s", "chunk": 1}),
        ("pool_exhaustion", {"size": 1, "hold": "10ms", "on_exhausted": "reset"}),
        ("hang", {"duration": "2s", "then": "error", "status": 504}),
        ("latency", {"distribution": "lognormal", "median": "10ms", "p99": "1s"}),
        ("stale_error", {"ttl": "30s"}),
    ],
)
def test_loader_and_schema_both_accept(fault: str, params: dict[str, Any]) -> None:
    assert _loader_accepts(fault, params)
    assert _schema_accepts(fault, params)


def test_the_schema_of_each_fault_is_its_declaration() -> None:
    http, _tcp = scenario_schema()["$defs"]["fault"]["anyOf"]  # HTTP faults, then TCP faults
    faults = http["properties"]
    assert set(faults) == set(registry())
    for name, cls in registry().items():
        assert faults[name]["anyOf"][0] == cls.params_schema()
        assert list(cls.params_schema()["properties"]) == [p.key for p in cls.params]
