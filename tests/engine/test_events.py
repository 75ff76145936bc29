"""The event bus: dispatch by type, isolation of failing listeners, unsubscribing."""

from __future__ import annotations

import logging

import pytest

from chaosproxy.engine.events import EventBus, StateChanged


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


def test_state_log_lines_round_seconds_to_the_millisecond_and_the_event_keeps_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.engine.helpers import rig, scenario

    r = rig()
    r.engine.start_scenario(
        scenario("""
        name: short
        phases:
          - name: only
            duration: 30s
        """)
    )
    caplog.set_level(logging.INFO, logger="chaosproxy")
    r.clock.advance(25.64357094600001)
    r.engine.stop_scenario()
    (line,) = [rec for rec in caplog.records if rec.getMessage().startswith("scenario_stopped")]
    assert "elapsed=25.644" in line.getMessage()
    assert "25.6435" not in line.getMessage()
    assert r.states[-1].details["elapsed"] == pytest.approx(25.64357094600001, abs=1e-9)
    assert line.event["elapsed"] == r.states[-1].details["elapsed"]  # type: ignore[attr-defined]
