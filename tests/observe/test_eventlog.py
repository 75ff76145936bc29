"""The ring of state changes behind `GET /events?since=N`: a reader's cursor, a reader told
when it fell behind the ring, and no URL's credentials in what it serves."""

from __future__ import annotations

from chaosproxy.common.events import StateChanged, StateKind
from chaosproxy.observe.eventlog import EventLog


def test_events_say_when_the_cursor_fell_out_of_the_ring() -> None:
    log = EventLog(keep=2)
    for i in range(3):
        log.on_state(StateChanged(float(i), StateKind.RULE_ADDED))
    events, dropped = log.since(0)
    assert dropped is True and [e["seq"] for e in events] == [2, 3]
    assert log.since(1) == (events, False)  # the next one the reader wants is still there


def test_events_never_carry_a_urls_credentials() -> None:
    log = EventLog()
    details = {"problems": ["s.yaml:3:9: upstream http://bob:hunter2@db:5432/x is odd"]}
    log.on_state(StateChanged(1.0, StateKind.RELOAD_FAILED, details=details))
    (event,), _ = log.since(0)
    assert event["details"]["problems"] == ["s.yaml:3:9: upstream http://***@db:5432/x is odd"]
