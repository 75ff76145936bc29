"""Guardrails: active-fault cap, duration limits and abort_if, driven by a fake clock."""

from __future__ import annotations

from chaosproxy.common.clock import FakeClock
from chaosproxy.common.events import EventBus, RequestDone, StateChanged
from chaosproxy.config.model import AbortIf, PhaseSpec, Scenario
from chaosproxy.engine.guardrails import Guardrails, Running
from chaosproxy.observe.stats import Stats


def scenario(**kw: object) -> Scenario:
    return Scenario(
        name="s",
        description="",
        phases=(PhaseSpec("p", 60.0, "phases[0]"),),
        **kw,  # type: ignore[arg-type]
    )


class Harness:
    def __init__(self, sc: Scenario | None, **kw: object) -> None:
        self.clock = FakeClock()
        self.bus = EventBus()
        self.events: list[StateChanged] = []
        self.bus.subscribe(StateChanged, self.events.append)
        self.stats = Stats()
        self.running = None if sc is None else Running(sc, self.clock.monotonic())
        self.g = Guardrails(
            bus=self.bus,
            stats=self.stats,
            current=lambda: self.running,
            stop=self.stop,
            clock=self.clock,
            **kw,  # type: ignore[arg-type]
        )

    def stop(self) -> None:
        self.running = None

    def traffic(self, seconds: int, per_second: int, status: int = 200, dur: float = 0.01) -> None:
        for _ in range(seconds):
            for _ in range(per_second):
                self.stats.on_request(
                    RequestDone(self.clock.wall(), "GET", status, dur, None, None, False)
                )
            self.clock.advance(1.0)
            self.g.check()


def test_requests_beyond_max_active_faults_are_skipped_and_counted() -> None:
    h = Harness(None, max_active_faults=2)
    assert [h.g.admit() for _ in range(3)] == [True, True, False]
    assert h.g.skipped == 1
    h.g.release()
    assert h.g.admit()


def test_scenario_max_active_faults_tightens_the_global_one() -> None:
    h = Harness(scenario(max_active_faults=1), max_active_faults=5)
    h.g.check()
    assert h.g.limit == 1


def test_scenario_stops_itself_after_its_max_duration() -> None:
    h = Harness(scenario(max_duration=10.0))
    h.clock.advance(9.5)
    assert h.g.check() is None
    h.clock.advance(1.0)
    trip = h.g.check()
    assert trip is not None and trip.guardrail == "max_duration"
    assert h.running is None
    assert h.events[-1].kind == "guardrail_tripped"


def test_global_max_fault_duration_caps_a_longer_scenario_limit() -> None:
    h = Harness(scenario(max_duration=3600.0), max_fault_duration=60.0)
    h.clock.advance(61.0)
    trip = h.g.check()
    assert trip is not None and trip.guardrail == "max_fault_duration"


def test_rule_ttl_defaults_to_and_is_capped_by_the_global_limit() -> None:
    h = Harness(None, max_fault_duration=1800.0)
    assert h.g.rule_ttl(None) == 1800.0
    assert h.g.rule_ttl(60.0) == 60.0
    assert h.g.rule_ttl(7200.0) == 1800.0


def test_abort_if_error_rate_trips_once_the_window_is_above_the_bound() -> None:
    h = Harness(scenario(abort_if=AbortIf(error_rate_above=0.5, window=5.0)))
    h.traffic(3, 10, status=503)
    assert h.running is not None  # the scenario has not run for a whole window yet
    h.traffic(3, 10, status=503)
    assert h.running is None
    assert h.g.trips[-1].guardrail == "abort_if.error_rate"
    assert h.g.status()["trips"][0]["scenario"] == "s"


def test_abort_if_does_not_trip_below_the_bound() -> None:
    h = Harness(scenario(abort_if=AbortIf(error_rate_above=0.5, window=5.0)))
    h.traffic(10, 10, status=200)
    assert h.running is not None and h.g.trips == []


def test_abort_if_p99_trips_on_slow_responses() -> None:
    h = Harness(scenario(abort_if=AbortIf(p99_above=0.5, window=3.0)))
    h.traffic(5, 10, dur=2.0)
    assert h.running is None and h.g.trips[-1].guardrail == "abort_if.p99"


def test_abort_if_ignores_windows_with_too_few_requests() -> None:
    h = Harness(scenario(abort_if=AbortIf(error_rate_above=0.1, window=3.0)))
    h.traffic(5, 0)
    h.stats.on_request(RequestDone(h.clock.wall() - 1, "GET", 500, 0.01, None, None, False))
    h.g.check()
    assert h.running is not None
