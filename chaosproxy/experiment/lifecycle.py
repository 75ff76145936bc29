"""The lifecycle of one experiment run: its states, the events it fires, and the clock it reads.

Locust's runner is the model (ready → spawning → running → stopping → stopped, with
`events.test_start`, `test_stopping` and `test_stop`). A run goes

    preparing → warming_up → running → [halted] → stopping → gathering → done

- `preparing`: proxies started or reached, the scenario uploaded, the target checked;
- `warming_up`: Locust started at the warm-up load, until the users hold for `settle` seconds;
- `running`: the scenario scheduled on every proxy for one whole second, then followed second
  by second (entered with `test_start`);
- `halted`: a `halt` check breached; injection is stopped, the load runs 3 s more;
- `interrupted`: the stop event was set (Ctrl-C, SIGTERM), from `warming_up`, `running` or
  `halted`; what was collected is still gathered;
- `stopping`: the load and the scenarios are being stopped (entered with `test_stopping`, left
  after `test_stop`), with the reason: the planned end, Locust or the proxy gone, the
  interruption, an error;
- `gathering`: both views fetched, judged, results.json written (its `run.states` is the history
  up to here);
- `done`; or `failed`: the run could not go on (a setup error, a bug). Allowed from any state
  but the two ends; the runner goes through `stopping` first (the error its reason), so the
  load and the scenarios are stopped either way, and a failure while gathering ends there.

Every transition fires `state_changed`; listeners (the console, `live.Console`) print from the
transitions and events, never from the run's own code. A listener that raises is logged and
the others still run: showing a run never changes it.

The clock (`Clock`) is injected (`RunOptions.clock`): every reading of the time and every wait
of a run goes through it, so a test drives a whole run with a clock that never sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("chaosproxy.experiment")


class State(enum.StrEnum):
    PREPARING = "preparing"
    WARMING_UP = "warming_up"
    RUNNING = "running"
    HALTED = "halted"
    INTERRUPTED = "interrupted"
    STOPPING = "stopping"
    GATHERING = "gathering"
    DONE = "done"
    FAILED = "failed"


# Where each state may go (`failed` aside: from any state but the two ends).
NEXT: dict[State | None, frozenset[State]] = {
    None: frozenset({State.PREPARING}),
    State.PREPARING: frozenset({State.WARMING_UP, State.STOPPING}),
    State.WARMING_UP: frozenset({State.RUNNING, State.INTERRUPTED, State.STOPPING}),
    State.RUNNING: frozenset({State.HALTED, State.INTERRUPTED, State.STOPPING}),
    State.HALTED: frozenset({State.INTERRUPTED, State.STOPPING}),
    State.INTERRUPTED: frozenset({State.STOPPING}),
    State.STOPPING: frozenset({State.GATHERING}),
    State.GATHERING: frozenset({State.DONE}),
    State.DONE: frozenset(),
    State.FAILED: frozenset(),
}
TERMINAL = frozenset({State.DONE, State.FAILED})


class TransitionError(RuntimeError):
    """A transition the lifecycle does not have: a bug in the runner."""


# ---------------------------------------------------------------- events


class EventHook:
    """Listeners called in order with the event's keyword arguments (Locust's `EventHook`).
    A listener that raises is logged; the rest still run and the run goes on."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._listeners: list[Callable[..., Any]] = []

    def add_listener(self, listener: Callable[..., Any]) -> Callable[..., Any]:
        self._listeners.append(listener)
        return listener  # usable as a decorator

    def remove_listener(self, listener: Callable[..., Any]) -> None:
        self._listeners.remove(listener)

    def fire(self, **kwargs: Any) -> None:
        for listener in list(self._listeners):
            try:
                listener(**kwargs)
            except Exception:
                log.exception("a listener of %s failed: %r", self.name, listener)


class RunEvents:
    """What a run fires; every event has the run as `run=`.

    - `state_changed(run, previous, state, at, reason)`: every transition;
    - `test_start(run, at)`: the scenario is scheduled on every proxy for `at` (→ running);
    - `tick(run, now)`: once a second while warming up and running, after that second's checks;
    - `message(run, text)`, `warning(run, text)`: what the run has to say;
    - `test_stopping(run, reason)`: the load and the scenarios are about to be stopped;
    - `test_stop(run)`: they are.
    """

    def __init__(self) -> None:
        self.state_changed = EventHook("state_changed")
        self.test_start = EventHook("test_start")
        self.tick = EventHook("tick")
        self.message = EventHook("message")
        self.warning = EventHook("warning")
        self.test_stopping = EventHook("test_stopping")
        self.test_stop = EventHook("test_stop")


# ---------------------------------------------------------------- states


@dataclass(frozen=True)
class Transition:
    state: State
    at: float  # the run's clock
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"state": str(self.state), "at": self.at, "reason": self.reason}


class Lifecycle:
    """The state of a run and how it got there; each transition timed and fired."""

    def __init__(self, owner: Any, clock: Clock, events: RunEvents) -> None:
        self.owner = owner  # the run, passed to listeners
        self.clock = clock
        self.events = events
        self.history: list[Transition] = []

    @property
    def state(self) -> State | None:
        return self.history[-1].state if self.history else None

    def can(self, state: State) -> bool:
        """Whether the lifecycle has a transition from where it is to `state`."""
        if state is State.FAILED:
            return self.state not in TERMINAL
        return state in NEXT[self.state]

    def to(self, state: State, reason: str = "") -> None:
        previous = self.state
        if not self.can(state):
            raise TransitionError(f"{previous} -> {state}")
        t = Transition(state, self.clock.time(), reason)
        self.history.append(t)
        self.events.state_changed.fire(
            run=self.owner, previous=previous, state=state, at=t.at, reason=reason
        )

    def fail(self, reason: str) -> None:
        """To `failed` unless the run already ended."""
        if self.state not in TERMINAL:
            self.to(State.FAILED, reason)

    def to_json(self) -> list[dict[str, Any]]:
        return [t.to_json() for t in self.history]


# ---------------------------------------------------------------- the clock


class Clock(Protocol):
    """The run's time: `time()` (Unix seconds) and waits that end early once `stop` is set."""

    def time(self) -> float: ...

    async def wait(self, delay: float, stop: asyncio.Event | None = None) -> bool:
        """Wait `delay` seconds, or until `stop` is set: True when it is."""
        ...

    async def sleep_until(self, t: float, stop: asyncio.Event | None = None) -> bool:
        """Wait until the time is `t`, or until `stop` is set: True when it is."""
        ...


class RealClock:
    """The wall clock and asyncio's waits."""

    def time(self) -> float:
        return time.time()

    async def wait(self, delay: float, stop: asyncio.Event | None = None) -> bool:
        if stop is None:
            await asyncio.sleep(max(0.0, delay))
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, delay))
        return stop.is_set()

    async def sleep_until(self, t: float, stop: asyncio.Event | None = None) -> bool:
        return await self.wait(t - self.time(), stop)


REAL_CLOCK = RealClock()
