"""The event bus: dispatch by type, isolation of failing listeners, unsubscribing."""

from __future__ import annotations

from chaosproxy.events import EventBus, StateChanged


class Listener:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def on_state(self, ev: StateChanged) -> None:
        self.seen.append(ev.kind)


def test_a_bound_method_can_be_unsubscribed() -> None:
    bus, listener = EventBus(), Listener()
    bus.subscribe(StateChanged, listener.on_state)
    bus.unsubscribe(listener.on_state)  # a new bound-method object, equal to the first
    bus.emit(StateChanged(0.0, "scenario_started"))
    assert listener.seen == []


def test_a_failing_listener_does_not_stop_the_others() -> None:
    bus, listener = EventBus(), Listener()

    def broken(ev: StateChanged) -> None:
        raise RuntimeError("boom")

    bus.subscribe(StateChanged, broken)
    bus.subscribe(StateChanged, listener.on_state)
    bus.emit(StateChanged(0.0, "phase_changed"))
    assert listener.seen == ["phase_changed"]
