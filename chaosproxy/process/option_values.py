"""How the text of a run option becomes its value: one function per kind of value.

Each takes the text as a user writes it (on the command line or in a CHAOSPROXY_* variable) and
returns the typed value, or raises ValueError with one line that says what was expected. They know
nothing of argparse, so the same function reads a flag, a variable and a declared default; the
command line wraps them (`chaosproxy.cli.common.argtype`) to name the flag in its errors.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

import yarl

from chaosproxy.common.units import parse_duration, parse_size


def host_port(value: str) -> tuple[str, int]:
    """`HOST:PORT`, `[::1]:PORT` or a bare `PORT` (all addresses)."""
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = "0.0.0.0", value
    try:
        p = int(port)
    except ValueError:
        raise ValueError(f"expected HOST:PORT, got {value!r}") from None
    if not 0 <= p <= 65535:
        raise ValueError(f"port out of range in {value!r}")
    return host.strip("[]") or "0.0.0.0", p


def http_url(value: str) -> yarl.URL:
    try:
        url = yarl.URL(value)
    except (ValueError, TypeError):
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"expected an http:// or https:// URL with a host, got {value!r}")
    return url


def duration(value: str) -> float:
    """Seconds: `30s`, `250ms`, `5m`, `1.5` (seconds)."""
    return parse_duration(value)


NO_LIMIT = ("off", "none", "0")


def optional_duration(value: str) -> float | None:
    """A duration, or `off`/`none`/`0` for no limit (None)."""
    if value.strip().lower() in NO_LIMIT:
        return None
    return duration(value)


def positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"expected a whole number, got {value!r}") from None
    if n <= 0:
        raise ValueError(f"expected a number > 0, got {value!r}")
    return n


def number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"expected a number, got {value!r}") from None


def whole_number(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"expected a whole number, got {value!r}") from None


def size(value: str) -> int:
    """Bytes: `512`, `16KiB`, `100MiB` (binary) or `1MB` (decimal)."""
    return parse_size(value.strip())


def size_or_never(value: str) -> int | None:
    """A size, where 0 means no limit at all (None)."""
    return size(value) or None


def text(value: str) -> str | None:
    """Free text (a path, a name, a token); empty means not given (None), as an empty
    CHAOSPROXY_* variable in a container spec usually does."""
    return value or None


MIN_HEAD = 1024  # below this no real response head fits: every answer would be a 502


def head_size(value: str) -> int:
    """A size for a response head: at least 1 KiB (0 would refuse every response)."""
    n = size(value)
    if n < MIN_HEAD:
        raise ValueError(f"at least {MIN_HEAD} bytes (1KiB), got {n}")
    return n


def connection_cap(value: str) -> int | None:
    """A number of connections, or `auto` (None: derived from the open-file limit)."""
    if value.strip().lower() == "auto":
        return None
    return positive_int(value)


MAX_WORKERS = 64  # a typo (--workers 400) should not start hundreds of processes


def worker_count(value: str) -> int:
    n = positive_int(value)
    if n > MAX_WORKERS:
        raise ValueError(f"at most {MAX_WORKERS} workers, got {n}")
    return n


def fault_names(value: str) -> frozenset[str]:
    """A comma list of fault names, each one the proxy knows."""
    from chaosproxy.faults import registry
    from chaosproxy.faults.tcp import registry as tcp_registry

    names = frozenset(n.strip() for n in value.split(",") if n.strip())
    known = {*registry(), *tcp_registry()}  # HTTP and TCP faults (docs/tcp.md)
    unknown = sorted(names - set(known))
    if not names or unknown:
        raise ValueError(
            f"unknown fault {', '.join(map(repr, unknown)) or 'list (empty)'}; "
            f"known faults: {', '.join(sorted(known))}"
        )
    return names


class OneOf:
    """One word of a fixed list. A parser rather than argparse `choices`, so a CHAOSPROXY_*
    variable is checked as strictly as the flag (argparse never checks a default's choices)."""

    def __init__(self, *words: str) -> None:
        self.words = words
        self.__name__ = "one of " + ", ".join(words)

    def __call__(self, value: str) -> str:
        if value not in self.words:
            raise ValueError(f"{value!r} is not one of {', '.join(self.words)}")
        return value


# What `--help` and the docs write after a flag when its declaration names nothing else.
METAVARS: dict[Callable[[str], object] | None, str] = {
    host_port: "HOST:PORT",
    http_url: "URL",
    duration: "DURATION",
    optional_duration: "DURATION",
    positive_int: "N",
    whole_number: "N",
    worker_count: "N",
    connection_cap: "N|auto",
    number: "NUMBER",
    size: "SIZE",
    size_or_never: "SIZE",
    head_size: "SIZE",
    fault_names: "LIST",
}


T = TypeVar("T")


def argtype(parse: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse `type` from a value parser: its ValueError becomes the one line argparse
    prints after the flag (`argument --grace: expected a duration like ...`)."""

    def convert(value: str) -> T:
        try:
            return parse(value)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert
