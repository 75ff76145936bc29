"""Events: every state change and every injected fault, timestamped, fanned out to listeners.

Listeners (metrics, journal, per-second stats) subscribe; a failing listener is logged and
isolated so it can never break proxying.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

log = logging.getLogger("chaosproxy.events")


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


@dataclass(slots=True)
class RequestDone:
    """One client exchange finished, however it ended."""

    t: float
    method: str
    status: int  # 0 when the connection was reset/closed without a status
    duration: float  # as the client saw it, injected delay included
    upstream_duration: float | None  # None when the upstream was not called
    upstream_error: str | None  # refused | timeout | reset | protocol
    injected: bool
    client: str = ""  # who sent it: --client-id-header's value, else the address
    retry_after: float | None = None  # seconds the response asked the client to wait
    run: str = ""  # the X-Chaos-Run header: which experiment run sent it ("" for other traffic)


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
    """Dispatch by exact event type: one dict lookup per event, whatever else is subscribed."""

    def __init__(self) -> None:
        self._by_type: dict[type, tuple[Listener, ...]] = {}

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
        for fn in self._by_type.get(type(event), ()):
            try:
                fn(event)
            except Exception:
                log.exception("event listener %r failed on %s", fn, type(event).__name__)
