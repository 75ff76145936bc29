"""Every scenario key is declared once (`config/keys.py`): the loader reads it, the JSON Schema
lists it and `scenarios show` writes it in declared order; a key not declared is refused by the
loader (located, with a did-you-mean) and by the schema alike."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from chaosproxy.common.errors import ConfigError, Problem
from chaosproxy.config.dump import scenario_to_data
from chaosproxy.config.keys import PHASE, RULE, RULESET, SCENARIO, TABLES, Key, Table
from chaosproxy.config.loader import bundled_scenario_dir, load_scenario_file
from chaosproxy.config.model import Scenario
from chaosproxy.config.schema import ruleset_schema, scenario_schema

Data = dict[str, Any]
Where = Callable[[Data], Data] | None

FAULT = {"error": {"status": 500}}
PHASES = [{"name": "p", "duration": "1s"}]
# The fewest keys each mapping may hold and still load.
BASES: dict[str, Data] = {
    "scenario": {"name": "s", "phases": PHASES},
    "phase": {"name": "p", "duration": "1s"},
    "rule": {"fault": FAULT},
    "rule set": {"rules": [{"fault": FAULT}]},
    "when": {"rps_above": 50},
    "ramp": {"from": 0.1, "to": 0.9},
    "outcome": {"weight": 2, "fault": FAULT},  # weight 1 alone would be written as `fault:`
    "abort_if": {"error_rate_above": 0.5},
    "include": {"file": "shared/hard-outage.yaml"},
    "preset": {"preset": "mobile-3g"},
}


def _in_rule(key: str, value: Any) -> tuple[Data, Where]:
    rule = {"fault": FAULT, key: value} if key != "outcomes" else {key: value}
    doc = {"name": "s", "phases": [{"name": "p", "duration": "1s", "rules": [rule]}]}
    return doc, lambda d: d["phases"][0]["rules"][0][key]


def place(table: Table, mapping: Data, tmp: Path) -> tuple[Data, Where, Path]:
    """A scenario holding `mapping` where `table`'s mappings stand; where to find the mapping
    in the dump (None: not written back); the file the mapping is in."""
    scenario_file = tmp / "s.yaml"
    top = {"name": "s", "phases": PHASES}
    if table is SCENARIO:
        return mapping, lambda d: d, scenario_file
    if table is PHASE:
        return {"name": "s", "phases": [mapping]}, lambda d: d["phases"][0], scenario_file
    if table is RULE:
        doc = {"name": "s", "phases": [{"name": "p", "duration": "1s", "rules": [mapping]}]}
        return doc, lambda d: d["phases"][0]["rules"][0], scenario_file
    if table is RULESET:
        (tmp / "set.yaml").write_text(yaml.safe_dump(mapping, sort_keys=False))
        return {**top, "include": ["set.yaml"]}, None, tmp / "set.yaml"
    if table.name == "when":
        doc, where = _in_rule("when", mapping)
    elif table.name == "ramp":
        doc, where = _in_rule("probability", mapping)
    elif table.name == "outcome":
        doc, get = _in_rule("outcomes", [mapping])
        where = lambda d: get(d)[0]  # noqa: E731
    elif table.name == "abort_if":
        doc, where = {**top, "abort_if": mapping}, lambda d: d["abort_if"]
    elif table.name == "include":
        doc, where = {**top, "include": [mapping]}, None
    else:
        assert table.name == "preset"
        doc, where = {**top, "presets": [mapping]}, None
    return doc, where, scenario_file


def load(doc: Data, tmp: Path) -> Scenario:
    """Loaded from a file beside a copy of the bundled `shared/` rule sets."""
    if not (tmp / "shared").exists():
        shutil.copytree(bundled_scenario_dir() / "shared", tmp / "shared")
    path = tmp / "s.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_scenario_file(path)


def schema_errors(table: Table, doc: Data, mapping: Data) -> list[str]:
    schema, data = (ruleset_schema(), mapping) if table is RULESET else (scenario_schema(), doc)
    return [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(data)]


def object_keys(schema: Any) -> Iterator[tuple[str, ...]]:
    """The key lists of every object the schema describes."""
    if isinstance(schema, dict):
        if schema.get("type") == "object" and "properties" in schema:
            yield tuple(schema["properties"])
        for value in schema.values():
            yield from object_keys(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from object_keys(value)


CASES = [(t, k) for t in TABLES for k in t.keys]
IDS = [f"{t.name}.{k.name}" for t, k in CASES]


@pytest.mark.parametrize(("table", "key"), CASES, ids=IDS)
def test_every_declared_key_is_read_listed_in_the_schema_and_dumped_in_order(
    table: Table, key: Key, tmp_path: Path
) -> None:
    assert key.example is not None, "every key declares an example the loader accepts"
    rivals = table.one_of if key.name in table.one_of else ()
    mapping = {k: v for k, v in BASES[table.name].items() if k not in rivals}
    mapping[key.name] = key.example
    doc, where, _ = place(table, mapping, tmp_path)
    try:
        scenario = load(doc, tmp_path)
    except ConfigError as e:
        pytest.fail(str(e))
    assert schema_errors(table, doc, mapping) == []
    full = ruleset_schema() if table is RULESET else scenario_schema()
    assert table.names in set(object_keys(full))
    if where is None:  # a rule-set file or an include's entry: the loader inlines its rules
        return
    written = where(scenario_to_data(scenario))
    if key.write is None:  # includes and presets: inlined too
        assert key.name not in written
        return
    assert key.name in written
    assert list(written) == [name for name in table.names if name in written]


@pytest.mark.parametrize(("table", "key"), CASES, ids=IDS)
def test_a_misspelt_key_is_refused_by_the_loader_where_it_stands_and_by_the_schema(
    table: Table, key: Key, tmp_path: Path
) -> None:
    wrong = key.name + "x"
    mapping = {**BASES[table.name], wrong: key.example}
    doc, _, file = place(table, mapping, tmp_path)
    with pytest.raises(ConfigError) as info:
        load(doc, tmp_path)
    [p] = info.value.problems
    lines = file.read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if re.match(rf"\s*(- )?{wrong}:", text))
    assert (Path(p.file).name, p.line, p.col) == (file.name, line, lines[line - 1].index(wrong) + 1)
    assert p.path.endswith(wrong)
    assert p.message.startswith("unknown key; did you mean ") and key.name in p.message
    assert schema_errors(table, doc, mapping) != []


@pytest.mark.parametrize("table", TABLES, ids=[t.name for t in TABLES])
def test_an_unknown_key_lists_the_declared_ones_in_order(table: Table, tmp_path: Path) -> None:
    doc, _, _ = place(table, {**BASES[table.name], "zzz": 1}, tmp_path)
    with pytest.raises(ConfigError) as info:
        load(doc, tmp_path)
    [p] = info.value.problems
    assert isinstance(p, Problem)
    assert p.message == f"unknown key; known keys: {', '.join(table.names)}"


def test_the_required_keys_are_asked_for_by_the_loader_and_the_schema(tmp_path: Path) -> None:
    for table in TABLES:
        for key in table.keys:
            if not key.required:
                continue
            mapping = {k: v for k, v in BASES[table.name].items() if k != key.name}
            doc, _, _ = place(table, mapping, tmp_path)
            with pytest.raises(ConfigError) as info:
                load(doc, tmp_path)
            messages = [p.message for p in info.value.problems]
            assert f"missing required key {key.name!r}" in messages, (table.name, key.name)
            assert schema_errors(table, doc, mapping) != [], (table.name, key.name)


DOC = Path(__file__).resolve().parents[2] / "docs" / "scenarios.md"


def test_the_key_tables_of_the_docs_list_the_declared_keys() -> None:
    """docs/scenarios.md's first three key tables: scenario, phase, rule."""
    tables, current = [], []
    for line in DOC.read_text().splitlines():
        if line.startswith("| `"):
            current += re.findall(r"`([a-z_]+)`", line.split("|")[1])
        elif current:
            tables.append(set(current))
            current = []
    assert tables[:3] == [set(SCENARIO.names), set(PHASE.names), set(RULE.names)]
