"""Every ```yaml block of docs/faults.md builds: each fault it names, with its parameters."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from chaosproxy.faults import build, registry

DOC = Path(__file__).resolve().parents[2] / "docs" / "faults.md"
TEXT = DOC.read_text()
BLOCKS = re.findall(r"^```yaml\n(.*?)^```", TEXT, flags=re.S | re.M)


def fault_mappings(node: Any) -> Iterator[dict[str, Any]]:
    """Every `fault:` mapping anywhere in a YAML document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "fault" and isinstance(value, dict):
                yield value
            else:
                yield from fault_mappings(value)
    elif isinstance(node, list):
        for item in node:
            yield from fault_mappings(item)


def test_every_fault_has_a_section_and_an_example() -> None:
    named = {name for block in BLOCKS for f in fault_mappings(yaml.safe_load(block)) for name in f}
    assert named == set(registry())
    for name in registry():
        assert f"\n## {name}\n" in TEXT


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_docs_example_builds(block: str) -> None:
    faults = list(fault_mappings(yaml.safe_load(block)))
    assert faults, "an example without a fault: mapping"
    for mapping in faults:
        for name, params in mapping.items():
            build(name, params, "fault")


def test_combination_order_table_matches_the_code() -> None:
    rows = re.findall(r"^\| (\d+) \| `(\w+)` \|", TEXT, flags=re.M)
    assert {name: int(order) for order, name in rows} == {
        name: cls.order for name, cls in registry().items()
    }
