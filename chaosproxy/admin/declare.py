"""How one admin route is declared, so that everything speaking the route derives from it.

A `Route` says what the single proxy's router serves, what the OpenAPI document and the routes
table of docs/admin-api.md show, who may call it (`Access`), how `run --workers N`'s supervisor
serves it (`Workers`), and which `AdminClient` method and `chaosproxy` command call it. Nothing
here imports the server side: the typed client reads the same declarations without loading it.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Access(Enum):
    """Who may call a route when the admin API has a token."""

    OPEN = "no token: health checks and Prometheus scrapes carry no secret"
    READ = "token (a `--workers` worker's private admin leaves reads open)"
    WRITE = "token"


class Fanout(Enum):
    """Whom `run --workers N`'s supervisor asks, and what must hold of their answers."""

    SUPERVISOR = "the supervisor"
    WORKER_0 = "worker 0 (all know it alike)"
    PROBE = "every worker (one failing fails it)"
    READ_ALL = "every worker, merged"
    WRITE_ALL = "every worker (502 if they differ)"


class Merge(Enum):
    """How the supervisor makes one answer (one function each in workers/relay.py)."""

    FIRST = "worker 0's answer"
    HEALTH = "each problem listed"
    READY = "the first not ready"
    METRICS = "summed (shared gauges: the maximum)"
    STATUS = "counts summed, plus `workers`"
    STARTED = "one `at` for all; status merged"
    STOPPED = "status merged"
    RESET = "status merged"
    RULES = "counts summed"
    SAME_RULE = "one rule id, else 502"
    MOST_DELETED = "the largest count"
    TIMESERIES = "summed second by second"
    CLIENTS = "lists concatenated"
    EVENT_RING = "its own ring: worker 0's events and every `abort_if` trip"
    DOCUMENT = "this document"


@dataclass(frozen=True)
class Workers:
    """What `run --workers N`'s public admin API does with the route."""

    fanout: Fanout
    merge: Merge = Merge.FIRST

    def describe(self) -> str:
        if self.merge is Merge.FIRST:
            return self.fanout.value
        return f"{self.fanout.value}: {self.merge.value}"


@dataclass(frozen=True)
class Param:
    """A query parameter. An integer one's `minimum`/`maximum` are what the handler accepts
    (`handlers.query_int` reads them from here), so the document cannot promise other bounds."""

    name: str
    schema: dict[str, Any]
    description: str = ""
    required: bool = False

    def bounds(self) -> tuple[int, int]:
        return int(self.schema["minimum"]), int(self.schema["maximum"])


@dataclass(frozen=True)
class Body:
    """A request body: its media type and schema; `max_bytes` when tighter than the admin
    API's 1 MiB (a scenario upload: 256 KiB, read and refused past it by the handler)."""

    content_type: str
    schema: dict[str, Any]
    required: bool
    max_bytes: int | None = None


@dataclass(frozen=True)
class Command:
    """The `chaosproxy` command that calls the route: `("ctl", "rules", "delete")` (a `ctl`
    operation: the route's path parameters are its positional arguments) or `("health",)`."""

    words: tuple[str, ...]
    help: str
    args: str = ""  # as usage shows them; the first ones name the path parameters, in order

    @property
    def ctl(self) -> tuple[str, ...] | None:
        """The operation's words under `ctl`, or None for a command of its own."""
        return self.words[1:] if self.words[0] == "ctl" else None


_PATH_PARAM = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True, eq=False)
class Route:
    """One admin route. `name` is its OpenAPI operationId and the name of its handler in
    `admin/handlers.py`; `answers` maps each success status to what it means. Routes compare
    by identity: each is declared once."""

    name: str
    method: str
    path: str
    summary: str
    access: Access
    workers: Workers
    description: str = ""
    query: tuple[Param, ...] = ()
    body: Body | None = None
    answers: Mapping[int, str] = field(default_factory=lambda: {200: "OK"})
    content_type: str = "application/json"
    errors: tuple[int, ...] = ()  # statuses besides 400/401 a caller should expect
    client: str | None = None  # the AdminClient method that calls it
    command: Command | None = None

    def __post_init__(self) -> None:
        writes = self.method in MUTATING
        if writes != (self.access is Access.WRITE):
            raise ValueError(f"{self.method} {self.path}: access {self.access.name}")
        if writes != (self.workers.fanout is Fanout.WRITE_ALL):
            raise ValueError(f"{self.method} {self.path}: a write goes to every worker")

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(_PATH_PARAM.findall(self.path))

    def param(self, name: str) -> Param:
        return next(p for p in self.query if p.name == name)

    def url(self, query: Mapping[str, object] | None = None, **params: str) -> str:
        """The path with its parameters filled in (each quoted whole: a `/` in a name stays
        in the name), then the query parameters that are not None (declared ones only)."""
        missing = set(self.path_params) ^ set(params)
        undeclared = set(query or {}) - {p.name for p in self.query}
        if missing or undeclared:
            raise TypeError(f"{self.path}: parameters {sorted(missing | undeclared)}")
        path = _PATH_PARAM.sub(lambda m: urllib.parse.quote(params[m[1]], safe=""), self.path)
        pairs = {k: _text(v) for k, v in (query or {}).items() if v is not None}
        return path + ("?" + urllib.parse.urlencode(pairs) if pairs else "")


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)
