"""A wake-up on the event loop at an instant of `time.monotonic()`, never before it and about a
tenth of a millisecond after.

The loop's own timers cannot promise that: uvloop's count whole milliseconds from a truncated
clock and round the delay, so one ends up to 1.5 ms early or 0.5 ms late, and the loop has no
way to wait a fraction of a millisecond but to look again each iteration (a busy loop). On
Linux a `timerfd` (CLOCK_MONOTONIC, the clock of `time.monotonic()`, set to an absolute time)
becomes readable at its time, and the loop's poll wakes for it like for any socket: it is set
a quarter of a millisecond ahead (the kernel's timer slack and the poll's wake-up), and only
that last quarter is looked for iteration by iteration. Where there is no timerfd (another
system, a libc without it), the loop's timer is set 1.5 ms ahead instead.

One `WakeAt` holds one instant at a time (setting it again moves it); its callback runs on the
loop. `close` closes its file descriptor. `Deadlines` keeps many instants of one proxy in a
heap behind one `WakeAt` (`call_at`: a callback at an instant, cancellable like the loop's).
"""

from __future__ import annotations

import asyncio
import ctypes
import heapq
import logging
import math
import os
import time
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("chaosproxy")

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC
_TFD_TIMER_ABSTIME = 1
# How long before the instant the wake-up is set; the rest is waited for one loop iteration
# at a time (an early wake-up is waited out; a late one cannot be undone). A timerfd's wake-up
# comes 40-250 us after its time here (the kernel's timer slack, then the loop's poll): set
# that much ahead, and an instant closer than that is looked for at once. The loop's own timer
# ends up to 0.5 ms late (uvloop): without a timerfd it is set 1.5 ms ahead.
_TIMERFD_AHEAD = 0.00025
_TIMER_AHEAD = 0.0015


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _timerfd() -> tuple[Callable[..., int], Callable[..., int]] | None:
    """libc's timerfd_create and timerfd_settime, or None where there are none."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        create, settime = libc.timerfd_create, libc.timerfd_settime
    except (OSError, AttributeError):
        return None
    create.argtypes = [ctypes.c_int, ctypes.c_int]
    create.restype = ctypes.c_int
    settime.argtypes = [
        ctypes.c_int,
        ctypes.c_int,
        ctypes.POINTER(_Itimerspec),
        ctypes.POINTER(_Itimerspec),
    ]
    settime.restype = ctypes.c_int
    return create, settime


_TIMERFD = _timerfd()


class WakeAt:
    """Calls `callback` on `loop` once `time.monotonic()` reached the instant last `set`."""

    __slots__ = ("_at", "_callback", "_fd", "_handle", "_loop", "_spec")

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback = callback
        self._at = 0.0  # the instant set (0: none)
        self._handle: asyncio.Handle | None = None  # without a timerfd: the timer, or the look
        self._fd = -1
        self._spec = _Itimerspec()
        if _TIMERFD is not None:
            fd = _TIMERFD[0](_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
            if fd >= 0:
                self._fd = fd
                loop.add_reader(fd, self._readable)

    @property
    def precise(self) -> bool:
        """A timerfd wakes it (no busy loop for the last millisecond and a half)."""
        return self._fd >= 0

    def set(self, at: float) -> None:
        """Wake at `at` (`time.monotonic()`; at once if it is past), instead of any instant set
        before."""
        self._at = at
        if self._fd >= 0:
            wake = at - _TIMERFD_AHEAD
            if wake <= time.monotonic():
                self._schedule(0.0)  # closer than a timerfd can wake: looked for at once
                return
            if self._handle is not None:
                self._handle.cancel()
                self._handle = None
            spec = self._spec.it_value
            sec = int(wake)
            spec.tv_sec, spec.tv_nsec = sec, max(1, int((wake - sec) * 1e9))  # 0 would disarm
            assert _TIMERFD is not None
            if _TIMERFD[1](self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None) == 0:
                return
            self._close_fd()  # cannot be set: the loop's timer from here on
        self._schedule(at - time.monotonic() - _TIMER_AHEAD)

    def cancel(self) -> None:
        self._at = 0.0
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._fd >= 0:
            spec = self._spec.it_value
            spec.tv_sec = spec.tv_nsec = 0  # disarmed
            assert _TIMERFD is not None
            _TIMERFD[1](self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None)

    def close(self) -> None:
        self.cancel()
        self._close_fd()

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            self._loop.remove_reader(fd)
            os.close(fd)

    def _readable(self) -> None:
        try:
            os.read(self._fd, 8)  # how many expirations: one instant is all there is
        except (BlockingIOError, InterruptedError):
            return
        self._look()

    def _schedule(self, left: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        loop = self._loop
        if left > 0:
            self._handle = loop.call_later(left, self._look)
        else:
            self._handle = loop.call_soon(self._look)

    def _look(self) -> None:
        self._handle = None
        if self._at and time.monotonic() < self._at:  # early: look again next iteration
            self._handle = self._loop.call_soon(self._look)
            return
        self._due()

    def _due(self) -> None:
        if not self._at:
            return  # cancelled meanwhile
        self._at = 0.0
        self._callback()


# Entries of waits given up before their deadline kept until they come due, unless they
# outnumber the waiting ones (then the heap is rebuilt without them): clients that give up
# during hour-long delays do not hold memory for the hour.
_GONE_KEPT = 64


class Due(Protocol):
    """What waits in `Deadlines`: told once its deadline came, unless it stopped waiting."""

    waiting: bool

    def due(self) -> None: ...


class Timer:
    """A callback waiting in `Deadlines` (`call_at`); `cancel` gives it up, like the loop's
    `TimerHandle`."""

    __slots__ = ("_callback", "_deadlines", "waiting")

    def __init__(self, deadlines: Deadlines, callback: Callable[[], None]) -> None:
        self._deadlines = deadlines
        self._callback = callback
        self.waiting = True

    def due(self) -> None:
        self.waiting = False
        self._callback()

    def cancel(self) -> None:
        if self.waiting:
            self.waiting = False
            self._deadlines.forget()


class Deadlines:
    """What one proxy waits for by deadline (delayed relays, the delays of faults), woken by one
    `WakeAt` set for the earliest: never before a deadline and about a tenth of a millisecond
    after it (a loop timer alone ends up to 0.5 ms late on uvloop, which every delay of a wave
    would carry), and a wave that comes due together is told in one callback."""

    __slots__ = ("_at", "_gone", "_heap", "_seq", "_wake")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Due]] = []
        self._seq = 0  # arrival order, for equal deadlines
        self._gone = 0  # entries of waits given up before their deadline
        self._at = math.inf  # the deadline the wake-up is set for
        self._wake: WakeAt | None = None  # made on first use, on the running loop

    def __len__(self) -> int:
        return len(self._heap) - self._gone

    def add(self, deadline: float, item: Due) -> None:
        """Tell `item` once `deadline` (`time.monotonic()`) came; it stops waiting by setting
        `waiting` false and calling `forget`."""
        heapq.heappush(self._heap, (deadline, self._seq, item))
        self._seq += 1
        if deadline < self._at:
            self._arm(deadline)

    def call_at(self, deadline: float, callback: Callable[[], None]) -> Timer:
        """Call `callback` once `deadline` (`time.monotonic()`) came, unless cancelled."""
        timer = Timer(self, callback)
        self.add(deadline, timer)
        return timer

    async def sleep_until(self, deadline: float) -> None:
        """Until `deadline` (`time.monotonic()`), never before it."""
        if deadline <= time.monotonic():
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not fut.done():
                fut.set_result(None)

        timer = self.call_at(deadline, wake)
        try:
            await fut
        finally:
            timer.cancel()  # (cancelled while it waited; nothing once it came due)

    def forget(self) -> None:
        """Something stopped waiting before its deadline."""
        self._gone += 1
        heap = self._heap
        if self._gone > _GONE_KEPT and self._gone * 2 > len(heap):
            heap[:] = [e for e in heap if e[2].waiting]
            heapq.heapify(heap)
            self._gone = 0

    def close(self) -> None:
        """The proxy stopped (its connections are closed, and what waited for them with them)."""
        wake, self._wake = self._wake, None
        if wake is not None:
            wake.close()
        self._at = math.inf

    def _arm(self, deadline: float) -> None:
        wake = self._wake
        if wake is None:
            wake = self._wake = WakeAt(asyncio.get_running_loop(), self._look)
        self._at = deadline
        wake.set(deadline)

    def _look(self) -> None:
        self._at = math.inf
        heap = self._heap
        pop = heapq.heappop
        while heap and heap[0][0] <= time.monotonic():
            item = pop(heap)[2]
            if not item.waiting:
                self._gone -= 1
                continue
            try:
                item.due()
            except Exception:  # a bug of one must not leave the others waiting for ever
                log.exception("a wait that came due failed")
        if heap and heap[0][0] < self._at:
            self._arm(heap[0][0])
