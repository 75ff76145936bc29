"""What an exchange is whatever the client spoke: `BaseExchange`, the part of the faults'
`Exchange` that HTTP/1.1 (`exchange.ProxyExchange`) and each HTTP/2 stream
(`proxy.h2.exchange.H2Exchange`) share, so that it is written once."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, ClassVar, Protocol

from chaosproxy.common.clock import SYSTEM_CLOCK, Clock
from chaosproxy.common.events import EventBus, FaultInjected
from chaosproxy.common.wake import Deadlines
from chaosproxy.engine.core import Decision
from chaosproxy.faults.base import Exchange, Fault
from chaosproxy.proxy.downstream.pipeline import Hooks
from chaosproxy.proxy.downstream.responses import error_json


class Site(Protocol):
    """What any exchange reads of the proxy that made it."""

    @property
    def clock(self) -> Clock: ...
    @property
    def rng(self) -> random.Random: ...
    @property
    def bus(self) -> EventBus: ...
    @property
    def deadlines(self) -> Deadlines:
        """Where request-side delays wait (`common.wake`): one heap per proxy."""
        ...


# Fields of the proxy's own answers that it sets itself: framing, and the request's id.
_OWN_FIELDS = frozenset({"content-length", "transfer-encoding", "x-request-id"})


if TYPE_CHECKING:
    # Declares what each subclass completes (the request view, respond, close...). Only for
    # the type checker: at run time a protocol's properties would shadow the attributes a
    # subclass sets.
    _Declared = Exchange
else:
    _Declared = object


class BaseExchange(Hooks, _Declared):
    """What an exchange keeps and does alike whatever the client spoke (an HTTP/1.1 request,
    one HTTP/2 stream), so it is written once: the state the core reads when the
    request ends, the `FaultInjected` events, request-side delays anchored at arrival, the
    fields of the proxy's own answers. The subclass reads the request and writes the bytes."""

    __slots__ = (
        "_anchor",
        "_finished",
        "_status",
        "clock",
        "complete",
        "core",
        "decision",
        "head_sent",
        "injected",
        "mark",
        "request_id",
        "retry_after",
        "rng",
        "t0",
        "upstream_duration",
        "upstream_error",
    )

    protocol: ClassVar[str] = "http/1.1"  # what the client speaks (events carry it)

    if TYPE_CHECKING:  # the target as received, beside the faults' view: each subclass's

        @property
        def target(self) -> str: ...

    def __init__(self, core: Site, request_id: str, t0: float, arrival: float) -> None:
        """`t0`: when the proxy took the request up (its duration counts from there);
        `arrival`: when it arrived (request-side delays count from there)."""
        self.core = core
        self.request_id: str = request_id
        self.reply_hooks = self.headers_hooks = self.body_filters = None
        self.respond_hooks = self.finish_callbacks = None
        self.clock: Clock = core.clock
        self.rng: random.Random = core.rng
        self.decision: Decision | None = None
        self.t0 = t0
        self.upstream_duration: float | None = None
        self.upstream_error: str | None = None
        self.injected = False
        self.mark: str | None = None  # X-Chaos-Injected value, when --mark-injected
        self.retry_after: float | None = None
        self.head_sent = False  # bytes of a response reached the client
        self.complete = False  # a whole, well-framed response was written
        self._finished = False
        self._status: int | None = None
        self._anchor = arrival  # where the next request-side delay is measured from

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def response_status(self) -> int | None:
        return self._status

    def record(self, fault: Fault, outcome: str) -> None:
        self.injected = True
        d = self.decision
        self.core.bus.emit(
            FaultInjected(
                t=self.clock.wall(),
                request_id=self.request_id,
                method=self.method,
                path=self.path,
                scenario=d.scenario if d else "",
                phase=d.phase if d else "",
                rule=d.rule_of(fault) if d else "",
                fault=fault.name,
                outcome=outcome,
                cohort=d.cohort if d else "",
                protocol=self.protocol,
                grpc_status=self.grpc_status_of(fault),
            )
        )

    def grpc_status_of(self, fault: Fault) -> int | None:
        """The gRPC status `fault` answers this request with (a gRPC call only: HTTP/2)."""
        return None

    async def sleep(self, seconds: float) -> None:
        """Delays before anything went upstream or back are scheduled from the request's
        arrival on the proxy's clock (then from the end of the previous such delay): the time the
        request spent queued or being decided is part of the delay, not added to it."""
        clock = self.clock
        if not self.head_sent and self.upstream_duration is None:
            target = self._anchor + seconds
            self._anchor = target
        elif clock is SYSTEM_CLOCK:
            target = clock.monotonic() + seconds
        else:
            await clock.sleep(seconds)
            return
        if clock is SYSTEM_CLOCK:
            await self.core.deadlines.sleep_until(target)  # never early, on time
        else:
            await clock.sleep(min(seconds, target - clock.monotonic()))

    def error_body(self, status: int, details: str, message: str | None = None) -> bytes:
        return error_json(status, self.request_id, details, message)

    async def respond_error(self, status: int, details: str, *extra: tuple[str, str]) -> None:
        """Answer with the proxy's own JSON error (`extra`: more header fields)."""
        await self.respond(
            status,
            error_json(status, self.request_id, details),
            [("Content-Type", "application/json"), *extra],
        )

    def answer_fields(
        self, status: int, body: bytes, headers: Iterable[tuple[str, str]]
    ) -> list[tuple[str, str]]:
        """The fields of an answer the proxy makes itself (`respond`), once the respond hooks
        saw it: minus the framing and the request id, which the protocol's side adds; a
        `Retry-After` among them is kept for the request's event."""
        if self.head_sent:
            raise RuntimeError("the response head was already sent")
        out: list[tuple[str, str]] = []
        for name, value in self.responding(status, body, headers):
            low = name.lower()
            if low == "retry-after":
                self.retry_after = retry_after_seconds(value)
            elif low in _OWN_FIELDS:
                continue
            out.append((name, value))
        return out


def injected_mark(decision: Decision | None, faults: tuple[Fault, ...]) -> str:
    """`X-Chaos-Injected` value: the faults, then where they came from."""
    names = "+".join(f.name for f in faults)
    if decision is None:
        return f"{names}; source=header"
    d = decision
    return f"{names}; scenario={d.scenario or '-'}; phase={d.phase or '-'}; rule={d.rule}"


def retry_after_seconds(value: str) -> float | None:
    """A `Retry-After` in seconds; None for a date or anything else."""
    try:
        return float(value)
    except ValueError:
        return None


async def run_chain(
    faults: tuple[Fault, ...], ex: Exchange, forward: Callable[[], Awaitable[None]]
) -> None:
    """Apply faults outermost first; the innermost step (`forward`) goes upstream."""
    await (_Step(faults, ex, forward, 0) if faults else forward)()


class _Step:
    """One fault of a chain, called with the rest of it (a class, not a closure that names
    itself: mypyc compiles that wrongly)."""

    __slots__ = ("ex", "faults", "forward", "i")

    def __init__(
        self,
        faults: tuple[Fault, ...],
        ex: Exchange,
        forward: Callable[[], Awaitable[None]],
        i: int,
    ) -> None:
        self.faults, self.ex, self.forward, self.i = faults, ex, forward, i

    async def __call__(self) -> None:
        if self.ex.finished:
            return
        i = self.i + 1
        rest = (
            self.forward if i == len(self.faults) else _Step(self.faults, self.ex, self.forward, i)
        )
        await self.faults[self.i].apply(self.ex, rest)
