"""The engine: compiled scenarios, their timeline, and the pure per-request decision.

Names are resolved on first use (PEP 562), so importing a leaf such as
`chaosproxy.engine.load_signals` does not pull in the whole engine (and, through it, config,
matching and faults).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chaosproxy.common.events import EventBus
    from chaosproxy.engine.core import Decision, Engine

__all__ = ["Decision", "Engine", "EventBus"]


def __getattr__(name: str) -> Any:
    if name in ("Decision", "Engine"):
        from chaosproxy.engine import core

        return getattr(core, name)
    if name == "EventBus":
        from chaosproxy.common.events import EventBus

        return EventBus
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
