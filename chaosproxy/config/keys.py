"""Every key of a scenario file, declared once: its JSON Schema, how the loader reads it and how
`scenarios show` writes it back.

A `Table` is the set of keys one mapping may hold (a scenario, a phase, a rule, a rule-set file,
and the small mappings inside them), in the order they are written. The loader checks a mapping
against its table (unknown keys get a did-you-mean, required ones are asked for) and reads each
key with the key's own `read`; `schema.py` builds the editors' JSON Schema from the same tables;
`dump.py` writes the keys in declared order with each key's `write`. So a key added here is read,
in the schema and dumped, and a key not declared is refused by the loader and the schema alike —
as a fault's parameters are declared once in `faults/params.py`. The `match:` grammar is
`match_spec.py`'s; here it is one key, `match`, whose schema is `$defs/match`.

A little over 400 lines on purpose: the whole file format is one table of tables, read top to
bottom.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from yaml.nodes import Node

from chaosproxy.config.model import Ramp

if TYPE_CHECKING:
    from chaosproxy.config.dump import Writer
    from chaosproxy.config.loader import ScenarioReader

Schema = dict[str, Any]
# (reader, value node, key path) -> the model's value; problems are recorded, None when bad.
Read = Callable[["ScenarioReader", Node, str], Any]
# (writer, the mapping's model object) -> the value to write; None leaves the key out.
Write = Callable[["Writer", Any], Any]


@dataclass(frozen=True, slots=True)
class Key:
    """One key of a mapping. `read` None: the key is read where its mapping is (an include's
    `file`, reported at the entry's own path); `write` None: never written back (includes and
    presets are inlined by the loader). `example` is a value the loader accepts: editors show
    it, and the tests load, validate and dump every key with it."""

    name: str
    schema: Schema
    read: Read | None
    write: Write | None = None
    doc: str = ""
    required: bool = False
    example: Any = None

    def described(self) -> Schema:
        out = dict(self.schema)
        if self.doc:
            out["description"] = self.doc
        if self.example is not None:
            out["examples"] = [self.example]
        return out


@dataclass(frozen=True, slots=True)
class Table:
    """The keys one mapping may hold, in the order they are written. `what` names it in
    "expected ..., got ..."; `one_of`: exactly one of these keys; `any_of`: at least one."""

    name: str
    keys: tuple[Key, ...]
    what: str = "a mapping"
    one_of: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()
    doc: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.keys)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.keys if k.required)

    def schema(self) -> Schema:
        """The JSON Schema of the mapping: only the declared keys, the required ones asked for."""
        out: Schema = {
            "type": "object",
            "properties": {k.name: k.described() for k in self.keys},
            "additionalProperties": False,
        }
        if self.required:
            out["required"] = list(self.required)
        if self.one_of:
            out["oneOf"] = [{"required": [k]} for k in self.one_of]
        if self.any_of:
            out["anyOf"] = [{"required": [k]} for k in self.any_of]
        if self.doc:
            out["description"] = self.doc
        return out


def _ref(name: str) -> Schema:
    return {"$ref": f"#/$defs/{name}"}


NAME, DURATION, FAULT, MATCH, PRESET = (
    _ref(n) for n in ("name", "duration", "fault", "match", "preset")
)
FRACTION: Schema = {"type": "number", "minimum": 0, "maximum": 1}
COUNT: Schema = {"type": "integer", "minimum": 1}
POSITIVE: Schema = {"type": "number", "exclusiveMinimum": 0}
TEXT: Schema = {"type": "string"}


# ---------------------------------------------------------------- kinds of value
# Each reads with the loader's typed readers (`located.Reader`: located problems, None when bad)
# and writes with `dump.Writer` (None: left out).


def _duration(r: ScenarioReader, n: Node, p: str) -> float | None:
    return r.duration(n, p)


def named(write: Write | None, doc: str, example: str, required: bool = False) -> Key:
    """`name`: letters, digits, '.', '_', '-'."""
    return Key("name", NAME, lambda r, n, p: r.name(n, p), write, doc, required, example)


def description(doc: str) -> Key:
    """Free text, kept stripped; left out of the dump when empty."""
    return Key(
        "description",
        TEXT,
        lambda r, n, p: (r.text(n, p, nonempty=False) or "").strip(),
        lambda w, o: o.description or None,
        doc,
        example="Why this exists.",
    )


def duration(name: str, attr: str, doc: str, example: str, required: bool = False) -> Key:
    """A duration > 0 (`250ms`, `2m`), in seconds in the model's `attr`."""
    write: Write = lambda w, o: w.duration(getattr(o, attr))  # noqa: E731
    return Key(name, DURATION, _duration, write, doc, required, example)


def fraction(name: str, attr: str, doc: str, example: float, required: bool = False) -> Key:
    """A number from 0 to 1."""
    read: Read = lambda r, n, p: r.number(n, p, lo=0, hi=1)  # noqa: E731
    write: Write = lambda w, o: w.number(getattr(o, attr))  # noqa: E731
    return Key(name, FRACTION, read, write, doc, required, example)


def positive(name: str, attr: str, doc: str, example: float, required: bool = False) -> Key:
    """A number > 0."""
    read: Read = lambda r, n, p: r.positive_number(n, p)  # noqa: E731
    write: Write = lambda w, o: w.number(getattr(o, attr))  # noqa: E731
    return Key(name, POSITIVE, read, write, doc, required, example)


def count(name: str, write: Write, doc: str, example: int) -> Key:
    """An integer ≥ 1."""
    return Key(name, COUNT, lambda r, n, p: r.integer(n, p, lo=1), write, doc, example=example)


def _counting(key: str) -> Write:
    return lambda w, rule: None if rule.counting is None else getattr(rule.counting, key)


def _one_fault(rule: Any) -> bool:
    """A rule written with `fault:` rather than `outcomes:`."""
    return len(rule.outcomes) == 1 and rule.outcomes[0].weight == 1.0


# ---------------------------------------------------------------- small mappings

WHEN = Table(
    "when",
    (
        Key(
            "inflight_above",
            {"type": "integer", "minimum": 0},
            lambda r, n, p: r.integer(n, p, lo=0),
            lambda w, o: o.inflight_above,
            "requests in flight through the proxy",
            example=10,
        ),
        positive("rps_above", "rps_above", "requests a second, averaged over `window`", 50),
        Key(
            "window",
            DURATION,
            _duration,
            lambda w, o: None if o.rps_above is None else w.duration(o.window),
            "how far back rps_above looks (default 5s)",
            example="10s",
        ),
    ),
    one_of=("inflight_above", "rps_above"),
    doc="the rule applies only while the load is above the bound",
)
RAMP = Table(
    "ramp",
    (
        fraction("from", "start", "the probability as the phase starts", 0.1, required=True),
        fraction("to", "end", "the probability as the phase ends", 0.9, required=True),
    ),
    doc="ramped linearly across the phase",
)
OUTCOME = Table(
    "outcome",
    (
        positive("weight", "weight", "drawn in proportion to its weight", 3, required=True),
        Key(
            "fault",
            FAULT,
            lambda r, n, p: r.faults(n, p),
            lambda w, o: w.faults(o),
            required=True,
            example={"error": {"status": 503}},
        ),
    ),
)
ABORT_IF = Table(
    "abort_if",
    (
        fraction("error_rate_above", "error_rate_above", "share of responses that are errors", 0.5),
        duration("p99_above", "p99_above", "99th percentile response time", "2s"),
        duration("window", "window", "how long the bound must be exceeded (default 10s)", "30s"),
    ),
    any_of=("error_rate_above", "p99_above"),
    doc="stop injecting when the proxy sees too much damage",
)
# The long forms of `include` and `presets` entries; read by `includes.references`.
INCLUDE_REF = Table(
    "include",
    (
        Key(
            "file",
            TEXT,
            None,
            doc="relative to this file",
            required=True,
            example="shared/hard-outage.yaml",
        ),
        Key(
            "match",
            MATCH,
            None,
            doc="replaces these conditions of every rule it brings in",
            example={"path": "/api/**"},
        ),
    ),
)
PRESET_REF = Table(
    "preset",
    (
        Key("preset", PRESET, None, required=True, example="mobile-3g"),
        Key(
            "match",
            MATCH,
            None,
            doc="replaces these conditions of every rule it brings in",
            example={"user_agent": "mobile"},
        ),
    ),
)

# ---------------------------------------------------------------- rules

RULE = Table(
    "rule",
    (
        named(
            lambda w, o: None if o.id == o.path else o.id,
            "the rule's id in stats and the journal (default: its key path)",
            "api-errors",
        ),
        Key(
            "match",
            MATCH,
            lambda r, n, p: r.rule_match(n, p),
            lambda w, o: w.match(o.match) or None,
            "which requests the rule applies to; every condition given must hold",
            example={"path": "/api/**"},
        ),
        Key(
            "probability",
            {"anyOf": [FRACTION, RAMP.schema()]},
            lambda r, n, p: r.probability(n, p),
            lambda w, o: (
                w.table(RAMP, o.probability)
                if isinstance(o.probability, Ramp)
                else None
                if o.probability == 1.0
                else w.number(o.probability)
            ),
            "chance that a matching request is faulted (default 1)",
            example=0.5,
        ),
        Key(
            "when",
            WHEN.schema(),
            lambda r, n, p: r.when(n, p),
            lambda w, o: None if o.when is None else w.table(WHEN, o.when),
            example={"rps_above": 50},
        ),
        count("first", _counting("first"), "only the first N matching requests are faulted", 5),
        count("every", _counting("every"), "every Nth matching request is faulted", 3),
        count("after", _counting("after"), "faulted once N matching requests have passed", 2),
        Key(
            "fault",
            FAULT,
            lambda r, n, p: r.faults(n, p),
            lambda w, o: w.faults(o.outcomes[0]) if _one_fault(o) else None,
            "fault name to parameters; several apply together",
            example={"error": {"status": 503}},
        ),
        Key(
            "outcomes",
            {"type": "array", "minItems": 1, "items": OUTCOME.schema()},
            lambda r, n, p: r.outcomes(n, p),
            lambda w, o: (
                None
                if _one_fault(o) or not o.outcomes
                else [w.table(OUTCOME, x) for x in o.outcomes]
            ),
            "weighted alternatives: one is drawn per faulted request",
            example=[{"weight": 3, "fault": {"error": {}}}, {"weight": 1, "fault": {"reset": {}}}],
        ),
        Key(
            "continue",
            {"type": "boolean"},
            lambda r, n, p: r.boolean(n, p),
            lambda w, o: True if o.continue_ else None,
            "later matching rules apply too",
            example=True,
        ),
    ),
    what="a rule",
    one_of=("fault", "outcomes"),
)
# Where rules may stand (a scenario, a phase, a rule-set file): its own, then included files',
# then presets'.
RULE_BLOCK = (
    Key(
        "rules",
        {"type": ["array", "null"], "items": _ref("rule")},
        lambda r, n, p: r.rules(n, p),
        lambda w, o: [w.table(RULE, x) for x in o.rules] or None,
        example=[{"fault": {"error": {"status": 500}}}],
    ),
    Key(
        "include",
        {
            "anyOf": [
                TEXT,
                {"type": "array", "items": {"anyOf": [TEXT, INCLUDE_REF.schema()]}},
            ]
        },
        lambda r, n, p: r.includes(n, p),
        doc="rule-set files, relative to this file",
        example=["shared/hard-outage.yaml"],
    ),
    Key(
        "presets",
        {"anyOf": [PRESET, {"type": "array", "items": {"anyOf": [PRESET, PRESET_REF.schema()]}}]},
        lambda r, n, p: r.presets(n, p),
        doc="bundled network profiles",
        example=["mobile-3g"],
    ),
)

# ---------------------------------------------------------------- files

PHASE = Table(
    "phase",
    (
        named(lambda w, o: o.name, "unique within the scenario", "outage", required=True),
        description("a note for readers"),
        duration("duration", "duration", "how long the phase lasts", "30s", required=True),
        *RULE_BLOCK,
    ),
    what="a phase",
)
SCENARIO = Table(
    "scenario",
    (
        named(lambda w, o: o.name, "shown in status and metrics", "checkout", required=True),
        description("the production failure this models"),
        Key(
            "seed",
            {"type": "integer"},
            lambda r, n, p: r.integer(n, p),
            lambda w, o: o.seed,
            "same seed + same request order = same faults",
            example=7,
        ),
        Key(
            "repeat",
            {"anyOf": [COUNT, {"const": "forever"}]},
            lambda r, n, p: r.repeat(n, p),
            lambda w, o: None if o.repeat == 1 else "forever" if o.repeat is None else o.repeat,
            "how many times the phases run (default 1)",
            example=3,
        ),
        duration(
            "max_duration", "max_duration", "injection stops by itself after this long", "10m"
        ),
        count(
            "max_active_faults",
            lambda w, o: o.max_active_faults,
            "at most this many requests faulted at once",
            4,
        ),
        Key(
            "abort_if",
            ABORT_IF.schema(),
            lambda r, n, p: r.abort_if(n, p),
            lambda w, o: None if o.abort_if is None else w.table(ABORT_IF, o.abort_if),
            example={"error_rate_above": 0.5, "window": "30s"},
        ),
        *RULE_BLOCK,
        Key(
            "phases",
            {"type": "array", "minItems": 1, "items": PHASE.schema()},
            lambda r, n, p: r.phases(n, p),
            lambda w, o: [w.table(PHASE, x) for x in o.phases],
            "run in order",
            required=True,
            example=[{"name": "outage", "duration": "30s"}],
        ),
    ),
    what="a scenario mapping",
    doc="A named, phased failure story replayed by chaosproxy.",
)
RULESET = Table(
    "rule set",
    (
        named(None, "a name for readers", "shared-errors"),
        description("a note for readers"),
        *RULE_BLOCK,
    ),
    what="a rule set mapping (rules: [...])",
    doc="Rules for scenarios to include.",
)
TABLES = (SCENARIO, PHASE, RULE, RULESET, WHEN, RAMP, OUTCOME, ABORT_IF, INCLUDE_REF, PRESET_REF)
