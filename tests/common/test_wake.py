"""`WakeAt`: a wake-up at an instant of `time.monotonic()`, never before it, with a timerfd
where the system has one and with the loop's timer where it has none, on asyncio and uvloop."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from chaosproxy.common import wake
from chaosproxy.common.wake import WakeAt

LOOPS: dict[str, Callable[[Coroutine[Any, Any, None]], None]] = {
    "asyncio": asyncio.run,
    "uvloop": uvloop.run,
}


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("timerfd", [True, False])
@pytest.mark.parametrize("loop", list(LOOPS))
def test_each_wake_up_comes_at_or_after_its_instant(
    loop: str, timerfd: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not timerfd:
        monkeypatch.setattr(wake, "_TIMERFD", None)

    async def main() -> None:
        lateness: list[float] = []
        woken: asyncio.Future[None] | None = None
        target = 0.0

        def fired() -> None:
            lateness.append(time.monotonic() - target)
            assert woken is not None
            woken.set_result(None)

        w = WakeAt(asyncio.get_running_loop(), fired)
        assert w.precise is (timerfd and sys.platform == "linux")
        for i in range(40):  # 0.1 to 7.9 ms ahead: under and over a millisecond, and the lead
            woken = asyncio.get_running_loop().create_future()
            target = time.monotonic() + (i * 2 + 1) / 10_000
            w.set(target)
            await woken
        w.close()
        assert len(lateness) == 40 and min(lateness) >= 0

    LOOPS[loop](main())


@pytest.mark.parametrize("loop", list(LOOPS))
def test_setting_again_moves_the_instant_and_cancel_or_close_ends_it(loop: str) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        before = fds()
        calls: list[float] = []
        woke = loop.create_future()

        def fired() -> None:
            calls.append(time.monotonic())
            woke.set_result(None)

        w = WakeAt(loop, fired)
        w.set(time.monotonic() + 3600)
        near = time.monotonic() + 0.005
        w.set(near)  # moved closer: it wakes then, once
        async with asyncio.timeout(10):
            await woke
        assert calls == [calls[0]] and calls[0] >= near

        async def past(seconds: float) -> None:
            """Until another wake-up, set after `w`'s instant, came: one `w` would precede."""
            passed = loop.create_future()
            barrier = WakeAt(loop, lambda: passed.set_result(None))
            barrier.set(time.monotonic() + seconds)
            async with asyncio.timeout(10):
                await passed
            barrier.close()

        w.set(time.monotonic() + 0.002)
        w.cancel()  # nothing comes
        await past(0.01)
        assert len(calls) == 1
        w.set(time.monotonic() + 0.002)
        w.close()  # nothing comes, and no descriptor is left open
        await past(0.01)
        assert len(calls) == 1 and fds() == before

    LOOPS[loop](main())


@pytest.mark.parametrize("loop", list(LOOPS))
def test_deadlines_wake_sleepers_never_early_and_forget_the_cancelled(loop: str) -> None:
    from chaosproxy.common.wake import Deadlines

    async def main() -> None:
        deadlines = Deadlines()
        now = time.monotonic()
        ends = [now + (i * 37 % 50) / 5_000 for i in range(50)]  # 0 to 9.8 ms, mixed

        async def sleeper(end: float) -> float:
            await deadlines.sleep_until(end)
            return time.monotonic() - end

        late = await asyncio.gather(*(sleeper(e) for e in ends))
        assert min(late) >= 0 and len(deadlines) == 0
        waiting = asyncio.ensure_future(deadlines.sleep_until(time.monotonic() + 3600))
        await asyncio.sleep(0)  # the task's first step: it is in the heap
        assert len(deadlines) == 1
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert len(deadlines) == 0
        deadlines.close()

    LOOPS[loop](main())


async def test_a_wait_that_fails_when_due_does_not_hold_up_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from chaosproxy.common.wake import Deadlines

    class Broken:
        waiting = True

        def due(self) -> None:
            raise RuntimeError("boom")

    deadlines = Deadlines()
    deadlines.add(time.monotonic(), Broken())
    async with asyncio.timeout(10):
        await deadlines.sleep_until(time.monotonic() + 0.002)  # told after the broken one
    assert "a wait that came due failed" in caplog.text
    deadlines.close()


async def test_a_timer_calls_back_never_early_and_a_cancelled_one_never() -> None:
    from chaosproxy.common.wake import Deadlines

    deadlines = Deadlines()
    called: list[tuple[str, float]] = []
    at = time.monotonic() + 0.005
    kept = deadlines.call_at(at, lambda: called.append(("kept", time.monotonic())))
    gone = deadlines.call_at(at - 0.001, lambda: called.append(("gone", time.monotonic())))
    gone.cancel()
    gone.cancel()  # twice: forgotten once
    assert len(deadlines) == 1
    async with asyncio.timeout(10):
        await deadlines.sleep_until(at + 0.001)  # told after the kept one
    assert [name for name, _ in called] == ["kept"] and called[0][1] >= at
    kept.cancel()  # after it came due: nothing
    assert len(deadlines) == 0
    deadlines.close()
