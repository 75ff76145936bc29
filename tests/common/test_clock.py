"""The fake clock every unit test of timed logic runs on: time moves only when a test says so,
sleepers wake exactly when their deadline passes, and a test can wait until a task sleeps."""

from __future__ import annotations

import asyncio

from chaosproxy.common.clock import SYSTEM_CLOCK, FakeClock


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
