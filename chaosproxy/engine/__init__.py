"""The engine: compiled scenarios, their timeline, and the pure per-request decision."""

from chaosproxy.engine.core import Decision, Engine
from chaosproxy.engine.events import EventBus

__all__ = ["Decision", "Engine", "EventBus"]
