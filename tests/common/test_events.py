"""The event bus: dispatch by type, isolation of failing listeners, unsubscribing, threads."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from chaosproxy.common.events import EventBus, FaultInjected, StateChanged, StateKind


class Listener:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def on_state(self, ev: StateChanged) -> None:
        self.seen.append(ev.kind)


def test_a_bound_method_can_be_unsubscribed() -> None:
    bus, listener = EventBus(), Listener()
    bus.subscribe(StateChanged, listener.on_state)
    bus.unsubscribe(listener.on_state)  # a new bound-method object, equal to the first
    bus.emit(StateChanged(0.0, StateKind.SCENARIO_STARTED))
    assert listener.seen == []


def test_a_failing_listener_does_not_stop_the_others() -> None:
    bus, listener = EventBus(), Listener()

    def broken(ev: StateChanged) -> None:
        raise RuntimeError("boom")

    bus.subscribe(StateChanged, broken)
    bus.subscribe(StateChanged, listener.on_state)
    bus.emit(StateChanged(0.0, StateKind.PHASE_CHANGED))
    assert listener.seen == ["phase_changed"]


async def test_an_event_posted_from_another_thread_is_dispatched_on_the_owner_thread() -> None:
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    seen: list[tuple[str, int]] = []
    arrived = asyncio.Event()

    def on_state(ev: StateChanged) -> None:
        seen.append((ev.kind, threading.get_ident()))
        arrived.set()  # safe: this runs on the loop's thread

    bus.subscribe(StateChanged, on_state)
    poster = threading.Thread(
        target=bus.post, args=(StateChanged(0.0, StateKind.SCENARIO_STOPPED),)
    )
    poster.start()
    poster.join()
    assert seen == []  # not on the posting thread
    await arrived.wait()
    assert seen == [("scenario_stopped", threading.get_ident())]


async def test_events_of_another_threads_change_come_before_what_the_owner_emits_next() -> None:
    """The journal's time origin: a fault of a scenario is never dispatched before the
    scenario's start, even when the admin thread started it an instant earlier."""
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    order: list[str] = []
    bus.subscribe(StateChanged, lambda ev: order.append(ev.kind))
    bus.subscribe(FaultInjected, lambda ev: order.append("fault"))
    inside, release = threading.Event(), threading.Event()

    def admin() -> None:
        with bus.batch():
            inside.set()
            release.wait()
            bus.post(StateChanged(0.0, StateKind.SCENARIO_STARTED))

    t = threading.Thread(target=admin)
    t.start()
    inside.wait()
    threading.Thread(target=release.set).start()
    # The owner emits while the change may still be under way: it waits for it to complete.
    bus.emit(FaultInjected(0.0, "r1", "GET", "/", "s", "p", "rule", "error", "status=500"))
    t.join()
    assert order == ["scenario_started", "fault"]


def test_a_change_on_the_owner_thread_dispatches_its_events_after_it() -> None:
    bus = EventBus()
    state = {"running": False}
    seen: list[bool] = []
    bus.subscribe(StateChanged, lambda ev: seen.append(state["running"]))
    with bus.batch():
        bus.post(StateChanged(0.0, StateKind.SCENARIO_STARTED))
        state["running"] = True  # listeners see the completed change
    assert seen == [True]


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
