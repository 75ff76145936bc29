"""The one small interface every fault implements, and the exchange it acts on.

A fault is a frozen object built once from its YAML mapping (`from_params`, which raises a
ConfigError naming the key) and applied per request with `apply(ex, proceed)`. `proceed()` runs
the rest of the chain and, at its end, forwards the request upstream and streams the reply to the
client. A fault acts before (delay, answer itself, reset), around (hold a pool slot), or after it
(hooks registered on the exchange change the reply, its headers or its body stream).
Probability is rolled once by the engine; a fault never rolls it itself.
"""

from __future__ import annotations

import importlib
import pkgutil
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

from chaosproxy.common.clock import Clock
from chaosproxy.common.errors import ConfigError, Problem
from chaosproxy.faults.params import Param, Params, object_schema

__all__ = [
    "BodyFilter",
    "Exchange",
    "Fault",
    "Gauge",
    "Headers",
    "HeadersHook",
    "Param",
    "Params",
    "Proceed",
    "Reply",
    "ReplyHook",
    "RespondHook",
    "build",
    "cut_body",
    "register",
    "registry",
]

Headers = list[tuple[str, str]]
Proceed = Callable[[], Awaitable[None]]
BodyFilter = Callable[["Exchange", AsyncIterator[bytes]], AsyncIterator[bytes]]


@dataclass
class Reply:
    """The upstream's answer as the client will see it, before its body is streamed."""

    status: int
    reason: str
    headers: Headers


# A reply hook runs after the upstream answered and before the first byte goes back.
# It returns the (possibly changed) reply, or None when it answered the client itself.
ReplyHook = Callable[["Exchange", Reply], Awaitable[Reply | None]]
# A headers hook runs once the status line and headers went to the client.
HeadersHook = Callable[["Exchange"], Awaitable[None]]
# A respond hook sees every whole response the exchange sends with `respond` (injected errors,
# the proxy's own 502): status, body and headers, just before they leave.
RespondHook = Callable[[int, bytes, Headers], None]


class Exchange(Protocol):
    """One client request in flight, as faults see it. The proxy implements it."""

    @property
    def request_id(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str:
        """The decoded path, as matched by rules."""
        ...

    @property
    def query_string(self) -> str: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def client_ip(self) -> str: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def rng(self) -> random.Random: ...

    @property
    def finished(self) -> bool:
        """True once something terminal happened: a response sent, a reset or a close."""
        ...

    @property
    def client_gone(self) -> bool: ...

    def record(self, fault: Fault, outcome: str) -> None:
        """Report that `fault` (the acting object itself, so the event credits the rule that
        owns it) acted on this request: one event per fault."""

    async def sleep(self, seconds: float) -> None:
        """Sleep on the exchange's clock. A client that disconnects cancels the handler, so
        a sleeping fault sees CancelledError: release what you hold in `finally` or on_finish."""

    async def respond(
        self, status: int, body: bytes, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        """Send a whole response (with Content-Length) and finish the exchange."""

    def error_body(self, status: int, details: str, message: str | None = None) -> bytes:
        """The proxy's own JSON error body, with this request's id."""
        ...

    async def write_raw(self, data: bytes) -> None:
        """Write bytes straight to the client socket, bypassing HTTP framing."""

    def reset(self) -> None:
        """Abort the client connection with a TCP RST (SO_LINGER 0)."""

    def close(self) -> None:
        """Close the client connection with a FIN after what was written so far."""

    async def flush(self) -> None:
        """Wait until every byte written so far left the process (kernel has it): call before
        `reset()`, whose abort would otherwise discard what is still buffered."""

    def on_respond(self, hook: RespondHook) -> None:
        """Observe whole responses sent with `respond` (e.g. to cache an error page)."""

    @property
    def upstream_url(self) -> str:
        """The upstream's base URL (faults that imitate upstream failures name it)."""
        ...

    async def proceed_upstream(self) -> None:
        """Forward upstream and stream the reply back through the registered hooks."""

    def on_reply(self, hook: ReplyHook) -> None: ...

    def on_headers_sent(self, hook: HeadersHook) -> None: ...

    def filter_body(self, body_filter: BodyFilter) -> None: ...

    def on_finish(self, callback: Callable[[], None]) -> None:
        """Run `callback` when the exchange ends, however it ends (release resources here)."""

    @property
    def response_status(self) -> int | None:
        """The status sent to the client, once sent."""
        ...


@dataclass(frozen=True, slots=True)
class Gauge:
    """Live state a fault exposes (read at scrape time): `chaosproxy_<name>{rule=…}`."""

    name: str
    help: str
    value: float


class Fault:
    """Base class: subclasses set `name`, declare `params`, build themselves in `from_params`
    (from the values `Params` read) and act in `apply`."""

    name: ClassVar[str] = ""
    # Order within a rule that combines faults: lower applies first (outermost).
    order: ClassVar[int] = 50
    # The parameters, declared once: the loader's checks and the JSON Schema come from here.
    params: ClassVar[tuple[Param, ...]] = ()

    @classmethod
    def from_params(cls, params: Any, path: str) -> Self:
        """The fault from its checked parameters, each given to the field of its key's name; a
        fault whose fields are not its keys, or with rules across keys, overrides this."""
        p = Params(params, path, cls.params)
        return cls(**{d.key: p[d.key] for d in cls.params})

    @classmethod
    def params_schema(cls) -> dict[str, Any]:
        return object_schema(cls.params)

    async def apply(self, ex: Exchange, proceed: Proceed) -> None:
        await proceed()

    def describe(self) -> str:
        return self.name

    def gauges(self) -> tuple[Gauge, ...]:
        """Live state worth a gauge (e.g. a simulated pool's slots); none by default."""
        return ()


# ---------------------------------------------------------------- registry

F = TypeVar("F", bound=Fault)


class Registry(Generic[F]):
    """Faults by YAML name, found by importing every module of a package (each registers itself
    with `@register`): a new fault is a new file, listed nowhere. The HTTP faults and the TCP
    faults (`faults/tcp/`) each have one."""

    def __init__(self, package: str, not_faults: frozenset[str], what: str) -> None:
        self._package = package
        self._not_faults = not_faults
        self._what = what  # "fault", "TCP fault": how an unknown name is told
        self._by_name: dict[str, type[F]] = {}
        self._discovered = False

    def register(self, cls: type[F]) -> type[F]:
        """Class decorator: make a fault available by its YAML name."""
        if not cls.name:
            raise TypeError(f"{cls.__name__} has no name")
        self._by_name[cls.name] = cls
        return cls

    def all(self) -> Mapping[str, type[F]]:
        """Every fault by name; the first call imports each module of the package."""
        if not self._discovered:
            package = importlib.import_module(self._package)
            for mod in pkgutil.iter_modules(package.__path__):
                if mod.name not in self._not_faults:
                    importlib.import_module(f"{self._package}.{mod.name}")
            self._discovered = True
        return self._by_name

    def build(self, name: str, params: Any, path: str) -> F:
        """One fault from its YAML name and parameters; an unknown name is a ConfigError."""
        known = self.all()
        cls = known.get(name)
        if cls is None:
            names = ", ".join(sorted(known))
            raise ConfigError(
                Problem(f"unknown {self._what} {name!r}; known {self._what}s: {names}", path)
            )
        return cls.from_params({} if params is None else params, f"{path}.{name}")


# tcp: the byte-level faults, their own registry
HTTP_FAULTS: Registry[Fault] = Registry(
    "chaosproxy.faults", frozenset({"base", "params", "tcp"}), "fault"
)
register = HTTP_FAULTS.register
registry = HTTP_FAULTS.all
build = HTTP_FAULTS.build


# ---------------------------------------------------------------- body helpers


async def cut_body(
    body: AsyncIterator[bytes], keep: int, on_cut: Callable[[], Awaitable[None]]
) -> AsyncIterator[bytes]:
    """Pass the first `keep` bytes of `body`. When it is longer, await `on_cut()` once they
    were written (the consumer pulls again only after writing the last piece)."""
    left = keep
    async for chunk in body:
        if len(chunk) > left:
            if left:
                yield chunk[:left]
            break
        left -= len(chunk)
        yield chunk
    else:
        return  # not longer than `keep`: nothing to cut
    await on_cut()
