"""The fake clock every unit test of timed logic runs on: time moves only when a test says so,
sleepers wake exactly when their deadline passes, and a test can wait until a task sleeps."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from chaosproxy.common.clock import SYSTEM_CLOCK, FakeClock, sleep_until


def test_fake_time_moves_only_when_advanced_and_wall_follows_monotonic() -> None:
    clock = FakeClock(start=50.0)
    assert clock.monotonic() == 50.0
    wall = clock.wall()
    clock.advance(2.5)
    assert clock.monotonic() == 52.5
    assert clock.wall() == wall + 2.5


async def test_a_sleeper_wakes_once_its_deadline_is_reached_not_before() -> None:
    clock = FakeClock()
    woke: list[float] = []

    async def nap() -> None:
        await clock.sleep(10)
        woke.append(clock.monotonic())

    task = asyncio.create_task(nap())
    await clock.wait_sleepers(1)
    clock.advance(9.999)
    await asyncio.sleep(0)
    assert woke == [] and clock.sleepers == 1
    clock.advance(0.001)
    await task
    assert woke == [1010.0] and clock.sleepers == 0


async def test_one_advance_wakes_every_sleeper_it_passes_in_deadline_order() -> None:
    clock = FakeClock()
    order: list[str] = []

    async def nap(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        order.append(name)

    tasks = [asyncio.create_task(nap(n, s)) for n, s in (("late", 3), ("early", 1), ("never", 9))]
    await clock.wait_sleepers(3)
    clock.advance(5)
    await asyncio.gather(*tasks[:2])
    assert order == ["early", "late"]
    assert clock.sleepers == 1
    tasks[2].cancel()


async def test_wait_sleepers_until_tells_which_deadline_a_task_sleeps_to() -> None:
    clock = FakeClock(start=0.0)
    sleeping = asyncio.create_task(clock.sleep(4))
    waiter = asyncio.create_task(clock.wait_sleepers(1, until=7.0))
    await clock.wait_sleepers(1, until=4.0)
    assert not waiter.done()
    other = asyncio.create_task(clock.sleep(7))
    await waiter
    clock.advance(7)
    await asyncio.gather(sleeping, other)


async def test_a_sleep_of_zero_or_less_returns_without_registering_a_sleeper() -> None:
    clock = FakeClock()
    await clock.sleep(0)
    await clock.sleep(-1)
    await SYSTEM_CLOCK.sleep(0)
    assert clock.sleepers == 0
    assert clock.monotonic() == 1000.0


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_sleep_until_never_wakes_before_its_deadline_and_keeps_the_order(loop: str) -> None:
    """60 delays of 1-6 ms at once, on the standard loop and on uvloop (whose timers count
    whole milliseconds on a lagging clock and may fire a millisecond early): every one wakes at
    or after its deadline; and 30 delays of one length begun one after another wake in the
    order they began (a wave of requests delayed alike is answered in arrival order)."""
    woke: list[tuple[str, int, float, float]] = []

    async def one(kind: str, i: int, length: float | None = None, at: float = 0.0) -> None:
        deadline = at if length is None else time.monotonic() + length
        await sleep_until(deadline)
        woke.append((kind, i, deadline, time.monotonic()))

    async def main() -> None:
        rng = random.Random(7)
        now = time.monotonic()
        mixed = [now + rng.choice((0.001, 0.0025, 0.004, 0.006)) for _ in range(60)]
        await asyncio.gather(
            *(one("mixed", i, at=d) for i, d in enumerate(mixed)),
            *(one("alike", i, length=0.003) for i in range(30)),
        )

    factory = asyncio.new_event_loop
    if loop == "uvloop":
        factory = pytest.importorskip("uvloop").new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())
    assert len(woke) == 90
    assert [(kind, i) for kind, i, d, at in woke if at < d] == []
    assert [i for kind, i, _, _ in woke if kind == "alike"] == list(range(30))
