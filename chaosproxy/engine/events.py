"""Moved to `chaosproxy.events` (a leaf module); this name stays for existing imports."""

from chaosproxy.events import (
    Event,
    EventBus,
    FaultInjected,
    Listener,
    RequestDone,
    StateChanged,
    StateKind,
)

__all__ = [
    "Event",
    "EventBus",
    "FaultInjected",
    "Listener",
    "RequestDone",
    "StateChanged",
    "StateKind",
]
