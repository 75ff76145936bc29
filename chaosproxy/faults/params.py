"""A fault's parameters, declared once: each `Param` knows its key, its JSON Schema and how to
read and check a value. `Params` validates a YAML mapping against the declarations (every error
names `path.key` and the bad value); `object_schema` gives the editors' JSON Schema. The two are
derived from the same declaration, so they cannot drift.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chaosproxy.common.errors import ConfigError, Problem
from chaosproxy.common.units import parse_duration, parse_rate, parse_size

Schema = dict[str, Any]

DURATION_SCHEMA: Schema = {"$ref": "#/$defs/duration"}  # defined by the scenario schema
SIZE_PATTERN = r"^\s*\d+(\.\d+)?\s*(B|KiB|MiB|GiB|KB|MB|GB|k|K|M|G)?\s*$"
RATE_PATTERN = r"^\s*\d+(\.\d+)?\s*(B|KiB|MiB|GiB|KB|MB|GB|k|K|M|G)?(/s)?\s*$"


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter: `read` turns the YAML value into the fault's (ValueError/TypeError with
    a message when it is bad); `missing`, when set, makes it required and says why."""

    key: str
    schema: Schema
    read: Callable[[Any], Any] = lambda v: v
    default: Any = None
    missing: str | None = None


def object_schema(params: Sequence[Param]) -> Schema:
    """The JSON Schema of a fault's parameter mapping."""
    out: Schema = {
        "type": "object",
        "properties": {p.key: p.schema for p in params},
        "additionalProperties": False,
    }
    required = [p.key for p in params if p.missing]
    if required:
        out["required"] = required
    return out


# ---------------------------------------------------------------- declarations


def integer(
    key: str,
    default: int | None = None,
    *,
    lo: int | None = None,
    hi: int | None = None,
    missing: str | None = None,
) -> Param:
    def read(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"expected an integer, got {v!r}")
        if lo is not None and v < lo:
            raise ValueError(f"must be ≥ {lo}, got {v!r}")
        if hi is not None and v > hi:
            raise ValueError(f"must be ≤ {hi}, got {v!r}")
        return v

    schema: Schema = {"type": "integer"}
    if lo is not None:
        schema["minimum"] = lo
    if hi is not None:
        schema["maximum"] = hi
    return Param(key, schema, read, default, missing)


def status(key: str, default: int) -> Param:
    """An HTTP error status the fault answers with."""
    return integer(key, default, lo=400, hi=599)


def positive_number(key: str, default: float | None = None, *, missing: str | None = None) -> Param:
    def read(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ValueError(f"expected a finite number, got {v!r}")
        if v <= 0:
            raise ValueError(f"must be > 0, got {v!r}")
        return float(v)

    return Param(key, {"type": "number", "exclusiveMinimum": 0}, read, default, missing)


def duration(
    key: str, default: float | None = None, *, positive: bool = False, missing: str | None = None
) -> Param:
    def read(v: Any) -> float:
        d = parse_duration(v)
        if positive and d <= 0:
            raise ValueError(f"must be > 0, got {v!r}")
        return d

    return Param(key, DURATION_SCHEMA, read, default, missing)


def size(key: str, default: int | None = None, *, lo: int = 0) -> Param:
    def read(v: Any) -> int:
        n = parse_size(v)
        if n < lo:
            raise ValueError(f"must be ≥ {lo} byte{'' if lo == 1 else 's'}")
        return n

    schema: Schema = {
        "anyOf": [{"type": "integer", "minimum": lo}, {"type": "string", "pattern": SIZE_PATTERN}]
    }
    return Param(key, schema, read, default)


def rate(key: str, *, missing: str | None = None) -> Param:
    schema: Schema = {
        "anyOf": [
            {"type": "number", "exclusiveMinimum": 0},
            {"type": "string", "pattern": RATE_PATTERN},
        ]
    }
    return Param(key, schema, parse_rate, None, missing)


def choice(key: str, options: Sequence[str], default: str | None) -> Param:
    def read(v: Any) -> str:
        if v not in options:
            raise ValueError(f"must be one of {', '.join(options)}, got {v!r}")
        return str(v)

    return Param(key, {"enum": list(options)}, read, default)


def boolean(key: str, default: bool) -> Param:
    def read(v: Any) -> bool:
        if not isinstance(v, bool):
            raise ValueError(f"expected true or false, got {v!r}")
        return v

    return Param(key, {"type": "boolean"}, read, default)


def anything(key: str, schema: Schema, read: Callable[[Any], Any] = lambda v: v) -> Param:
    """A value the fault reads itself (`read`), described to editors by `schema`."""
    return Param(key, schema, read)


# ---------------------------------------------------------------- reading


class Params:
    """A fault's parameter mapping checked against its declarations: unknown keys (with a
    did-you-mean), missing required ones, and every value read; errors name `path.key`."""

    def __init__(self, raw: Any, path: str, declared: Iterable[Param]) -> None:
        if not isinstance(raw, Mapping):
            raise ConfigError(Problem(f"expected a mapping of parameters, got {raw!r}", path))
        self.raw: Mapping[str, Any] = raw
        self.path = path
        params = tuple(declared)
        known = tuple(p.key for p in params)
        for key in raw:
            if key not in known:
                hint = _nearest(str(key), known)
                tail = f"; did you mean {hint}?" if hint else f"; known keys: {', '.join(known)}"
                raise ConfigError(Problem(f"unknown key{tail}", f"{path}.{key}"))
        self._values: dict[str, Any] = {}
        for p in params:
            if p.key not in raw:
                if p.missing:
                    raise self.error(p.key, f"missing: {p.missing}")
                self._values[p.key] = p.default
                continue
            try:
                self._values[p.key] = p.read(raw[p.key])
            except (ValueError, TypeError) as e:
                raise self.error(p.key, str(e)) from None

    def __getitem__(self, key: str) -> Any:
        """The value read from the mapping, or the declared default."""
        return self._values[key]

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(Problem(message, f"{self.path}.{key}" if key else self.path))

    def has(self, key: str) -> bool:
        return key in self.raw

    def get(self, key: str, default: Any = None) -> Any:
        """The raw YAML value (for messages that quote what was written)."""
        return self.raw.get(key, default)


def _nearest(word: str, known: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return close[0] if close else None
