"""A run option, declared once on the `Settings` field it fills.

`send_timeout: float | None = option("--send-timeout", "60s", optional_duration, help=...)` is
the whole declaration: the flag, its CHAOSPROXY_SEND_TIMEOUT variable, the default (written as a
user writes it, and parsed by the same function as the flag, so the dataclass default cannot
disagree with what `--help` shows), the help text, the `--help` group and the docs row are all
read from it (`chaosproxy.process.run_flags`). The field's own type is checked against the parser's
return type by mypy: a parser that returns `float | None` cannot fill a `float` field.

An option whose value has parts (`--listen HOST:PORT`) fills several fields, one per part
(`listen_host`, `listen_port`): `Settings` keeps plain fields for the code that reads them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")
S = TypeVar("S")

META = "chaosproxy.option"  # the key of a field's metadata that holds its declaration
ENV_PREFIX = "CHAOSPROXY_"


def env_name(dest: str) -> str:
    """The variable an option (of any command) reads its default from: CHAOSPROXY_<DEST>."""
    return ENV_PREFIX + dest.upper()


@dataclass(frozen=True)
class Option(Generic[T]):
    """One option of `chaosproxy run`. `parse` None makes it a switch: `--x` turns it on,
    `--no-x` (when that is the flag) turns a default-on behaviour off."""

    flag: str
    parse: Callable[[str], T] | None
    default: str | None  # as a user would write it; None: not given (the help says what then)
    help: str
    group: str
    metavar: str | None = None
    required: bool = False
    # Given any number of times (`--tcp A --tcp B`; its variable: a comma list): `parse` reads
    # one value into a tuple, and the field holds every value's items, in order.
    repeat: bool = False

    @property
    def switch(self) -> bool:
        return self.parse is None

    @property
    def negated(self) -> bool:
        """A switch that turns something off: `--no-forwarded-headers`."""
        return self.switch and self.flag.startswith("--no-")

    @property
    def dest(self) -> str:
        """The argparse destination, and the stem of the variable: `--no-forwarded-headers` is
        `forwarded_headers`, so CHAOSPROXY_FORWARDED_HEADERS=off is `--no-forwarded-headers`."""
        name = self.flag.removeprefix("--")
        if self.negated:
            name = name.removeprefix("no-")
        return name.replace("-", "_")

    @property
    def env(self) -> str:
        return env_name(self.dest)

    def default_value(self) -> Any:
        """The typed default: what the declared text parses to (a switch: off, so a `--no-x`
        switch's behaviour is on)."""
        if self.parse is None:
            return self.negated
        return None if self.default is None else self.parse(self.default)

    def field(self, part: int | None = None) -> Any:
        """The dataclass field this option fills (`part`: which part of its value)."""
        meta = {META: (self, part)}
        if self.repeat:
            return dataclasses.field(default=(), metadata=meta)
        if self.required:
            return dataclasses.field(metadata=meta)
        default = self.default_value()
        if part is not None:
            default = default[part]
        return dataclasses.field(default=default, metadata=meta)


@overload
def option(
    flag: str,
    default: str,
    parse: Callable[[str], T],
    *,
    help: str,
    group: str,
    metavar: str | None = None,
) -> T: ...


@overload
def option(
    flag: str,
    default: None,
    parse: Callable[[str], T],
    *,
    help: str,
    group: str,
    metavar: str | None = None,
) -> T | None: ...


def option(
    flag: str,
    default: str | None,
    parse: Callable[[str], T],
    *,
    help: str,
    group: str,
    metavar: str | None = None,
) -> Any:
    """Declare an option with a value on the field it fills (see the module's docstring)."""
    return Option(flag, parse, default, help, group, metavar).field()


def required(
    flag: str, parse: Callable[[str], T], *, help: str, group: str, metavar: str | None = None
) -> T:
    """An option with no default: `chaosproxy run` refuses to start without it."""
    opt = Option(flag, parse, None, help, group, metavar, required=True)
    result: T = opt.field()
    return result


def switch(flag: str, *, help: str, group: str) -> bool:
    """An on/off option without a value; `--no-x` declares one that is on by default."""
    result: bool = Option[bool](flag, None, None, help, group).field()
    return result


def repeated(
    flag: str,
    parse: Callable[[str], tuple[T, ...]],
    *,
    help: str,
    group: str,
    metavar: str | None = None,
) -> tuple[T, ...]:
    """An option given any number of times; the field holds all the items parsed, in order."""
    opt = Option(flag, parse, None, help, group, metavar, repeat=True)
    result: tuple[T, ...] = opt.field()
    return result


def gathered(opt: Option[Any], values: Any) -> tuple[Any, ...]:
    """A repeated option's items from argparse's list: values parsed by the flag, or the raw
    text of its CHAOSPROXY_ variable (split at commas, parsed here)."""
    from chaosproxy.common.errors import UsageError

    out: list[Any] = []
    for v in values or ():
        if isinstance(v, str) and opt.parse is not None:
            try:
                v = opt.parse(v)
            except ValueError as e:
                raise UsageError(f"${opt.env}: {e}") from None
        out.extend(v)
    return tuple(out)


@dataclass(frozen=True)
class Declared:
    """An option and the fields it fills: `(name, None)` takes the whole value, `(name, i)` its
    part i."""

    option: Option[Any]
    fields: tuple[tuple[str, int | None], ...]


def declared(cls: Any) -> list[Declared]:
    """The options declared on the fields of dataclass `cls`, in the order of their first
    field (the order `--help` and the docs show them in, group by group)."""
    found: dict[int, tuple[Option[Any], list[tuple[str, int | None]]]] = {}
    for f in dataclasses.fields(cls):
        if META not in f.metadata:
            continue
        opt, part = f.metadata[META]
        found.setdefault(id(opt), (opt, []))[1].append((f.name, part))
    return [Declared(opt, tuple(fields)) for opt, fields in found.values()]


def construct(cls: Callable[..., S], options: list[Declared], given: Mapping[str, Any]) -> S:
    """An instance of `cls` from values keyed by each option's `dest` (as argparse leaves
    them); a missing key leaves the field's default."""
    kwargs: dict[str, Any] = {}
    for d in options:
        if d.option.dest not in given:
            continue
        value = given[d.option.dest]
        if d.option.repeat:
            value = gathered(d.option, value)
        for name, part in d.fields:
            kwargs[name] = value if part is None else value[part]
    return cls(**kwargs)
