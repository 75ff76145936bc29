"""Events: every state change and every injected fault, timestamped, fanned out to listeners.

Listeners (metrics, journal, per-second stats) subscribe; a failing listener is logged and
isolated so it can never break proxying. Listeners only ever run on the proxy loop's thread:
other threads (the admin listener) `post`, which queues the event to that thread in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

log = logging.getLogger("chaosproxy.common.events")


@dataclass(frozen=True, slots=True)
class FaultInjected:
    """A fault acted on one request."""

    t: float  # wall-clock seconds
    request_id: str
    method: str
    path: str
    scenario: str
    phase: str
    rule: str
    fault: str
    outcome: str
    cohort: str = ""  # `fault`/`control` when the run splits its clients (common/cohort.py)
    protocol: str = "http/1.1"  # what the client spoke: `http/1.1` or `h2` (one stream)
    grpc_status: int | None = None  # on a gRPC call, the status the fault answers it with


# `RequestDone`'s fields in its constructor's order (its slots; what `__eq__` and `__repr__`
# show).
_DONE_FIELDS = (
    "t",
    "method",
    "status",
    "duration",
    "upstream_duration",
    "upstream_error",
    "injected",
    "client",
    "retry_after",
    "run",
    "cohort",
    "protocol",
    "grpc_status",
    "request_id",
)


class RequestDone:
    """One client exchange finished, however it ended. (A plain class, not a dataclass: one is
    made per request, and compiled, a dataclass's generated `__init__` runs as Python.)"""

    __slots__ = _DONE_FIELDS

    def __init__(
        self,
        t: float,
        method: str,
        status: int,
        duration: float,
        upstream_duration: float | None,
        upstream_error: str | None,
        injected: bool,
        client: str = "",
        retry_after: float | None = None,
        run: str = "",
        cohort: str = "",
        protocol: str = "http/1.1",
        grpc_status: int | None = None,
        request_id: str = "",
    ) -> None:
        self.t = t
        self.method = method
        self.status = status  # 0 when the connection was reset/closed without a status
        self.duration = duration  # as the client saw it, injected delay included
        self.upstream_duration = upstream_duration  # None when the upstream was not called
        self.upstream_error = upstream_error  # refused | timeout | reset | protocol
        self.injected = injected
        self.client = client  # who sent it: --client-id-header's value, else the address
        self.retry_after = retry_after  # seconds the response asked the client to wait
        self.run = run  # the X-Chaos-Run header: which experiment run sent it ("" for others)
        # `fault` or `control` while the running scenario (or the ad-hoc rules) has a cohort
        # spec, in every phase; "" otherwise.
        self.cohort = cohort
        self.protocol = protocol  # what the client spoke: `http/1.1` or `h2` (one stream)
        # A gRPC call's status code as its client reads it (the upstream's `grpc-status`, the
        # one a fault answered, or what a reset stream means to gRPC); None for other requests.
        self.grpc_status = grpc_status
        self.request_id = request_id  # its id (the journal's lines of a gRPC call wait for it)

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in _DONE_FIELDS)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RequestDone) and self._fields() == other._fields()

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in _DONE_FIELDS)
        return f"RequestDone({fields})"


class StateKind(StrEnum):
    """What a `StateChanged` reports. A `str` enum: JSON, logs and `/events` carry the value."""

    SCENARIO_STARTED = "scenario_started"
    SCENARIO_STOPPED = "scenario_stopped"
    SCENARIO_FINISHED = "scenario_finished"
    SCENARIO_REPLACED = "scenario_replaced"
    SCENARIO_SCHEDULED = "scenario_scheduled"
    SCENARIO_UNSCHEDULED = "scenario_unscheduled"
    PHASE_CHANGED = "phase_changed"
    RULE_ADDED = "rule_added"
    RULE_REMOVED = "rule_removed"
    RULES_CLEARED = "rules_cleared"
    RELOAD_OK = "reload_ok"
    RELOAD_FAILED = "reload_failed"
    GUARDRAIL_TRIPPED = "guardrail_tripped"
    RULES_UNMATCHED = "rules_unmatched"  # a phase's rules matched none of many requests

    @property
    def outcome(self) -> str:
        """The run state a scenario end leaves in `/status`: `stopped`, `finished`."""
        return self.value.removeprefix("scenario_")


@dataclass(frozen=True, slots=True)
class StateChanged:
    """Scenario started, phase changed, stopped, guardrail tripped, reload, rules changed."""

    t: float
    kind: StateKind
    scenario: str = ""
    phase: str = ""
    details: dict[str, Any] = field(default_factory=dict)


Event = FaultInjected | RequestDone | StateChanged
Listener = Callable[[Any], None]


class EventBus:
    """Dispatch by exact event type: one dict lookup per event, whatever else is subscribed.

    Threads: `bind(loop)` names the thread listeners run on (the proxy loop's). `emit` is for
    that thread; `post` may be called from any thread. `batch()` holds `lock` around a state
    change and the events describing it, so the owner thread dispatches them only once the
    change is complete and before any event it emits afterwards (see docs/architecture.md).
    """

    def __init__(self) -> None:
        self._by_type: dict[type, tuple[Listener, ...]] = {}
        self.lock = threading.RLock()
        self._pending: deque[object] = deque()
        self._depth = 0  # open batches (any thread)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._owner: int | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Listeners run on the thread of `loop` (called from it); `post` elsewhere queues."""
        self._loop = loop
        self._owner = threading.get_ident()

    def on_owner_thread(self) -> bool:
        return self._owner is None or threading.get_ident() == self._owner

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """A state change and its events, atomic for the owner thread's listeners."""
        with self.lock:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
        if self._pending and self.on_owner_thread():
            self._sync()

    def post(self, event: object) -> None:
        """`emit` from any thread: dispatched on the owner thread, in order."""
        self._pending.append(event)
        if self.on_owner_thread():
            self._sync()
        elif self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: shutting down
                self._loop.call_soon_threadsafe(self._sync)

    def _sync(self) -> None:
        """Dispatch queued events (owner thread), once no state change is being made."""
        with self.lock:  # waits for another thread's batch to complete
            pending = self._pending
            while pending and not self._depth:  # in our own batch: its end dispatches them
                self._dispatch(pending.popleft())

    def _dispatch(self, event: object) -> None:
        for fn in self._by_type.get(type(event), ()):
            try:
                fn(event)
            except Exception:
                log.exception("event listener %r failed on %s", fn, type(event).__name__)

    def subscribe(self, kind: type | tuple[type, ...], listener: Listener) -> None:
        for k in kind if isinstance(kind, tuple) else (kind,):
            self._by_type[k] = (*self._by_type.get(k, ()), listener)

    def unsubscribe(self, listener: Listener) -> None:
        self._by_type = {
            # `!=`, not `is not`: every `obj.method` lookup is a new bound-method object.
            k: tuple(fn for fn in fns if fn != listener)
            for k, fns in self._by_type.items()
        }

    def emit(self, event: object) -> None:
        if self._pending or self._depth:
            self._sync()  # events posted before this one go first
        for fn in self._by_type.get(type(event), ()):
            try:
                fn(event)
            except Exception:
                log.exception("event listener %r failed on %s", fn, type(event).__name__)
